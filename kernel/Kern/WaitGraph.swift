// WaitGraph.swift - who waits for whom: the wait-for graph the deadlock watchdog prints.
//
// Every sleeping thread records what it waits on (Thread.wait: its WaitKind and channel, set
// by Scheduler.sleep), and what it can wait on records its owner, where it has one:
//   a mutex      Mutex.owner, the thread holding it          (interrupts off, in lock/unlock)
//   a busy page  VMPage.busyOwner, the thread that set busy  (interrupts off, with the flag)
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
            let page = channel.assumingMemoryBound(to: VMPage.self)
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

    /// The live thread whose id truncates to `id` (VMPage.busyOwner); nil for 0 or none.
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

    /// Writes raw text to the console, with no length limit (a LogMessage holds 240 bytes).
    private static func out(_ message: LogMessage) {
        var sink = Console.Sink()
        message.write(into: &sink)
    }

    private static func endLine() {
        var sink = Console.Sink()
        sink.write(UInt8(ascii: "\n"))
    }

    /// One line per thread: its state and, when asleep, what it waits for and who owns that.
    /// The text up to "since N ms" is what the watchdog always printed (tests and docs read it).
    static func printThreads() {
        Threads.forEach { thread in
            let t = thread.pointee
            out("P watchdog: thread \(t.id) \(t.name): \(t.state.name)")
            if t.state == .sleeping {
                out(" in \(t.wait.reason)")
                if let requester = t.wait.requester {
                    out(" for \(t.wait.pagesWanted) \(requester.name)-class page(s) (the class stops at \(PhysicalMemory.thresholds.floor(for: requester)) free)")
                }
                if let zone = t.wait.zone { out(" while growing zone \(zone)") }
                out(" since \(Timer.milliseconds(Timer.ticks - t.wait.sinceTick)) ms; waits for ")
                printTarget(of: thread)
            }
            endLine()
        }
    }

    /// What a sleeping thread waits on, with its owner: "mutex ata held by thread 4 worker".
    private static func printTarget(of thread: ThreadRef) {
        let wait = thread.pointee.wait
        let owner = edge(from: thread)?.owner
        switch wait.kind {
        case .mutex:
            let mutex = wait.channel!.assumingMemoryBound(to: Mutex.self)
            out("mutex \(mutex.pointee.name)")
        case .busyPage:
            let page = wait.channel!.assumingMemoryBound(to: VMPage.self)
            out("busy page \(hex: pageAddress(page))")
            if owner == nil { out(" (busy owner id \(page.pointee.busyOwner), no such thread)") }
        case .thread:
            out("the end of")
        case .pages:
            out("pages, freed by")
        case .time:
            out("the timer")
        case .channel, .none:
            out("a wakeup on channel \(hex: UInt64(UInt(bitPattern: wait.channel))), no owner recorded")
        }
        if let owner = owner {
            out(wait.kind == .thread || wait.kind == .pages ? " " : " held by ")
            out("thread \(owner.pointee.id) \(owner.pointee.name)")
        }
        if thread.pointee.wakeAtTick > Timer.ticks {
            out(" (or the timer, in \(Timer.milliseconds(thread.pointee.wakeAtTick - Timer.ticks)) ms)")
        }
    }

    private static func pageAddress(_ descriptor: UnsafePointer<VMPage>) -> UInt64 {
        guard let pages = PhysicalMemory.pages else { return 0 }
        let index = PageIndex(UnsafePointer(pages).distance(to: descriptor))
        return PhysicalMemory.physicalAddress(of: index).rawValue
    }

    /// The chains: one line from each sleeper nobody waits for, along its edges to the thread
    /// that could make progress or into a cycle, and one line per cycle.
    static func printChains() {
        var chains = 0
        Threads.forEach { source in
            guard edge(from: source) != nil, !isWaitedFor(source) else { return }
            chains += 1
            out("P watchdog: wait-for chain: \(source.pointee.id) \(source.pointee.name)")
            var current = source
            var length = 1
            while let edge = edge(from: current) {
                printEdgeLabel(from: current)
                out("\(edge.owner.pointee.id) \(edge.owner.pointee.name)")
                if chain(from: source, reaches: edge.owner, within: length) {
                    out(" again: a cycle")
                    break
                }
                current = edge.owner
                length += 1
            }
            if edge(from: current) == nil {
                out(", which ")
                printProgress(of: current)
            }
            endLine()
        }
        Threads.forEach { member in
            guard isOnCycle(member), lowestID(onCycleThrough: member, .every) == member else { return }
            chains += 1
            out("P watchdog: wait-for cycle: \(member.pointee.id) \(member.pointee.name)")
            var current = member
            var throughVMWait = false
            repeat {
                printEdgeLabel(from: current)
                let edge = edge(from: current)!
                if edge.strength == .served { throughVMWait = true }
                current = edge.owner
                out("\(current.pointee.id) \(current.pointee.name)")
            } while current != member
            if throughVMWait { out(": through vm_wait, a deadlock only while memory stays short and the pageout thread frees nothing") }
            endLine()
        }
        if chains == 0 { out("P watchdog: wait-for graph: no thread waits on one that owns what it waits for"); endLine() }
    }

    private static func isWaitedFor(_ thread: ThreadRef) -> Bool {
        var waited = false
        Threads.forEach { other in
            if !waited && other != thread && edge(from: other)?.owner == thread { waited = true }
        }
        return waited
    }

    /// " -[mutex ata]-> ": the edge's kind and, for a lock or a page, which one.
    private static func printEdgeLabel(from thread: ThreadRef) {
        let wait = thread.pointee.wait
        switch wait.kind {
        case .mutex: out(" -[mutex \(wait.channel!.assumingMemoryBound(to: Mutex.self).pointee.name)]-> ")
        case .busyPage: out(" -[busy page \(hex: pageAddress(wait.channel!.assumingMemoryBound(to: VMPage.self)))]-> ")
        case .thread: out(" -[join]-> ")
        case .pages: out(" -[vm_wait]-> ")
        case .none, .channel, .time: out(" -> ")
        }
    }

    /// What the thread at the end of a chain is doing, and so whether it can move.
    private static func printProgress(of thread: ThreadRef) {
        let t = thread.pointee
        switch t.state {
        case .running, .ready: out("is \(t.state.name): it can make progress")
        case .dead: out("is dead: what it holds is never released")
        case .sleeping:
            out("sleeps in \(t.wait.reason) waiting for ")
            printTarget(of: thread)
            out(": that is what could make progress")
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
                let held: LogMessage = "waits for mutex \(wait.channel!.assumingMemoryBound(to: Mutex.self).pointee.name) held by \(edge.owner.pointee.name)"
                held.write(into: &sink)
            case .busyPage:
                let held: LogMessage = "waits for busy page \(hex: pageAddress(wait.channel!.assumingMemoryBound(to: VMPage.self))) held by \(edge.owner.pointee.name)"
                held.write(into: &sink)
            case .thread:
                let ends: LogMessage = "waits for \(edge.owner.pointee.name) to end"
                ends.write(into: &sink)
            case .pages:
                let frees: LogMessage = "waits in vm_wait for pages only \(edge.owner.pointee.name) frees"
                frees.write(into: &sink)
            case .none, .channel, .time:
                break
            }
            if chain(from: start, reaches: edge.owner, within: length) { return }
            current = edge.owner
            length += 1
        }
        if current != start {
            sink.write(", which is ")
            sink.write(current.pointee.state == .sleeping ? current.pointee.wait.reason : current.pointee.state.name)
        }
    }
}
