// Watchdog.swift - noticing a deadlock instead of hanging in it, and saying who waits for whom.
//
// Every timer tick it looks at the free pages, the threads waiting for pages (vm_wait), and
// the pageout thread's progress counter (pages it has freed, by cleaning or by stopping a
// thread). When memory stays short (below paging_start) with threads waiting for it and the
// counter does not move for `stallSeconds`, nothing can free memory any more: a memory
// deadlock. (Short, not "below free_min": with reserves=off no allocation may take the count
// below free_reserved, and the deadlock happens above it.)
//
// Once a second it also looks for a cycle in the wait-for graph (kernel/Kern/WaitGraph.swift)
// made of edges only their owner can end - a mutex, a busy page, a join - whose threads have
// all slept for `stallSeconds`: two threads each holding a mutex the other wants, say. That
// deadlock needs no memory shortage and has no progress counter to watch.
//
// On a machine with several CPUs it also watches that each AP still takes interrupts
// (ProcessorWatch.swift).
//
// Either way it prints every thread, what it waits on and who owns that, the chains of the
// graph - each to the thread that could make progress or into a cycle - and a one-line
// verdict, and stops the kernel with the deadlock status. Runs in interrupt context: it
// allocates nothing.

extension LogTag {
    static let watchdog = LogTag("watchdog")
}

/// What the watchdog found.
enum Stall {
    /// Memory short, threads in vm_wait, the pageout thread freeing nothing.
    case memory(freePages: UInt64)
    /// A cycle of held edges; the payload is its lowest-id member.
    case cycle(ThreadRef)
}

enum Watchdog {
    static var enabled = false
    static var stallSeconds: UInt64 = 3
    static var stalledSinceTick: UInt64 = 0
    static var progressAtStall: UInt64 = 0
    /// Pages the pageout thread has freed, ever. Moving = progress.
    static var pageoutProgress: UInt64 = 0
    /// The pageout thread: the owner of every vm_wait in the wait-for graph.
    static var pageoutThread: ThreadRef? = nil
    static var reports = 0

    static func tick() {
        ProcessorWatch.tick()
        guard enabled else { return }
        checkMemory()
        if Timer.ticks % Timer.hertz == 0, let cycle = WaitGraph.stalledCycle(sleepingAtLeast: stallSeconds * Timer.hertz) {
            report(.cycle(cycle))
        }
    }

    private static func checkMemory() {
        let free = PhysicalMemory.freePages
        let short = free < PhysicalMemory.thresholds.pagingStart && VMWait.waiters > 0
        if !short || pageoutProgress != progressAtStall || stalledSinceTick == 0 {
            stalledSinceTick = short ? Timer.ticks : 0
            progressAtStall = pageoutProgress
            return
        }
        if Timer.ticks - stalledSinceTick >= stallSeconds * Timer.hertz {
            report(.memory(freePages: free))
        }
    }

    static func report(_ stall: Stall) -> Never {
        CPU.disableInterrupts()
        reports += 1
        Console.printLine("P watchdog: ---- deadlock ----")
        switch stall {
        case .memory(let free):
            let t = PhysicalMemory.thresholds
            Console.printLine("P watchdog: \(free) free pages (paging_start \(t.pagingStart), free_reserved \(t.freeReserved), free_min \(t.freeMin)) and \(VMWait.waiters) threads waiting for pages for \(stallSeconds) s; the pageout thread freed nothing in that time")
        case .cycle:
            Console.printLine("P watchdog: a cycle of threads asleep for at least \(stallSeconds) s, each waiting for what only the next one can release")
        }
        WaitGraph.printThreads()
        WaitGraph.printChains()
        let verdict = self.verdict(stall)
        Console.printLine("P watchdog: chain: \(message: verdict)")
        Console.printLine("P watchdog: ---- end of deadlock report ----")
        panic(verdict, status: .deadlock)
    }

    /// One line, the panic message: what deadlocked, read from the graph.
    static func verdict(_ stall: Stall) -> LogMessage {
        switch stall {
        case .cycle(let start):
            var line = LogMessage.Appender(message: "deadlock: a wait-for cycle: ")
            line.write(start.pointee.name)
            line.write(" ")
            WaitGraph.describeChain(from: start, into: &line)
            return line.message
        case .memory:
            var line = LogMessage.Appender(message: "deadlock: memory short, threads waiting for pages, no pageout progress")
            guard let pageout = pageoutThread else { return line.message }
            let wait = pageout.pointee.wait
            if pageout.pointee.state == .sleeping && wait.kind == .pages {
                // Its own edge: pages only it frees. The words the deadlock suite expects.
                line.write("; the pageout thread waits in ")
                line.write(wait.reason)
                if let requester = wait.requester {
                    line.write(" for one ")
                    line.write(requester.name)
                    line.write("-class page")
                }
                if let zone = wait.zone {
                    line.write(" to grow zone ")
                    line.write(zone)
                }
                line.write(", and only it could free pages")
            } else if WaitGraph.edge(from: pageout) != nil {
                line.write("; the pageout thread ")
                WaitGraph.describeChain(from: pageout, into: &line)
            } else {
                // Asleep on something nobody owns (a timed sleep between failed steps), or
                // running: either way it frees nothing.
                if pageout.pointee.state == .sleeping {
                    line.write("; the pageout thread sleeps in ")
                    line.write(wait.reason)
                } else {
                    line.write("; the pageout thread is ")
                    line.write(pageout.pointee.state.name)
                }
                line.write(" and frees nothing")
            }
            return line.message
        }
    }
}
