// WaitGraph.swift - who waits for whom: the wait-for graph the deadlock watchdog prints.
//
// Every sleeping thread records what it waits on (Thread.wait: its WaitKind and channel, set
// by Scheduler.sleep), and what it can wait on records its owner, where it has one:
//   a mutex      Mutex.owner, the thread holding it          (interrupts off, in lock/unlock)
//   a busy page  PageablePage.busyOwner, the thread that set busy  (interrupts off, with the flag)
//   a join       the thread joined is the channel itself: it ends the wait by ending
//   vm_wait      the pageout thread (Watchdog.pageoutThread): pages are what it makes
// A plain channel, a timed sleep or the pageout thread's idle sleep has no owner. So a
// sleeping thread has at most one edge, to the thread that could end its wait, and the graph
// is a set of chains: each ends either at a thread with no edge - running, ready, or asleep
// on something nobody owns, the thread that could make progress - or in a cycle.
//
// Edges differ in how firmly they hold. A mutex, a busy page and a join end only when their
// owner acts: a cycle of these edges is a deadlock as soon as it closes. vm_wait also ends
// when anyone frees a page, and it times out every 100 ms to look again: a chain through it
// is a deadlock only if memory stays short and the pageout thread frees nothing, which is
// the watchdog's memory check, not this file's. (Zones are not on the list: a thread never
// sleeps for a zone another thread is growing - both grow it - so the zone a sleeper was
// growing, Thread.growingZone, is printed as what it was doing, not as an edge.)
//
// Nothing here allocates, sleeps or takes a lock: it runs in the timer interrupt (the
// watchdog's check, once a second) and in a panic, with interrupts off, and only reads what
// the sleepers recorded. Walks are bounded by the number of threads, so a cycle cannot make
// one loop forever.

/// How firmly an edge of the wait-for graph holds its waiter.
enum WaitEdgeStrength {
    /// Only the owner can end the wait (by releasing the mutex or the busy page, or by ending).
    case held
    /// The owner serves the wait, but anyone freeing a page ends it too, and the waiter looks
    /// again by itself (vm_wait).
    case served
}

/// Which edges a walk follows.
enum EdgeFilter {
    case heldOnly
    case every
}

/// An edge: the thread that could end a sleeper's wait.
struct WaitEdge {
    let owner: ThreadRef
    let strength: WaitEdgeStrength
}

/// Where a walk along the edges stopped.
enum ChainEnd {
    /// At a thread with no edge to follow: the one that could make progress.
    case progress(ThreadRef)
    /// In a cycle; the payload is its member with the lowest id (where it is printed from).
    case cycle(ThreadRef)
}

enum WaitGraph {
    // MARK: - Edges

    /// The edge out of `thread`: who owns what it sleeps on. Nil when it is not asleep, or
    /// asleep on something without an owner. Interrupts off.
    static func edge(from thread: ThreadRef) -> WaitEdge? {
        let wait = thread.pointee.wait
        guard thread.pointee.state == .sleeping, let channel = wait.channel else { return nil }
        switch wait.kind {
        case .mutex:
            guard let owner = channel.assumingMemoryBound(to: Mutex.self).pointee.owner else { return nil }
            return WaitEdge(owner: owner, strength: .held)
        case .busyPage:
            let page = channel.assumingMemoryBound(to: PageablePage.self)
            guard page.pointee.flags.contains(.busy), let owner = self.thread(withID: page.pointee.busyOwner) else { return nil }
            return WaitEdge(owner: owner, strength: .held)
        case .thread:
            return WaitEdge(owner: UnsafeMutableRawPointer(mutating: channel).assumingMemoryBound(to: Thread.self), strength: .held)
        case .pages:
            guard let pageout = Watchdog.pageoutThread else { return nil }
            return WaitEdge(owner: pageout, strength: .served)
        case .none, .channel, .time:
            return nil
        }
    }

