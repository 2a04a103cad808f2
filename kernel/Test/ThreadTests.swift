// ThreadTests.swift - kernel threads: mutexes, sleep/wakeup, preemption, real waiting, guards.

enum ThreadTests {
    static var suite: TestSuite {
        TestSuite("threads", cpus: "1,2", exclusive: false, [
            TestCase("mutexKeepsASharedCounterExact", mutexKeepsASharedCounterExact),
            TestCase("sleepAndWakeupHappenInOrder", sleepAndWakeupHappenInOrder),
            TestCase("timerPreemptsAThreadThatNeverYields", timerPreemptsAThreadThatNeverYields),
            TestCase("preemptionCanBeHeldOff", preemptionCanBeHeldOff),
            TestCase("timedSleepLastsAtLeastItsTicks", timedSleepLastsAtLeastItsTicks),
            TestCase("wakeupOfOneChannelWakesExactlyItsSleepers", wakeupOfOneChannelWakesExactlyItsSleepers),
            TestCase("timedSleepsWakeInTickOrderAndTheTickLooksOnlyAtTheHead", timedSleepsWakeInTickOrderAndTheTickLooksOnlyAtTheHead),
            TestCase("channelWakeupCancelsTheTimeoutAndTimeoutLeavesTheChannel", channelWakeupCancelsTheTimeoutAndTimeoutLeavesTheChannel),
            TestCase("blockingAllocationWaitsUntilPagesAreFreed", blockingAllocationWaitsUntilPagesAreFreed),
            TestCase("manyThreadsComeAndGoWithoutLeaking", manyThreadsComeAndGoWithoutLeaking),
            TestCase("threadStackOverflowHitsItsGuardPage", expectsPanic: "double fault: kernel stack overflow",
                     inFrame: "PanicTests.recurseForever", threadStackOverflowHitsItsGuardPage),
        ])
    }

    /// State shared between a test and the threads it starts, on the kernel heap.
    struct Shared {
        var mutex = Mutex("test")
        var counter = 0
        var events: (Int, Int, Int, Int) = (0, 0, 0, 0)
        var eventCount = 0
        var stop = false
        var spins: UInt64 = 0
        var flag = false

        mutating func record(_ event: Int) {
            switch eventCount {
            case 0: events.0 = event
            case 1: events.1 = event
            case 2: events.2 = event
            default: events.3 = event
            }
            eventCount += 1
        }
    }

    static func makeShared() -> UnsafeMutablePointer<Shared> {
        let shared = UnsafeMutablePointer<Shared>.allocate(capacity: 1)
        shared.initialize(to: Shared())
        return shared
    }

    static func mutexKeepsASharedCounterExact() {
        let shared = makeShared()
        let mutex = UnsafeMutableRawPointer(shared).assumingMemoryBound(to: Mutex.self)
        let perThread = 300
        var threads: [ThreadRef] = []
        for _ in 0..<4 {
            threads.append(Threads.spawn("counter") {
                for _ in 0..<perThread {
                    mutex.lock()
                    let value = shared.pointee.counter
                    Scheduler.yield()          // another thread runs here; the mutex keeps it out
                    shared.pointee.counter = value + 1
                    mutex.unlock()
                }
            })
        }
        for thread in threads { Threads.join(thread) }
        Test.expectEqual(shared.pointee.counter, 4 * perThread, "increments counted")
        Test.expect(shared.pointee.mutex.contended > 0, "the threads did contend for the mutex")
        shared.deallocate()
    }

    static func sleepAndWakeupHappenInOrder() {
        let shared = makeShared()
        let channel = UnsafeRawPointer(shared)
        let sleeper = Threads.spawn("sleeper") {
            withInterruptsDisabled {
                shared.pointee.record(1)
                while !shared.pointee.flag { Scheduler.sleep(on: channel, reason: "test") }
                shared.pointee.record(3)
            }
        }
        while shared.pointee.eventCount == 0 { Scheduler.yield() }
        Test.expect(sleeper.pointee.state == .sleeping, "the sleeper is asleep")
        let woken: Int = withInterruptsDisabled {
            shared.pointee.record(2)
            shared.pointee.flag = true
            return Scheduler.wakeup(channel)
        }
        Threads.join(sleeper)
        Test.expectEqual(woken, 1, "threads woken")
        let events = shared.pointee.events
        Test.expect(shared.pointee.eventCount == 3 && events.0 == 1 && events.1 == 2 && events.2 == 3, "sleep, wakeup, resume in order")
        shared.deallocate()
    }

