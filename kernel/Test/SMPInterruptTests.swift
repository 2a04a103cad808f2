// SMPInterruptTests.swift - the smp suite's case for a device-style interrupt taken by a parked
// AP: shootdowns skip a parked AP, so the interrupt path must flush before its handler touches
// a kernel mapping that changed meanwhile (Interrupts.swift; docs/smp.md "Lines on the APs").
// Registered in SMPTests.cases.

import ArchSupport
import Synchronization

extension SMPTests {
    /// A test vector whose handler runs under the kernel lock, as a device line's does.
    static let parkedProbeVector = 0xE8
    static let parkedProbeValue = Atomic<UInt64>(0)
    static let parkedProbeTaken = Atomic<UInt64>(0)

    /// Rounds of: the first AP reads the probe page (its TLB caches the translation) and
    /// parks; the boot CPU removes the mapping (no IPI: the AP is parked), fills the old page
    /// with another pattern and maps a new page there; then it sends the AP an interrupt whose
    /// handler, run like a device line's, reads the probe address. It must see the new page.
    /// Several rounds, because an AP tick between the removal and the interrupt wakes the AP,
    /// whose idle loop flushes on its own. Mutation: without the flush in interruptDispatch
    /// the handler read the old page's contents.
    static func anInterruptOnAParkedAPSeesTheNewMapping() {
        guard SMP.onlineCount > 1 else {
            Test.diagnostic("one CPU: no parked AP to interrupt")
            return
        }
        guard let cpu = firstOnlineAP() else { return }
        Interrupts.register(vector: parkedProbeVector, parkedProbeInterrupt)
        let rounds = 8
        var stale = 0
        for _ in 0..<rounds {
            resetProbe()
            let old = mapNewProbePage()
            SMP.run(on: cpu, readTheProbePageOnce, argument: 0)
            _ = waitUntilIdle(cpu)
            waitFor { !cpu.pointee.tlbActive.load(ordering: .acquiring) }
            Pmap.remove(probeAddress, pages: 1)
            fill(old, reusedPattern)
            let new = mapNewProbePage()
            let taken = parkedProbeTaken.load(ordering: .acquiring)
            LocalAPIC.sendIPI(to: cpu.pointee.apicID, vector: parkedProbeVector, .fixed)
            waitFor { parkedProbeTaken.load(ordering: .acquiring) > taken }
            if parkedProbeValue.load(ordering: .acquiring) != probePattern.load(ordering: .acquiring) { stale += 1 }
            Pmap.remove(probeAddress, pages: 1)
            PhysicalMemory.free(old)
            PhysicalMemory.free(new)
        }
        Test.diagnostic("\(rounds) rounds: the interrupt on parked cpu \(cpu.pointee.index) read the old page \(stale) times")
        Test.expectEqual(stale, 0, "reads in an interrupt on a parked AP that returned the old page's contents")
    }
}

/// Parked work: one read of the probe page, so that the AP's TLB holds its translation.
private func readTheProbePageOnce(_ argument: UInt64) {
    var value: UInt64 = 0
    _ = arch_probe_read(UnsafePointer<UInt64>(bitPattern: UInt(SMPTests.probeAddress.rawValue))!, &value)
}

/// Under the kernel lock, as a device line's handler: read the probe address, say what it held.
private func parkedProbeInterrupt(_ frame: UnsafeMutablePointer<InterruptFrame>) {
    var value: UInt64 = 0
    if arch_probe_read(UnsafePointer<UInt64>(bitPattern: UInt(SMPTests.probeAddress.rawValue))!, &value) == 0 { value = 0 }
    SMPTests.parkedProbeValue.store(value, ordering: .relaxed)
    SMPTests.parkedProbeTaken.wrappingAdd(1, ordering: .releasing)
    LocalAPIC.endOfInterrupt()
}
