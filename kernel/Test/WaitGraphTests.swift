// WaitGraphTests.swift - the watchdog's wait-for graph: every edge names the thread that
// could end the wait, a long chain that ends at a thread able to move is not a deadlock, and
// an AB/BA mutex deadlock is reported as a cycle naming both mutexes and both threads.
//
// The threads and mutexes are named so that the expected panic can quote the cycle: the
// watchdog prints a cycle from its lowest-id member, which is the thread spawned first.

enum WaitGraphTests {
    static var suite: TestSuite {
        TestSuite("waitgraph", icount: true, timeout: 180, exclusive: false, [
            TestCase("aLockChainEndsAtTheThreadThatCanMakeProgress", aLockChainEndsAtTheThreadThatCanMakeProgress),
            TestCase("aThreadWaitingForABusyPageNamesItsHolder", aThreadWaitingForABusyPageNamesItsHolder),
            TestCase("anABBAMutexDeadlockIsReportedAsACycle",
                     expectsPanic: "deadlock: a wait-for cycle: lockcycle-a waits for mutex lockcycle.second held by lockcycle-b, which waits for mutex lockcycle.first held by lockcycle-a",
                     inFrame: "Watchdog.report", anABBAMutexDeadlockIsReportedAsACycle),
        ])
    }

    /// Three mutexes and the counters the test threads report through, on the kernel heap.
    struct Locks {
        var first: Mutex
        var second: Mutex
        var third: Mutex
        /// Threads holding first or second.
        var holding = 0
        /// Whether a thread holds third.
        var thirdHeld = false

        init(_ first: StaticString, _ second: StaticString, _ third: StaticString) {
            self.first = Mutex(first)
            self.second = Mutex(second)
            self.third = Mutex(third)
        }
    }

    static func makeLocks(_ first: StaticString, _ second: StaticString, _ third: StaticString) -> UnsafeMutablePointer<Locks> {
        let locks = UnsafeMutablePointer<Locks>.allocate(capacity: 1)
        locks.initialize(to: Locks(first, second, third))
        return locks
    }

    /// Sleeps a tick at a time until `thread` sleeps with `kind`, for at most a second.
    static func waitUntil(_ thread: ThreadRef, sleepsOn kind: WaitKind) -> Bool {
        for _ in 0..<Timer.hertz {
            if withInterruptsDisabled({ thread.pointee.state == .sleeping && thread.pointee.wait.kind == kind }) { return true }
            Scheduler.sleep(ticks: 1)
        }
        return false
    }

    /// What the verdict would say about the chain from `start`, as a message to search.
    static func chainText(from start: ThreadRef) -> LogMessage {
        var line = LogMessage.Appender(message: LogMessage())
        withInterruptsDisabled { WaitGraph.describeChain(from: start, into: &line) }
        return line.message
    }

    /// tail -[second]-> middle -[first]-> holder, who is in a timed sleep longer than the
    /// watchdog's stall time: every edge names the right owner, the walk ends at the holder,
    /// there is no cycle, and the watchdog stays quiet the whole time.
    static func aLockChainEndsAtTheThreadThatCanMakeProgress() {
        let locks = makeLocks("waitgraph.first", "waitgraph.second", "waitgraph.third")
        let first = locks.pointer(to: \.first)!, second = locks.pointer(to: \.second)!
        let holdTicks = (Watchdog.stallSeconds + 1) * Timer.hertz
        let holder = Threads.spawn("waitgraph-holder") {
            first.lock()
            withInterruptsDisabled { locks.pointee.holding += 1 }
            Scheduler.sleep(ticks: holdTicks)
            first.unlock()
        }
        while withInterruptsDisabled({ locks.pointee.holding }) < 1 { Scheduler.sleep(ticks: 1) }
        let middle = Threads.spawn("waitgraph-middle") {
            second.lock()
            withInterruptsDisabled { locks.pointee.holding += 1 }
            first.lock()
            first.unlock()
            second.unlock()
        }
        while withInterruptsDisabled({ locks.pointee.holding }) < 2 { Scheduler.sleep(ticks: 1) }
        let tail = Threads.spawn("waitgraph-tail") {
            second.lock()
            second.unlock()
        }
        Test.expect(waitUntil(tail, sleepsOn: .mutex) && waitUntil(middle, sleepsOn: .mutex), "the tail and the middle thread sleep on their mutexes")
        withInterruptsDisabled {
            let tailEdge = WaitGraph.edge(from: tail), middleEdge = WaitGraph.edge(from: middle)
            Test.expect(tailEdge?.owner == middle && tailEdge?.strength == .held, "the tail's edge leads to the middle thread, which holds waitgraph.second")
            Test.expect(middleEdge?.owner == holder && middleEdge?.strength == .held, "the middle thread's edge leads to the holder, which holds waitgraph.first")
            Test.expect(holder.pointee.wait.kind == .time && WaitGraph.edge(from: holder) == nil, "the holder is in a timed sleep, with no edge")
            if case .progress(let end) = WaitGraph.walk(from: tail, .every) {
                Test.expect(end == holder, "the chain from the tail ends at the holder")
            } else {
                Test.fail("the chain from the tail was taken for a cycle")
            }
            Test.expect(WaitGraph.stalledCycle(sleepingAtLeast: 0) == nil, "no cycle, however short the stall allowed")
        }
        let text = chainText(from: tail)
        Test.expect(text.contains("waits for mutex waitgraph.second held by waitgraph-middle, which waits for mutex waitgraph.first held by waitgraph-holder, which sleeps in timed sleep"),
                    "the chain reads: \(message: text)")
        Threads.join(tail)
        Threads.join(middle)
        Threads.join(holder)
        Test.expectEqual(Watchdog.reports, 0, "watchdog reports during a wait longer than its stall time that was no deadlock")
        locks.deallocate()
    }