    static func timerPreemptsAThreadThatNeverYields() {
        let shared = makeShared()
        let spinner = Threads.spawn("spinner") {
            // pause() is also a compiler barrier: `stop` is read again every time round.
            while !shared.pointee.stop {
                shared.pointee.spins &+= 1
                CPU.pause()
            }
        }
        // This thread only runs again if the timer takes the CPU from the spinner.
        Scheduler.sleep(ticks: 5)
        shared.pointee.stop = true
        Threads.join(spinner)
        Test.expect(shared.pointee.spins > 0, "the spinner ran")
        Test.diagnostic("spinner looped \(shared.pointee.spins) times before it was preempted and stopped")
        shared.deallocate()
    }

    static func preemptionCanBeHeldOff() {
        let shared = makeShared()
        let spinner = Threads.spawn("counter") {
            while !shared.pointee.stop {
                shared.pointee.spins &+= 1
                Scheduler.yield()
            }
        }
        Scheduler.sleep(ticks: 1)
        Preemption.disable()
        let spinsBefore = shared.pointee.spins
        let until = Timer.ticks + 5
        while Timer.ticks < until { CPU.pause() }
        let spinsDuring = shared.pointee.spins - spinsBefore
        Preemption.enable()
        shared.pointee.stop = true
        Threads.join(spinner)
        Test.expectEqual(spinsDuring, UInt64(0), "the other thread's progress while preemption was held off for 5 ticks")
        shared.deallocate()
    }

    static func timedSleepLastsAtLeastItsTicks() {
        let start = Timer.ticks
        Scheduler.sleep(ticks: 7)
        Test.expect(Timer.ticks - start >= 7, "slept \(Timer.ticks - start) ticks for 7")
    }

    // MARK: - Sleep queues

    /// Yields until `thread` sleeps on `channel`.
    static func waitUntilAsleep(_ thread: ThreadRef, on channel: UnsafeRawPointer) {
        while !withInterruptsDisabled({ thread.pointee.state == .sleeping && thread.pointee.wait.channel == channel }) {
            Scheduler.yield()
        }
    }

