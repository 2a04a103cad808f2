// SMPRestartTests.swift - the smp suite's cases for the zone fast path's restartable sequences
// (kernel/Arch/x86_64/RestartableSequences.swift): interrupts whose handlers use the same
// magazines land inside the sequences, and the fixup's two outcomes on the real table.
// Registered in SMPTests.cases.

import ArchSupport
import Synchronization

extension SMPTests {
    static let restartVector = 0xE9
    /// The zone the worker and the interrupt handler share, and what the handler holds
    /// between two of its interrupts (it runs on the worker's CPU only).
    static var restartZone: KernelZone? = nil
    static var handlerHeld: (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) = (nil, nil, nil)
    static var handlerSerial: UInt64 = 0
    static var restartOperations = 0
    static let handlerRuns = Atomic<UInt64>(0)
    static let restartMismatches = Atomic<Int>(0)
    static let restartWorkerStarted = Atomic<Bool>(false)
    static let restartWorkerStop = Atomic<Bool>(false)
    static let handlerShouldEmpty = Atomic<Bool>(false)

    /// A thread on an AP allocates and frees from one zone as fast as it can, with interrupts
    /// on, while the boot CPU sends that AP interrupts whose handler allocates from and frees
    /// to the same zone - the same CPU's magazines - unevenly (1 to 3 objects, kept until its
    /// next interrupt). Every object carries its holder's stamp, so an object handed out
    /// twice (a pop whose count an interrupt changed under it) shows as a stamp overwritten,
    /// and an object pushed over another one (a lost free) as objects still in use at the end.
    /// The case also checks that interrupts did land inside the sequences (restarts > 0), or
    /// it proves nothing. Mutation: with fixUp's restart removed the stamps and counts broke.
    static func interruptsInsideTheZoneFastPathRestartIt() {
        guard SMP.onlineCount > 1, let cpu = firstOnlineAP() else {
            Test.diagnostic("one CPU: no other CPU to interrupt the worker with")
            return
        }
        let zone = Zones.create("test-restart", objectSize: 64, slabPages: 1, reserve: 0, keepEmpty: 0)
        restartZone = zone
        handlerHeld = (nil, nil, nil)
        handlerRuns.store(0, ordering: .relaxed)
        restartMismatches.store(0, ordering: .relaxed)
        restartWorkerStarted.store(false, ordering: .relaxed)
        restartWorkerStop.store(false, ordering: .relaxed)
        handlerShouldEmpty.store(false, ordering: .relaxed)
        Interrupts.register(vector: restartVector, restartInterrupt)
        let restartedBefore = cpu.pointee.sequencesRestarted
        let finishedBefore = cpu.pointee.sequencesFinished
        let index = cpu.pointee.index
        let interrupts: UInt64 = 3_000
        let worker = Threads.spawn("restart worker", affinity: .only(index)) {
            var random = SeededRandom(seed: KernelOptions.seed &+ 7)
            let held = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: 48)
            var count = 0
            var serial: UInt64 = 0
            var operations = 0
            restartWorkerStarted.store(true, ordering: .releasing)
            while !restartWorkerStop.load(ordering: .acquiring) {
                let target = Int(random.next(below: 48))
                while count < target {
                    let object = zone.allocate(.ordinary)!
                    serial &+= 1
                    stamp(object, 0x7711 << 48 | serial)
                    held[count] = object
                    count += 1
                    operations += 1
                }
                while count > target {
                    count -= 1
                    operations += 1
                    if !stampHolds(held[count], owner: 0x7711) { restartMismatches.wrappingAdd(1, ordering: .relaxed) }
                    zone.free(held[count])
                }
            }
            while count > 0 {
                count -= 1
                if !stampHolds(held[count], owner: 0x7711) { restartMismatches.wrappingAdd(1, ordering: .relaxed) }
                zone.free(held[count])
            }
            held.deallocate()
            restartOperations = operations
        }
        waitFor { restartWorkerStarted.load(ordering: .acquiring) }
        for sent in 1...interrupts {
            // One interrupt at a time: a second one sent while the first is pending is merged.
            LocalAPIC.sendIPI(to: cpu.pointee.apicID, vector: restartVector, .fixed)
            waitFor { handlerRuns.load(ordering: .acquiring) >= sent }
        }
        restartWorkerStop.store(true, ordering: .releasing)
        _ = Threads.join(worker)
        // The handler gives back what it holds at its next interrupt.
        handlerShouldEmpty.store(true, ordering: .releasing)
        let runs = handlerRuns.load(ordering: .acquiring)
        LocalAPIC.sendIPI(to: cpu.pointee.apicID, vector: restartVector, .fixed)
        waitFor { handlerRuns.load(ordering: .acquiring) > runs }
        let restarted = cpu.pointee.sequencesRestarted - restartedBefore
        let finished = cpu.pointee.sequencesFinished - finishedBefore
        Test.diagnostic("seed \(KernelOptions.seed): \(restartOperations) allocations and frees on cpu \(index); \(runs) interrupts handled meanwhile; \(restarted) sequences restarted, \(finished) counter increments finished by the fixup")
        Test.expectEqual(restartMismatches.load(ordering: .relaxed), 0, "objects whose stamp another holder overwrote")
        Test.expectEqual(zone.inUse, 0, "objects in use once the worker and the handler freed theirs")
        Test.expect(zone.validate() == nil, "the zone is consistent after the race")
        Test.expect(restarted > 0, "interrupts landed inside the fast path's sequences (else this case proved nothing)")
        restartZone = nil
        Zones.destroy(zone)
    }

    static func stamp(_ object: UnsafeMutableRawPointer, _ value: UInt64) {
        object.storeBytes(of: value, toByteOffset: 8, as: UInt64.self)
        object.storeBytes(of: value, toByteOffset: 56, as: UInt64.self)
    }

    static func stampHolds(_ object: UnsafeMutableRawPointer, owner: UInt64) -> Bool {
        let value = object.load(fromByteOffset: 8, as: UInt64.self)
        return value == object.load(fromByteOffset: 56, as: UInt64.self) && value >> 48 == owner
    }

    /// The fixup's two outcomes, on the kernel's real table and a made-up frame: inside a
    /// sequence up to its commit, the frame goes back to the sequence's start; at the counter
    /// increment, the fixup increments the counter of the slot in rcx and resumes after it;
    /// elsewhere the frame is left alone. (Under TCG an interrupt is taken only where a
    /// translation block ends, after a branch, so the race above never lands on the
    /// increment, which follows the commit directly.)
    static func theFixupRestartsOrFinishesASequence() {
        let sequences = RestartableSequences.table
        Test.expect(sequences.count > 0, "the kernel has restartable sequences")
        var slot = CPUCache()
        var checked = 0
        let frame = UnsafeMutablePointer<InterruptFrame>.allocate(capacity: 1)
        UnsafeMutableRawPointer(frame).initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<InterruptFrame>.stride)
        defer { frame.deallocate() }
        for sequence in sequences {
            frame.pointee.rip = sequence.commit
            RestartableSequences.fixUp(frame)
            if frame.pointee.rip != sequence.begin { Test.fail("at the commit \(address: sequence.commit) the frame resumes at \(address: frame.pointee.rip), not at the start \(address: sequence.begin)"); return }
            withUnsafeMutablePointer(to: &slot) { cache in
                frame.pointee.rcx = UInt64(UInt(bitPattern: cache))
                frame.pointee.rip = sequence.counter
                let before = cache.pointee.allocations &+ cache.pointee.frees
                RestartableSequences.fixUp(frame)
                if cache.pointee.allocations &+ cache.pointee.frees != before &+ 1 || frame.pointee.rip != sequence.end {
                    Test.fail("at the increment \(address: sequence.counter): counters \(before) -> \(cache.pointee.allocations &+ cache.pointee.frees), resumes at \(address: frame.pointee.rip), not \(address: sequence.end)")
                }
            }
            frame.pointee.rip = sequence.end
            RestartableSequences.fixUp(frame)
            if frame.pointee.rip != sequence.end { Test.fail("after the sequence at \(address: sequence.begin) the fixup moved the frame to \(address: frame.pointee.rip)"); return }
            checked += 1
        }
        Test.diagnostic("\(checked) sequences: restart, finish and leave alone as they should")
        Test.expectEqual(slot.allocations &+ slot.frees, UInt64(checked), "one counter increment finished per sequence")
    }
}

