// Watchdog.swift - noticing the low-memory deadlock instead of hanging in it.
//
// Every timer tick it looks at the free pages, the threads waiting for pages (vm_wait), and
// the pageout thread's progress counter (pages it has freed, by cleaning or by stopping a
// thread). When memory stays short (below paging_start) with threads waiting for it and the
// counter does not move for `stallSeconds`, nothing can free memory any more: it prints what
// every thread is waiting on - reason, requester, the zone it was growing - and stops the
// kernel with the deadlock status. (Short, not "below free_min": with reserves=off no
// allocation may take the count below free_reserved, and the deadlock happens above it.)
// Runs in interrupt context: it allocates nothing.

extension LogTag {
    static let watchdog = LogTag("watchdog")
}

enum Watchdog {
    static var enabled = false
    static var stallSeconds: UInt64 = 3
    static var stalledSinceTick: UInt64 = 0
    static var progressAtStall: UInt64 = 0
    /// Pages the pageout thread has freed, ever. Moving = progress.
    static var pageoutProgress: UInt64 = 0
    static var pageoutThread: ThreadRef? = nil
    static var reports = 0

    static func tick() {
        guard enabled else { return }
        let free = PhysicalMemory.freePages
        let short = free < PhysicalMemory.thresholds.pagingStart && VMWait.waiters > 0
        if !short || pageoutProgress != progressAtStall || stalledSinceTick == 0 {
            stalledSinceTick = short ? Timer.ticks : 0
            progressAtStall = pageoutProgress
            return
        }
        if Timer.ticks - stalledSinceTick >= stallSeconds * Timer.hertz {
            report(free: free)
        }
    }

    static func report(free: UInt64) -> Never {
        CPU.disableInterrupts()
        reports += 1
        let t = PhysicalMemory.thresholds
        Console.printLine("P watchdog: ---- deadlock ----")
        Console.printLine("P watchdog: \(free) free pages (paging_start \(t.pagingStart), free_reserved \(t.freeReserved), free_min \(t.freeMin)) and \(VMWait.waiters) threads waiting for pages for \(stallSeconds) s; the pageout thread freed nothing in that time")
        Threads.forEach { thread in
            let t = thread.pointee
            var line = LogMessage.Appender(message: "P watchdog: thread \(t.id) \(t.name): \(t.state.name)")
            if t.state == .sleeping {
                line.write(" in ")
                line.write(t.wait.reason)
                if let requester = t.wait.requester {
                    let detail: LogMessage = " for \(t.wait.pagesWanted) \(requester.name)-class page(s) (the class stops at \(PhysicalMemory.thresholds.floor(for: requester)) free)"
                    detail.write(into: &line)
                }
                if let zone = t.wait.zone {
                    line.write(" while growing zone ")
                    line.write(zone)
                }
                let since: LogMessage = " since \(Timer.milliseconds(Timer.ticks - t.wait.sinceTick)) ms"
                since.write(into: &line)
            }
            Console.printLine(line.message)
        }
        var summary = LogMessage.Appender(message: "deadlock: memory short, threads waiting for pages, no pageout progress")
        if let pageout = pageoutThread, pageout.pointee.state == .sleeping {
            let w = pageout.pointee.wait
            summary.write("; the pageout thread waits in ")
            summary.write(w.reason)
            if let requester = w.requester {
                summary.write(" for one ")
                summary.write(requester.name)
                summary.write("-class page")
            }
            if let zone = w.zone {
                summary.write(" to grow zone ")
                summary.write(zone)
            }
            summary.write(", and only it could free pages")
        }
        Console.printLine("P watchdog: chain: \(message: summary.message)")
        Console.printLine("P watchdog: ---- end of deadlock report ----")
        panic(summary.message, status: .deadlock)
    }
}