    /// 16 channels (neighbouring words) with 3 sleepers each: waking one channel makes exactly
    /// its 3 threads ready, leaves the 45 others asleep, and looks at a handful of threads -
    /// its chain - not at all 48 (the single sleeper list this replaced looked at every one).
    static func wakeupOfOneChannelWakesExactlyItsSleepers() {
        let channels = 16, perChannel = 3
        // Word c is channel c's release flag, word channels + c how many of its threads woke.
        let words = UnsafeMutablePointer<Int>.allocate(capacity: 2 * channels)
        words.initialize(repeating: 0, count: 2 * channels)
        func channel(_ c: Int) -> UnsafeRawPointer { UnsafeRawPointer(words + c) }
        var threads: [ThreadRef] = []
        threads.reserveCapacity(channels * perChannel)
        for c in 0..<channels {
            for _ in 0..<perChannel {
                threads.append(Threads.spawn("sleeper") {
                    withInterruptsDisabled {
                        while words[c] == 0 { Scheduler.sleep(on: channel(c), reason: "test") }
                        words[channels + c] += 1
                    }
                })
            }
        }
        for (index, thread) in threads.enumerated() { waitUntilAsleep(thread, on: channel(index / perChannel)) }
        Test.expect(withInterruptsDisabled { SleepQueues.isConsistent() }, "sleep queues consistent with 48 sleepers")
        let target = 5
        let (woken, examined, again, stranger) = withInterruptsDisabled { () -> (Int, UInt64, Int, Int) in
            words[target] = 1
            let before = SleepQueues.wakeupExamined
            let woken = Scheduler.wakeup(channel(target))
            let examined = SleepQueues.wakeupExamined - before
            return (woken, examined, Scheduler.wakeup(channel(target)), Scheduler.wakeup(channel(2 * channels)))
        }
        Test.expectEqual(woken, perChannel, "threads woken on channel \(target)")
        Test.expectEqual(again, 0, "threads woken by a second wakeup of the same channel")
        Test.expectEqual(stranger, 0, "threads woken on a channel nobody sleeps on")
        Test.expect(examined < 8, "wakeup looked at \(examined) threads (fewer than 8) with \(channels * perChannel) asleep")
        Test.diagnostic("waking 3 of \(channels * perChannel) sleepers looked at \(examined) threads")
        for index in target * perChannel..<(target + 1) * perChannel { Threads.join(threads[index]) }
        Test.expectEqual(words[channels + target], perChannel, "threads of channel \(target) that ran on")
        var stillAsleep = 0, ranOn = 0
        for (index, thread) in threads.enumerated() where index / perChannel != target {
            if withInterruptsDisabled({ thread.pointee.state == .sleeping }) { stillAsleep += 1 }
        }
        for c in 0..<channels where c != target { ranOn += words[channels + c] }
        Test.expectEqual(stillAsleep, (channels - 1) * perChannel, "threads of the other channels still asleep")
        Test.expectEqual(ranOn, 0, "threads of the other channels that ran on")
        Test.expect(withInterruptsDisabled { SleepQueues.isConsistent() }, "sleep queues consistent after one wakeup")
        for c in 0..<channels where c != target {
            let count = withInterruptsDisabled { () -> Int in
                words[c] = 1
                return Scheduler.wakeup(channel(c))
            }
            Test.expectEqual(count, perChannel, "threads woken on channel \(c)")
        }
        for (index, thread) in threads.enumerated() where index / perChannel != target { Threads.join(thread) }
        for c in 0..<channels { Test.expectEqual(words[channels + c], perChannel, "threads of channel \(c) that ran on") }
        words.deallocate()
    }

    /// Eight timed sleeps set in scrambled order wake in the order of their wake ticks, none
    /// early; while they wait, each tick looks at the timeout list's head and the threads
    /// that expire, no more (the old sleeper list was walked whole on every tick).
    static func timedSleepsWakeInTickOrderAndTheTickLooksOnlyAtTheHead() {
        let offsets: [UInt64] = [9, 3, 14, 1, 11, 6, 16, 4]
        let count = offsets.count
        // Per thread: its wake tick, the tick it ran again; then the order they woke in.
        let deadlines = UnsafeMutablePointer<UInt64>.allocate(capacity: count)
        let wokeAt = UnsafeMutablePointer<UInt64>.allocate(capacity: count)
        let order = UnsafeMutablePointer<Int>.allocate(capacity: count + 1)
        wokeAt.initialize(repeating: 0, count: count)
        order.initialize(repeating: -1, count: count + 1)     // order[count]: how many woke
        order[count] = 0
        let base = Timer.ticks + 20      // time enough for all eight to be asleep first
        var threads: [ThreadRef] = []
        for index in 0..<count {
            deadlines[index] = base + offsets[index]
            threads.append(Threads.spawn("timed") {
                withInterruptsDisabled {
                    let deadline = deadlines[index]
                    while Timer.ticks < deadline {
                        Scheduler.sleep(on: UnsafeRawPointer(deadlines + index), reason: "test", untilTick: deadline)
                    }
                    wokeAt[index] = Timer.ticks
                    order[order[count]] = index
                    order[count] += 1
                }
            })
        }
        for index in 0..<count { waitUntilAsleep(threads[index], on: UnsafeRawPointer(deadlines + index)) }
        let (start, examinedBefore, expiredBefore, allOnList) = withInterruptsDisabled { () -> (UInt64, UInt64, UInt64, Bool) in
            var all = true
            for thread in threads where !SleepQueues.timeoutListContains(thread) { all = false }
            return (Timer.ticks, SleepQueues.expiryExamined, SleepQueues.timeoutsExpired, all)
        }
        Test.expect(start < base + 1, "all eight were asleep before the first wake tick (tick \(start), first wake \(base + 1))")
        Test.expect(allOnList, "every timed sleeper is on the timeout list")
        Test.expect(withInterruptsDisabled { SleepQueues.isConsistent() }, "sleep queues consistent, timeout list sorted")
        for thread in threads { Threads.join(thread) }
        let (end, examined, expired) = withInterruptsDisabled {
            (Timer.ticks, SleepQueues.expiryExamined - examinedBefore, SleepQueues.timeoutsExpired - expiredBefore)
        }
        Test.expectEqual(order[count], count, "threads that woke")
        var inOrder = true
        for position in 1..<count where deadlines[order[position - 1]] > deadlines[order[position]] { inOrder = false }
        Test.expect(inOrder, "threads woke in the order of their wake ticks")
        for index in 0..<count {
            Test.expect(wokeAt[index] >= deadlines[index], "thread \(index) woke at tick \(wokeAt[index]), not before its tick \(deadlines[index])")
        }
        Test.expect(expired >= UInt64(count), "timeouts expired: \(expired), at least the \(count) of the test")
        Test.expect(examined <= (end - start) + expired,
                    "the ticks looked at \(examined) threads in \(end - start) ticks with \(expired) timeouts expiring (at most one more than expire per tick)")
        Test.diagnostic("\(end - start) ticks with 8 timed sleepers: the tick looked at \(examined) threads, \(expired) of them expiring")
        deadlines.deallocate()
        wokeAt.deallocate()
        order.deallocate()
    }

