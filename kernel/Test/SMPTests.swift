// SMPTests.swift - the application processors are really up: identity, locks, IPIs, panics.
//
// The runner boots `smp` with 1, 2 and 4 CPUs (TestSuite.cpus) and `smp-cpus1` with 4 CPUs and
// `cpus=1`. Work runs on a parked AP through SMP.run (a C function pointer and an argument):
// the AP allocates nothing and prints nothing, so the work functions write their findings
// into the static arrays below and the boot CPU checks them.
//
//   - every online CPU reports, from its own per-CPU area (GS base), the APIC id its local
//     APIC has and the index the boot CPU gave it;
//   - every CPU (the boot CPU too, at the same time) adds 1 to a shared plain counter
//     `SMPTests.rounds` times inside a SpinLock, with a pause between the read and the write
//     so that an unprotected update would be lost; and to an Atomic counter without the lock.
//     Both totals must be exact;
//   - each AP answers a test IPI with an IPI back, and the boot CPU sees both ends;
//   - `cpus=N` starts exactly min(N, enabled) CPUs, the rest are never touched;
//   - a panic on an AP (or on the boot CPU) stops every other CPU and says which one panicked
//     (the runner's judge checks the "on cpu N ... M other CPU(s) stopped" line);
//   - TLB shootdown (SMPShootdownTests.swift);
//   - a zone's reserve drawn on one CPU and freed on another is back in the centre
//     (SMPZoneTests.swift).

import ArchSupport
import Synchronization

enum SMPTests {
    static var suite: TestSuite {
        TestSuite("smp", memory: "24M", cpus: "1,2,4", timeout: 180, exclusive: false, cases)
    }

    /// `cpus=1` on a 4-CPU machine: only the boot CPU runs; the same checks hold for it.
    static var limitedSuite: TestSuite {
        TestSuite("smp-cpus1", memory: "24M", arguments: "cpus=1", cpus: "4", timeout: 180, exclusive: false, [
            TestCase("onlyTheCPUsAskedForAreStarted", onlyTheCPUsAskedForAreStarted),
            TestCase("everyOnlineCPUReportsItsAPICID", everyOnlineCPUReportsItsAPICID),
        ])
    }

    static var cases: [TestCase] {
        [
            TestCase("onlyTheCPUsAskedForAreStarted", onlyTheCPUsAskedForAreStarted),
            TestCase("everyOnlineCPUReportsItsAPICID", everyOnlineCPUReportsItsAPICID),
            TestCase("spinLockLosesNoUpdateAcrossCPUs", spinLockLosesNoUpdateAcrossCPUs),
            TestCase("ipiRoundTripReachesEveryAP", ipiRoundTripReachesEveryAP),
            TestCase("anUnmappedPageIsUnreachableFromEveryCPU", anUnmappedPageIsUnreachableFromEveryCPU),
            TestCase("withoutShootdownsAnAPReadsTheReusedPage", withoutShootdownsAnAPReadsTheReusedPage),
            TestCase("anAPForgetsWhatChangedWhileItWasParked", anAPForgetsWhatChangedWhileItWasParked),
            TestCase("anAPSpinningForTheKernelLockForgetsWhatChanged", anAPSpinningForTheKernelLockForgetsWhatChanged),
            TestCase("anInterruptOnAParkedAPSeesTheNewMapping", anInterruptOnAParkedAPSeesTheNewMapping),
            TestCase("everyAPTicksAtThePITRate", everyAPTicksAtThePITRate),
            TestCase("threadsRunOnEveryCPU", threadsRunOnEveryCPU),
            TestCase("reserveFreedOnAnotherCPUGoesBackToTheCentre", reserveFreedOnAnotherCPUGoesBackToTheCentre),
            TestCase("magazinesHandedOverWhileTheirCPUsWork", magazinesHandedOverWhileTheirCPUsWork),
            TestCase("interruptsInsideTheZoneFastPathRestartIt", interruptsInsideTheZoneFastPathRestartIt),
            TestCase("theFixupRestartsOrFinishesASequence", theFixupRestartsOrFinishesASequence),
            TestCase("pagesListedOnAnotherCPUAreTheCentresBeforeAFloorDecides", { PhysicalMemoryTests.listedPagesAreTheCentresBeforeAFloorDecides(on: .lastCPU) }),
            TestCase("aWakeupReachesAThreadBoundToAHaltedAP", aWakeupReachesAThreadBoundToAHaltedAP),
            TestCase("preemptionOffStopsEveryOtherCPUsThreads", preemptionOffStopsEveryOtherCPUsThreads),
            TestCase("panicOnAnAPStopsTheOtherCPUs", expectsPanic: "deliberate panic on cpu 1", inFrame: "panicOnThisCPU", panicOnAnAP),
            TestCase("anAPWithInterruptsOffIsReportedByTheWatchdog", expectsPanic: "has taken no interrupt for", inFrame: "ProcessorWatch.tick",
                     anAPWithInterruptsOffIsReported),
            TestCase("theBootCPUWithInterruptsOffIsReportedByAnAP", expectsPanic: "cpu 0 (APIC id 0) has taken no timer tick for",
                     inFrame: "ProcessorWatch.processorTick", theBootCPUWithInterruptsOffIsReported),
            TestCase("panicOnTheBootCPUStopsTheAPs", expectsPanic: "deliberate panic on cpu 0", inFrame: "panicOnTheBootCPU", panicOnTheBootCPU),
        ]
    }

