// ThreadTests.swift - kernel threads: mutexes, sleep/wakeup, preemption, real waiting, guards.

enum ThreadTests {
    static var suite: TestSuite {
        TestSuite("threads", exclusive: false, [
            TestCase("mutexKeepsASharedCounterExact", mutexKeepsASharedCounterExact),
            TestCase("sleepAndWakeupHappenInOrder", sleepAndWakeupHappenInOrder),
            TestCase("timerPreemptsAThreadThatNeverYields", timerPreemptsAThreadThatNeverYields),
            TestCase("preemptionCanBeHeldOff", preemptionCanBeHeldOff),
            TestCase("timedSleepLastsAtLeastItsTicks", timedSleepLastsAtLeastItsTicks),
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