    /// A thread in a timed sleep woken by its channel leaves the timeout list at once: when the
    /// old timeout's tick comes it is asleep on another channel and stays there. And a thread
    /// whose timeout ended its sleep has left its channel's chain: a wakeup of that channel
    /// finds nobody.
    static func channelWakeupCancelsTheTimeoutAndTimeoutLeavesTheChannel() {
        let shared = makeShared()
        let first = UnsafeRawPointer(shared), second = UnsafeRawPointer(shared) + 8
        let timeout = Timer.ticks + 30
        // events: 1 = woke from the timed sleep before its tick, 2 = woke from the second sleep.
        let early = Threads.spawn("timed") {
            withInterruptsDisabled {
                Scheduler.sleep(on: first, reason: "test", untilTick: timeout)
                shared.pointee.record(Timer.ticks < timeout ? 1 : 9)
                Scheduler.sleep(on: second, reason: "test")
                shared.pointee.record(2)
            }
        }
        waitUntilAsleep(early, on: first)
        Test.expect(withInterruptsDisabled { SleepQueues.timeoutListContains(early) }, "the timed sleeper is on the timeout list")
        Scheduler.sleep(ticks: 3)
        let (woken, offList, offChain) = withInterruptsDisabled {
            (Scheduler.wakeup(first), !SleepQueues.timeoutListContains(early), !SleepQueues.chainContains(early, channel: first))
        }
        Test.expectEqual(woken, 1, "threads woken on the first channel")
        Test.expect(offList && offChain, "woken by its channel, it left the timeout list and the chain")
        waitUntilAsleep(early, on: second)
        while Timer.ticks < timeout + 5 { Scheduler.sleep(ticks: 1) }
        Test.expect(withInterruptsDisabled { early.pointee.state == .sleeping && early.pointee.wait.channel == second },
                    "after its old timeout's tick it still sleeps on the second channel")
        Test.expectEqual(shared.pointee.eventCount, 1, "wakes so far")
        Test.expectEqual(shared.pointee.events.0, 1, "the first wake came from the channel, before the timeout")
        Test.expectEqual(withInterruptsDisabled { Scheduler.wakeup(second) }, 1, "threads woken on the second channel")
        Threads.join(early)
        Test.expectEqual(shared.pointee.eventCount, 2, "wakes in all")

        // The converse: the timeout ends the sleep first.
        let third = UnsafeRawPointer(shared) + 16, fourth = UnsafeRawPointer(shared) + 24
        let shortTimeout = Timer.ticks + 3
        let late = Threads.spawn("timed") {
            withInterruptsDisabled {
                Scheduler.sleep(on: third, reason: "test", untilTick: shortTimeout)
                Scheduler.sleep(on: fourth, reason: "test")
            }
        }
        waitUntilAsleep(late, on: fourth)
        let (stale, stillAsleep, consistent) = withInterruptsDisabled {
            (Scheduler.wakeup(third), late.pointee.state == .sleeping, SleepQueues.isConsistent())
        }
        Test.expectEqual(stale, 0, "threads woken on the channel whose sleep already timed out")
        Test.expect(stillAsleep && consistent, "the thread sleeps on, on the other channel; the queues are consistent")
        Test.expectEqual(withInterruptsDisabled { Scheduler.wakeup(fourth) }, 1, "threads woken on the other channel")
        Threads.join(late)
        shared.deallocate()
    }