    /// Increments per CPU in the lock test.
    static let rounds: UInt64 = 20_000
    /// How long the boot CPU waits for an AP's work or answer.
    static let waitMicroseconds: UInt64 = 5_000_000

    // Shared with the APs; static storage, whose mapping never changes (SMP.swift).
    static var lock = SpinLock("smp test counter", .standalone)
    static var lockedCounter: UInt64 = 0
    static let atomicCounter = Atomic<UInt64>(0)
    /// What each CPU reported about itself, by index: the APIC id from its local APIC, its
    /// index and its area's address read through its GS base. Allocated by the boot CPU at the
    /// first use, before any AP writes to it (an AP must not be the one to initialise a global).
    static let identities = UnsafeMutablePointer<Identity>.allocate(capacity: PerCPU.capacity)

    struct Identity {
        var apicID: UInt32 = 0
        var index = -1
        var area: UInt64 = 0
    }

    // The TLB case's shared state: written by the boot CPU before it starts the readers.
    static let probeAddress = KernelLayout.pmapTestWindowBase + 0x40000
    /// 0 while the page is mapped; 1 once Pmap.remove has returned (the shootdown is done).
    static let probePhase = Atomic<UInt64>(0)
    static let probeStop = Atomic<Bool>(false)
    static let probeReads = Atomic<UInt64>(0)
    /// Readers that have read the page through its mapping at least once.
    static let probeReaders = Atomic<UInt64>(0)
    static let probeFaults = Atomic<UInt64>(0)
    static let probeStaleReads = Atomic<UInt64>(0)
    /// The last word a stale read returned.
    static let probeStaleValue = Atomic<UInt64>(0)
    /// Reads while the page was mapped that returned something else than its pattern.
    static let probeWrongReads = Atomic<UInt64>(0)
    /// For the parked case: 1 asks the readers to park, 2 to become active again; and how
    /// many have parked.
    static let probeParking = Atomic<UInt64>(0)
    static let probeParked = Atomic<UInt64>(0)
    /// The pattern of this round's page; each round has its own.
    static let probePattern = Atomic<UInt64>(0)
    static var probeRounds: UInt64 = 0
    static let mappedPattern: UInt64 = 0xA11C_E000_0000_0001
    static let reusedPattern: UInt64 = 0xB0B0_0000_0000_0002

    // MARK: - Cases