    static func successor(of thread: ThreadRef, _ filter: EdgeFilter) -> ThreadRef? {
        guard let edge = edge(from: thread) else { return nil }
        if filter == .heldOnly && edge.strength != .held { return nil }
        return edge.owner
    }

    /// The live thread whose id truncates to `id` (PageablePage.busyOwner); nil for 0 or none.
    static func thread(withID id: UInt32) -> ThreadRef? {
        guard id != 0 else { return nil }
        var found: ThreadRef? = nil
        Threads.forEach { thread in
            if found == nil && UInt32(truncatingIfNeeded: thread.pointee.id) == id { found = thread }
        }
        return found
    }

    // MARK: - Walks

    /// Follows edges from `start` to the end of its chain. A simple path visits each thread
    /// at most once, so a walk longer than there are threads is going round a cycle.
    static func walk(from start: ThreadRef, _ filter: EdgeFilter) -> ChainEnd {
        var current = start
        var steps = 0
        while let next = successor(of: current, filter) {
            current = next
            steps += 1
            if steps > Threads.live { return .cycle(lowestID(onCycleThrough: current, filter)) }
        }
        return .progress(current)
    }

    /// The member of the cycle through `member` with the lowest id: the same cycle is always
    /// printed from the same thread.
    static func lowestID(onCycleThrough member: ThreadRef, _ filter: EdgeFilter) -> ThreadRef {
        var lowest = member
        var current = member
        var steps = 0
        while let next = successor(of: current, filter), next != member, steps <= Threads.live {
            if next.pointee.id < lowest.pointee.id { lowest = next }
            current = next
            steps += 1
        }
        return lowest
    }

    /// Whether `thread` lies on a cycle (of any edges).
    static func isOnCycle(_ thread: ThreadRef) -> Bool {
        var current = thread
        var steps = 0
        while let next = successor(of: current, .every), steps <= Threads.live {
            if next == thread { return true }
            current = next
            steps += 1
        }
        return false
    }

    /// Whether `target` is among the first `count` threads of the chain from `start`.
    private static func chain(from start: ThreadRef, reaches target: ThreadRef, within count: Int) -> Bool {
        var current: ThreadRef? = start
        for _ in 0..<count {
            guard let thread = current else { return false }
            if thread == target { return true }
            current = successor(of: thread, .every)
        }
        return false
    }

    /// A cycle of held edges whose every member has slept at least `ticks`, by its lowest-id
    /// member; nil if there is none. Such a cycle can never open: each member waits for
    /// something only the next one can release, and the next one is asleep too. The age is
    /// a second guard: a real deadlock lasts, a misread transient would not.
    static func stalledCycle(sleepingAtLeast ticks: UInt64) -> ThreadRef? {
        var found: ThreadRef? = nil
        Threads.forEach { thread in
            guard found == nil, successor(of: thread, .heldOnly) != nil else { return }
            guard case .cycle(let start) = walk(from: thread, .heldOnly) else { return }
            var member = start
            var steps = 0
            repeat {
                if Timer.ticks - member.pointee.wait.sinceTick < ticks { return }
                member = successor(of: member, .heldOnly)!
                steps += 1
            } while member != start && steps <= Threads.live
            found = start
        }
        return found
    }

    // MARK: - The report
    //
    // Written straight to the console, a piece at a time, never through a LogMessage: the
    // report runs in the timer interrupt on whatever stack it interrupted - the idle thread's
    // is 2 pages - and a LogMessage is 240 bytes of stack each, which inlined printing code
    // multiplies (a chain ending at a sleeper overflowed the idle stack that way).