    static func blockingAllocationWaitsUntilPagesAreFreed() {
        let shared = makeShared()
        let channel = UnsafeRawPointer(shared)
        // The waiter is created first: once memory is drained, even a thread's stack is out of reach.
        let waiter = Threads.spawn("waiter") {
            withInterruptsDisabled { while !shared.pointee.stop { Scheduler.sleep(on: channel, reason: "test") } }
            let page = PhysicalMemory.allocate(order: 0, .ordinary)
            shared.pointee.flag = page != nil
            if let page = page { PhysicalMemory.free(page) }
        }
        var held: [PageIndex] = []
        held.reserveCapacity(Int(PhysicalMemory.managedPages))
        // The premise: nothing can free a page while the test holds them all. Suites run
        // before this one in the same boot (test=all) leave empty zone slabs, which the
        // pageout thread would reap once memory is short, feeding the waiter; reap them now.
        Pageout.reapZones()
        Preemption.disable()
        while let page = PhysicalMemory.allocate(order: 0, .ordinaryNoWait) { held.append(page) }
        Preemption.enable()
        withInterruptsDisabled {
            shared.pointee.stop = true
            Scheduler.wakeup(channel)
        }
        Scheduler.sleep(ticks: 5)
        Test.expect(waiter.pointee.state == .sleeping, "the waiter sleeps while no page may be taken")
        Test.expect(sameText(waiter.pointee.wait.reason, "vm_wait"), "it waits in vm_wait, not '\(waiter.pointee.wait.reason)'")
        Test.expect(!shared.pointee.flag, "it has no page yet")
        for page in held.suffix(64) { PhysicalMemory.free(page) }
        held.removeLast(64)
        Threads.join(waiter)
        Test.expect(shared.pointee.flag, "once pages were freed the waiter got one")
        for page in held { PhysicalMemory.free(page) }
        shared.deallocate()
    }

    static func sameText(_ a: StaticString, _ b: StaticString) -> Bool {
        ByteString(base: a.utf8Start, count: a.utf8CodeUnitCount).equals(b)
    }

    static func manyThreadsComeAndGoWithoutLeaking() {
        let liveBefore = Threads.live
        // Empty zone slabs are reaped before both counts: what the threads' structures grew
        // (kmalloc keeps emptied slabs until a reap) is not a leak, and varies with the size
        // of a Thread (9 pages at 16M once it held the lock-order stack).
        Pageout.reapZones()
        let freeBefore = PhysicalMemory.freePages
        let shared = makeShared()
        let mutex = UnsafeMutableRawPointer(shared).assumingMemoryBound(to: Mutex.self)
        var threads: [ThreadRef] = []
        threads.reserveCapacity(64)
        for _ in 0..<60 {
            threads.append(Threads.spawn("short") {
                mutex.withLock { shared.pointee.counter += 1 }
            })
        }
        for thread in threads { Threads.join(thread) }
        Test.expectEqual(shared.pointee.counter, 60, "threads that ran")
        Test.expectEqual(Threads.live, liveBefore, "threads alive afterwards")
        Pageout.reapZones()
        Test.expect(PhysicalMemory.freePages + 8 >= freeBefore, "stacks came back (\(freeBefore) -> \(PhysicalMemory.freePages) free pages)")
        shared.deallocate()
    }

    @inline(never)
    static func threadStackOverflowHitsItsGuardPage() {
        let thread = Threads.spawn("deep", stackPages: 2) { _ = PanicTests.recurseForever(0) }
        Threads.join(thread)
        Test.fail("the thread returned")
    }
}