    static func onlyTheCPUsAskedForAreStarted() {
        guard let machine = Machine.topology else {
            Test.diagnostic("no firmware tables: the boot CPU alone")
            Test.expectEqual(SMP.onlineCount, 1, "CPUs online")
            return
        }
        let enabled = machine.enabledProcessors
        let wanted = Machine.cpuLimit == 0 ? enabled : min(Machine.cpuLimit, enabled)
        Test.diagnostic("firmware lists \(enabled) enabled CPUs; cpus=\(Machine.cpuLimit == 0 ? UInt64(enabled) : UInt64(Machine.cpuLimit)); \(SMP.onlineCount) online")
        Test.expectEqual(SMP.onlineCount, wanted, "CPUs online")
        Test.expectEqual(SMP.areasUsed, wanted, "per-CPU areas prepared (an AP left parked gets none)")
        Test.expectEqual(Machine.processorsLeftOut, enabled - wanted, "enabled CPUs left parked")
        var online = 0
        for index in 0..<SMP.areasUsed where PerCPU.area(index).pointee.currentState == .online { online += 1 }
        Test.expectEqual(online, SMP.onlineCount, "areas in state online")
    }

    static func everyOnlineCPUReportsItsAPICID() {
        let boot = PerCPU.this
        Test.expectEqual(boot.pointee.index, 0, "the boot CPU's index")
        Test.expectEqual(boot.pointee.apicID, LocalAPIC.id, "the boot CPU's APIC id in its per-CPU area vs its local APIC")
        Test.expectEqual(UInt64(UInt(bitPattern: boot)), UInt64(UInt(bitPattern: PerCPU.area(0))), "gs:0 on the boot CPU")
        var asked = 0
        SMP.forEachOnlineAP { cpu in
            identities[cpu.pointee.index] = Identity()
            SMP.run(on: cpu, reportIdentity, argument: 0)
            asked += 1
        }
        SMP.forEachOnlineAP { cpu in
            guard waitUntilIdle(cpu) else { return }
            let seen = identities[cpu.pointee.index]
            Test.expectEqual(seen.index, cpu.pointee.index, "cpu \(cpu.pointee.index): index read through its GS base")
            Test.expectEqual(seen.apicID, cpu.pointee.apicID, "cpu \(cpu.pointee.index): its local APIC's id vs the firmware's")
            Test.expectEqual(seen.area, UInt64(UInt(bitPattern: cpu)), "cpu \(cpu.pointee.index): gs:0")
        }
        Test.expectEqual(asked, SMP.onlineCount - 1, "APs asked")
    }

    static func spinLockLosesNoUpdateAcrossCPUs() {
        // The boot CPU touches every shared global first: none may be initialised by an AP.
        Test.expect(!lock.isHeld, "the lock is free at the start")
        lockedCounter = 0
        atomicCounter.store(0, ordering: .relaxed)
        var participants: UInt64 = 1
        SMP.forEachOnlineAP { cpu in
            SMP.run(on: cpu, countUnderTheLock, argument: rounds)
            participants += 1
        }
        countUnderTheLock(rounds)                          // the boot CPU, at the same time
        SMP.forEachOnlineAP { cpu in _ = waitUntilIdle(cpu) }
        let total = withLockHeld { lockedCounter }
        Test.diagnostic("\(participants) CPUs x \(rounds) increments; lock contended \(lock.contended) times")
        Test.expectEqual(total, participants * rounds, "increments under the spin lock")
        Test.expectEqual(atomicCounter.load(ordering: .relaxed), participants * rounds, "atomic increments")
        Test.expect(!lock.isHeld, "the lock is free at the end")
    }

    /// Waits (the boot CPU keeps its interrupts on) until `done`, at most `waitMicroseconds`.
    static func waitFor(_ done: () -> Bool) {
        var waited: UInt64 = 0
        while !done() && waited < waitMicroseconds {
            LocalAPIC.delay(microseconds: 100)
            waited += 100
        }
        if !done() { Test.fail("timed out after \(waitMicroseconds / 1000) ms waiting for the APs") }
    }

    /// The first online AP; nil, and the case failed, when there is none.
    static func firstOnlineAP() -> PerCPURef? {
        var target: PerCPURef? = nil
        SMP.forEachOnlineAP { cpu in if target == nil { target = cpu } }
        if target == nil { Test.fail("no AP online (this case needs -smp 2 or more)") }
        return target
    }