    /// One line per thread: its state and, when asleep, what it waits for and who owns that.
    /// The text up to "since N ms" is what the watchdog always printed (tests and docs read it).
    static func printThreads() {
        var out = Console.Sink()
        Threads.forEach { thread in
            out.write("P watchdog: thread ")
            out.thread(thread)
            out.write(": ")
            out.write(thread.pointee.state.name)
            if thread.pointee.state == .sleeping {
                let wait = thread.pointee.wait
                out.write(" in ")
                out.write(wait.reason)
                if let requester = wait.requester {
                    out.write(" for ")
                    out.decimal(wait.pagesWanted)
                    out.write(" ")
                    out.write(requester.name)
                    out.write("-class page(s) (the class stops at ")
                    out.decimal(PhysicalMemory.thresholds.floor(for: requester))
                    out.write(" free)")
                }
                if let zone = wait.zone {
                    out.write(" while growing zone ")
                    out.write(zone)
                }
                out.write(" since ")
                out.decimal(Timer.milliseconds(Timer.ticks - wait.sinceTick))
                out.write(" ms; waits for ")
                printTarget(of: thread, &out)
            }
            out.write(UInt8(ascii: "\n"))
        }
    }

    /// What a sleeping thread waits on, with its owner: "mutex ata held by thread 4 worker".
    private static func printTarget(of thread: ThreadRef, _ out: inout Console.Sink) {
        let wait = thread.pointee.wait
        let owner = edge(from: thread)?.owner
        switch wait.kind {
        case .mutex:
            out.write("mutex ")
            out.write(wait.channel!.assumingMemoryBound(to: Mutex.self).pointee.name)
        case .busyPage:
            let page = wait.channel!.assumingMemoryBound(to: PageablePage.self)
            out.write("busy page ")
            out.hex(pageAddress(page))
            if owner == nil {
                out.write(" (busy owner id ")
                out.decimal(UInt64(page.pointee.busyOwner))
                out.write(", no such thread)")
            }
        case .thread:
            out.write("the end of")
        case .pages:
            out.write("pages, freed by")
        case .time:
            out.write("the timer")
        case .channel, .none:
            out.write("a wakeup on channel ")
            out.hex(UInt64(UInt(bitPattern: wait.channel)))
            out.write(", no owner recorded")
        }
        if let owner = owner {
            out.write(wait.kind == .thread || wait.kind == .pages ? " thread " : " held by thread ")
            out.thread(owner)
        }
        if wait.kind != .time && thread.pointee.wakeAtTick > Timer.ticks {
            out.write(" (or the timer, in ")
            out.decimal(Timer.milliseconds(thread.pointee.wakeAtTick - Timer.ticks))
            out.write(" ms)")
        }
    }

    /// The page a busy page's descriptor describes (the sleeper's channel is the descriptor,
    /// which stays allocated while anyone sleeps on it: MemoryObjects.takeOut wakes them first).
    private static func pageAddress(_ descriptor: UnsafePointer<PageablePage>) -> UInt64 {
        PhysicalMemory.physicalAddress(of: descriptor.pointee.page).rawValue
    }

    /// The chains: one line from each sleeper nobody waits for, along its edges to the thread
    /// that could make progress or into a cycle, and one line per cycle.
    static func printChains() {
        var out = Console.Sink()
        var chains = 0
        Threads.forEach { source in
            guard edge(from: source) != nil, !isWaitedFor(source) else { return }
            chains += 1
            out.write("P watchdog: wait-for chain: ")
            out.thread(source)
            var current = source
            var length = 1
            while let edge = edge(from: current) {
                printEdgeLabel(from: current, &out)
                out.thread(edge.owner)
                if chain(from: source, reaches: edge.owner, within: length) {
                    out.write(" again: a cycle")
                    break
                }
                current = edge.owner
                length += 1
            }
            if edge(from: current) == nil {
                out.write(", which ")
                printProgress(of: current, &out)
            }
            out.write(UInt8(ascii: "\n"))
        }
        Threads.forEach { member in
            guard isOnCycle(member), lowestID(onCycleThrough: member, .every) == member else { return }
            chains += 1
            out.write("P watchdog: wait-for cycle: ")
            out.thread(member)
            var current = member
            var throughVMWait = false
            repeat {
                printEdgeLabel(from: current, &out)
                let edge = edge(from: current)!
                if edge.strength == .served { throughVMWait = true }
                current = edge.owner
                out.thread(current)
            } while current != member
            if throughVMWait { out.write(": through vm_wait, a deadlock only while memory stays short and the pageout thread frees nothing") }
            out.write(UInt8(ascii: "\n"))
        }
        if chains == 0 { out.write("P watchdog: wait-for graph: no thread waits on one that owns what it waits for\n") }
    }