/// Runs on the worker's CPU, under the kernel lock like a device line's handler: takes 1 to 3
/// objects when it holds none, gives them back (checking its stamps) when it holds some.
private func restartInterrupt(_ frame: UnsafeMutablePointer<InterruptFrame>) {
    guard let zone = SMPTests.restartZone else { LocalAPIC.endOfInterrupt(); return }
    func giveBack(_ object: UnsafeMutableRawPointer?) {
        guard let object else { return }
        if !SMPTests.stampHolds(object, owner: 0x4A4A) { SMPTests.restartMismatches.wrappingAdd(1, ordering: .relaxed) }
        zone.free(object)
    }
    if SMPTests.handlerHeld.0 != nil || SMPTests.handlerHeld.1 != nil || SMPTests.handlerHeld.2 != nil || SMPTests.handlerShouldEmpty.load(ordering: .acquiring) {
        giveBack(SMPTests.handlerHeld.0)
        giveBack(SMPTests.handlerHeld.1)
        giveBack(SMPTests.handlerHeld.2)
        SMPTests.handlerHeld = (nil, nil, nil)
    } else {
        SMPTests.handlerSerial &+= 1
        let take = Int(SMPTests.handlerSerial % 3) + 1
        // A handler may not wait: .ordinaryNoWait, and none when the zone cannot grow now.
        func takeOne() -> UnsafeMutableRawPointer? {
            guard let object = zone.allocate(.ordinaryNoWait) else { return nil }
            SMPTests.stamp(object, 0x4A4A << 48 | SMPTests.handlerSerial)
            return object
        }
        SMPTests.handlerHeld.0 = takeOne()
        if take > 1 { SMPTests.handlerHeld.1 = takeOne() }
        if take > 2 { SMPTests.handlerHeld.2 = takeOne() }
    }
    SMPTests.handlerRuns.wrappingAdd(1, ordering: .releasing)
    LocalAPIC.endOfInterrupt()
}