    static func ipiRoundTripReachesEveryAP() {
        var reached = 0
        SMP.forEachOnlineAP { cpu in
            let answersBefore = SMP.answersReceived.load(ordering: .acquiring)
            let pingsBefore = cpu.pointee.pingsAnswered.load(ordering: .relaxed)
            LocalAPIC.sendIPI(to: cpu.pointee.apicID, vector: SMP.pingVector, .fixed)
            var waited: UInt64 = 0
            while SMP.answersReceived.load(ordering: .acquiring) == answersBefore && waited < waitMicroseconds {
                LocalAPIC.delay(microseconds: 100)
                waited += 100
            }
            Test.expectEqual(cpu.pointee.pingsAnswered.load(ordering: .relaxed), pingsBefore + 1, "cpu \(cpu.pointee.index): pings it answered")
            Test.expectEqual(SMP.answersReceived.load(ordering: .acquiring), answersBefore + 1, "answers the boot CPU received from cpu \(cpu.pointee.index)")
            reached += 1
        }
        Test.diagnostic("IPI round trips: \(reached) of \(SMP.onlineCount - 1) APs")
        Test.expectEqual(reached, SMP.onlineCount - 1, "APs reached")
    }

    static func panicOnAnAP() {
        guard let cpu = firstOnlineAP() else { return }
        SMP.run(on: cpu, panicOnThisCPU, argument: 0)
        _ = waitUntilIdle(cpu)
        Test.fail("cpu \(cpu.pointee.index) did not panic")
    }

    static func panicOnTheBootCPU() {
        panicOnTheBootCPUNow()
    }

    // MARK: - Helpers

    static func waitUntilIdle(_ cpu: PerCPURef) -> Bool {
        var waited: UInt64 = 0
        while !SMP.isIdle(cpu) && waited < waitMicroseconds {
            LocalAPIC.delay(microseconds: 100)
            waited += 100
        }
        if !SMP.isIdle(cpu) {
            Test.fail("cpu \(cpu.pointee.index) did not finish its work within \(waitMicroseconds / 1000) ms")
            return false
        }
        return true
    }

    static func withLockHeld<R>(_ body: () -> R) -> R {
        lock.lock()
        let result = body()
        lock.unlock()
        return result
    }
}

// The work functions: plain C functions, run on an AP (or the boot CPU).

private func reportIdentity(_ argument: UInt64) {
    let cpu = PerCPU.this
    SMPTests.identities[cpu.pointee.index] = SMPTests.Identity(apicID: LocalAPIC.id, index: cpu.pointee.index, area: arch_read_gs_u64(0))
}

/// `rounds` increments of the shared counter under the lock - read, pause, write back, the
/// window in which an unlocked update from another CPU would be lost - and of the atomic one.
private func countUnderTheLock(_ rounds: UInt64) {
    for _ in 0..<rounds {
        SMPTests.lock.lock()
        let value = withUnsafeMutablePointer(to: &SMPTests.lockedCounter) { UnsafeVolatile.load($0) }
        CPU.pause()
        CPU.pause()
        withUnsafeMutablePointer(to: &SMPTests.lockedCounter) { UnsafeVolatile.store($0, value + 1) }
        SMPTests.lock.unlock()
        SMPTests.atomicCounter.wrappingAdd(1, ordering: .relaxed)
    }
}

private func panicOnThisCPU(_ argument: UInt64) {
    panic("deliberate panic on cpu \(PerCPU.this.pointee.index) (smp test)")
}

@inline(never)
private func panicOnTheBootCPUNow() {
    panic("deliberate panic on cpu \(PerCPU.this.pointee.index) (smp test, from the boot CPU)")
}

/// Loads and stores the compiler must perform exactly where written.
enum UnsafeVolatile {
    @inline(__always)
    static func load(_ pointer: UnsafeMutablePointer<UInt64>) -> UInt64 {
        arch_barrier()
        let value = pointer.pointee
        arch_barrier()
        return value
    }

    @inline(__always)
    static func store(_ pointer: UnsafeMutablePointer<UInt64>, _ value: UInt64) {
        arch_barrier()
        pointer.pointee = value
        arch_barrier()
    }
}