    private static func isWaitedFor(_ thread: ThreadRef) -> Bool {
        var waited = false
        Threads.forEach { other in
            if !waited && other != thread && edge(from: other)?.owner == thread { waited = true }
        }
        return waited
    }

    /// " -[mutex ata]-> ": the edge's kind and, for a lock or a page, which one.
    private static func printEdgeLabel(from thread: ThreadRef, _ out: inout Console.Sink) {
        let wait = thread.pointee.wait
        switch wait.kind {
        case .mutex:
            out.write(" -[mutex ")
            out.write(wait.channel!.assumingMemoryBound(to: Mutex.self).pointee.name)
            out.write("]-> ")
        case .busyPage:
            out.write(" -[busy page ")
            out.hex(pageAddress(wait.channel!.assumingMemoryBound(to: PageablePage.self)))
            out.write("]-> ")
        case .thread: out.write(" -[join]-> ")
        case .pages: out.write(" -[vm_wait]-> ")
        case .none, .channel, .time: out.write(" -> ")
        }
    }

    /// What the thread at the end of a chain is doing, and so whether it can move.
    private static func printProgress(of thread: ThreadRef, _ out: inout Console.Sink) {
        switch thread.pointee.state {
        case .running, .ready:
            out.write("is ")
            out.write(thread.pointee.state.name)
            out.write(": it can make progress")
        case .dead:
            out.write("is dead: what it holds is never released")
        case .sleeping:
            out.write("sleeps in ")
            out.write(thread.pointee.wait.reason)
            out.write(" waiting for ")
            printTarget(of: thread, &out)
            out.write(": that is what could make progress")
        }
    }

    // MARK: - The one-line verdict (the panic message)

    /// "a waits for mutex M held by b, which waits for mutex N held by a": the chain from
    /// `start`, by thread names, until it ends or comes back to a thread already named.
    static func describeChain<S: TextSink>(from start: ThreadRef, into sink: inout S) {
        var current = start
        var length = 1
        while let edge = edge(from: current) {
            if length > 1 { sink.write(", which ") }
            let wait = current.pointee.wait
            switch wait.kind {
            case .mutex:
                sink.write("waits for mutex ")
                sink.write(wait.channel!.assumingMemoryBound(to: Mutex.self).pointee.name)
                sink.write(" held by ")
            case .busyPage:
                sink.write("waits for busy page ")
                sink.hex(pageAddress(wait.channel!.assumingMemoryBound(to: PageablePage.self)))
                sink.write(" held by ")
            case .thread:
                sink.write("waits for the end of ")
            case .pages:
                sink.write("waits in vm_wait for pages freed by ")
            case .none, .channel, .time:
                break
            }
            sink.write(edge.owner.pointee.name)
            if chain(from: start, reaches: edge.owner, within: length) { return }
            current = edge.owner
            length += 1
        }
        if current != start {
            if current.pointee.state == .sleeping {
                sink.write(", which sleeps in ")
                sink.write(current.pointee.wait.reason)
            } else {
                sink.write(", which is ")
                sink.write(current.pointee.state.name)
            }
        }
    }
}

/// The pieces the report is written in, straight into any sink.
private extension TextSink {
    mutating func decimal(_ value: UInt64) { Format.decimal(value, into: &self) }
    mutating func hex(_ value: UInt64) { Format.hex(value, into: &self) }
    /// "4 lockcycle-a": a thread's id and name.
    mutating func thread(_ thread: ThreadRef) {
        decimal(thread.pointee.id)
        write(" ")
        write(thread.pointee.name)
    }
}