    /// A page this thread claims (busy, owned by it) and another thread frees: the freer
    /// sleeps in releasePages, and its edge names this thread as the page's holder.
    static func aThreadWaitingForABusyPageNamesItsHolder() {
        guard let address = Kmem.allocatePageable(pageSize, owner: 0) else {
            Test.fail("no pageable memory")
            return
        }
        pointer(at: address).storeBytes(of: 0x5a5a, as: UInt64.self)      // fault it in
        let object = RaceTests.object(at: address)
        let page: PageIndex = withInterruptsDisabled {
            let page = object.pointee.page(at: 0)
            guard page != .none, !PhysicalMemory.pageable(page).pointee.flags.contains(.busy) else { return .none }
            PageQueues.claim(page)
            return page
        }
        guard page != .none else {
            Test.fail("the page was not resident, or busy already")
            Kmem.freePageable(address, pageSize)
            return
        }
        let me = Scheduler.current
        Test.expect(PhysicalMemory.pageable(page).pointee.busyOwner == UInt32(truncatingIfNeeded: me.pointee.id), "the busy page names this thread as its owner")
        let freer = Threads.spawn("waitgraph-freer") { Kmem.freePageable(address, pageSize) }
        Test.expect(waitUntil(freer, sleepsOn: .busyPage), "the freeing thread sleeps on the busy page")
        withInterruptsDisabled {
            let edge = WaitGraph.edge(from: freer)
            Test.expect(edge?.owner == me && edge?.strength == .held, "the freer's edge leads to this thread, which holds the page busy")
            if case .progress(let end) = WaitGraph.walk(from: freer, .every) {
                Test.expect(end == me, "the chain ends at this thread, which is running")
            } else {
                Test.fail("the chain from the freer was taken for a cycle")
            }
        }
        Test.expect(chainText(from: freer).contains("waits for busy page 0x"), "the chain names the busy page")
        PageQueues.release(page, to: .active)
        Threads.join(freer)
    }

    /// lockcycle-a takes first then second, lockcycle-b second then first, each pausing in
    /// between so that both hold one: neither can go on. The main thread joins a (a third,
    /// held edge into the cycle), and the watchdog must report the cycle - both threads, both
    /// mutexes - and stop the kernel. Beside it, a chain that is no deadlock - lockcycle-waiter
    /// waits for third, held by lockcycle-sleeper in a long timed sleep - must be printed as
    /// ending at the sleeper: the report runs on the interrupted stack, often the idle
    /// thread's 2 pages, and printing a chain's end there once overflowed it.
    static func anABBAMutexDeadlockIsReportedAsACycle() {
        let locks = makeLocks("lockcycle.first", "lockcycle.second", "lockcycle.third")
        let first = locks.pointer(to: \.first)!, second = locks.pointer(to: \.second)!, third = locks.pointer(to: \.third)!
        Threads.spawn("lockcycle-sleeper", detached: true) {
            third.lock()
            withInterruptsDisabled { locks.pointee.thirdHeld = true }
            Scheduler.sleep(ticks: 60 * Timer.hertz)
            third.unlock()
        }
        while !withInterruptsDisabled({ locks.pointee.thirdHeld }) { Scheduler.sleep(ticks: 1) }
        Threads.spawn("lockcycle-waiter", detached: true) {
            third.lock()
            third.unlock()
        }
        let a = Threads.spawn("lockcycle-a") {
            first.lock()
            withInterruptsDisabled { locks.pointee.holding += 1 }
            while withInterruptsDisabled({ locks.pointee.holding }) < 2 { Scheduler.sleep(ticks: 1) }
            second.lock()
            Test.fail("lockcycle-a took both mutexes")
        }
        let b = Threads.spawn("lockcycle-b") {
            second.lock()
            withInterruptsDisabled { locks.pointee.holding += 1 }
            while withInterruptsDisabled({ locks.pointee.holding }) < 2 { Scheduler.sleep(ticks: 1) }
            first.lock()
            Test.fail("lockcycle-b took both mutexes")
        }
        Threads.join(a)
        Threads.join(b)
        Test.fail("the AB/BA deadlock ended")
    }
}
