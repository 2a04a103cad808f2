// SMPSchedulerTests.swift - the smp suite's cases for threads on every CPU: the one run queue
// reaches every CPU and moves threads between them, a wakeup reaches a halted AP with a wake
// IPI, and preemption off makes the running thread the only one any CPU runs
// (kernel/Kern/Scheduler.swift). Registered in SMPTests.cases.

import Synchronization

extension SMPTests {
    // Shared with the threads the cases start (an escaping closure cannot capture an Atomic).
    static let threadCPUsSeen = Atomic<UInt64>(0)
    static let threadsStop = Atomic<Bool>(false)
    static let threadsMigrated = Atomic<UInt64>(0)
    static let threadTurns = Atomic<UInt64>(0)
    /// 1 while the bound sleeper sleeps, 2 once it is to wake.
    static let sleeperState = Atomic<UInt64>(0)
    static let sleeperCPU = Atomic<Int>(-1)

    /// Bit `index` for each online CPU.
    static var onlineMask: UInt64 {
        var mask: UInt64 = 1
        SMP.forEachOnlineAP { cpu in mask |= 1 << UInt64(cpu.pointee.index) }
        return mask
    }

    /// Twice as many busy threads as CPUs, none bound: each spins through its quantum and
    /// notes the CPUs it found itself on. The one run queue hands them to every CPU, and a
    /// thread preempted on one CPU may resume on another.
    static func threadsRunOnEveryCPU() {
        let count = 2 * SMP.onlineCount
        threadCPUsSeen.store(0, ordering: .relaxed)
        threadsStop.store(false, ordering: .relaxed)
        threadsMigrated.store(0, ordering: .relaxed)
        var threads: [ThreadRef] = []
        for _ in 0..<count {
            threads.append(Threads.spawn("spinner") {
                var mine: UInt64 = 0
                while !threadsStop.load(ordering: .acquiring) {
                    mine |= 1 << UInt64(PerCPU.this.pointee.index)
                    threadCPUsSeen.bitwiseOr(1 << UInt64(PerCPU.this.pointee.index), ordering: .relaxed)
                    CPU.pause()
                }
                if mine.nonzeroBitCount > 1 { threadsMigrated.wrappingAdd(1, ordering: .relaxed) }
            })
        }
        // Long enough for every thread to have had several quanta on a busy machine.
        Scheduler.sleep(ticks: UInt64(10 * count * Scheduler.quantumTicks))
        threadsStop.store(true, ordering: .releasing)
        for thread in threads { Threads.join(thread) }
        Test.diagnostic("\(count) threads on \(SMP.onlineCount) CPUs: CPUs seen \(hex: threadCPUsSeen.load(ordering: .relaxed)) (online \(hex: onlineMask)); \(threadsMigrated.load(ordering: .relaxed)) threads ran on more than one CPU; \(Scheduler.kicks) wake IPIs so far")
        Test.expectEqual(threadCPUsSeen.load(ordering: .relaxed), onlineMask, "the CPUs the threads ran on")
    }

    /// A thread bound to the last AP sleeps there (the AP halts: nothing else may run on it);
    /// the boot CPU wakes it, which must send the AP a wake IPI; the thread notes where it woke.
    static func aWakeupReachesAThreadBoundToAHaltedAP() {
        guard SMP.onlineCount > 1 else {
            Test.diagnostic("one CPU: nothing to reach")
            return
        }
        let target = SMP.areasUsed - 1
        let channel = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
        sleeperState.store(0, ordering: .relaxed)
        sleeperCPU.store(-1, ordering: .relaxed)
        let sleeper = Threads.spawn("bound sleeper", affinity: .only(target)) {
            withInterruptsDisabled {
                sleeperState.store(1, ordering: .releasing)
                while sleeperState.load(ordering: .acquiring) == 1 {
                    Scheduler.sleep(on: UnsafeRawPointer(channel), reason: "smp test")
                }
            }
            sleeperCPU.store(PerCPU.this.pointee.index, ordering: .releasing)
        }
        var waited = 0
        while sleeperState.load(ordering: .acquiring) != 1 && waited < 500 {
            Scheduler.sleep(ticks: 1)
            waited += 1
        }
        // Let the AP reach its halt.
        Scheduler.sleep(ticks: 5)
        let kicksBefore = Scheduler.kicks
        let woken = withInterruptsDisabled { () -> Int in
            sleeperState.store(2, ordering: .releasing)
            return Scheduler.wakeup(UnsafeRawPointer(channel))
        }
        Threads.join(sleeper)
        channel.deallocate()
        let kicks = Scheduler.kicks - kicksBefore
        Test.diagnostic("woke \(woken) thread(s) bound to cpu \(target); it woke on cpu \(sleeperCPU.load(ordering: .acquiring)); \(kicks) wake IPI(s)")
        Test.expectEqual(woken, 1, "threads woken")
        Test.expectEqual(sleeperCPU.load(ordering: .acquiring), target, "the CPU the bound thread woke on")
        Test.expect(kicks >= 1, "no wake IPI was sent to the halted AP")
    }

    /// Busy threads on every CPU count their turns; while the boot thread holds preemption off
    /// none of them may count - it is the sole thread (Scheduler.becomeSoleThread) - and once it
    /// lets go they count again.
    static func preemptionOffStopsEveryOtherCPUsThreads() {
        let count = 2 * SMP.onlineCount
        threadTurns.store(0, ordering: .relaxed)
        threadsStop.store(false, ordering: .relaxed)
        var threads: [ThreadRef] = []
        for _ in 0..<count {
            threads.append(Threads.spawn("counter") {
                while !threadsStop.load(ordering: .acquiring) {
                    threadTurns.wrappingAdd(1, ordering: .relaxed)
                    CPU.pause()
                }
            })
        }
        Scheduler.sleep(ticks: 4)
        Preemption.disable()
        let before = threadTurns.load(ordering: .acquiring)
        // About 20 ms of this CPU's time, with interrupts on: the ticks come and go.
        LocalAPIC.delay(microseconds: 20_000)
        let during = threadTurns.load(ordering: .acquiring) - before
        Preemption.enable()
        let after = threadTurns.load(ordering: .acquiring)
        Scheduler.sleep(ticks: 4)
        let resumed = threadTurns.load(ordering: .acquiring) - after
        threadsStop.store(true, ordering: .releasing)
        for thread in threads { Threads.join(thread) }
        Test.diagnostic("\(count) busy threads on \(SMP.onlineCount) CPUs: \(during) turns while preemption was off, \(resumed) in the 4 ticks after")
        Test.expectEqual(during, 0, "turns other threads took while the boot thread held preemption off")
        Test.expect(resumed > 0, "the threads did not run again after preemption came back on")
    }
}
