// ZoneCacheRequests.swift - how a CPU that holds the zone lock gets another CPU's magazines:
// it asks, by IPI, and the owner hands them over itself.
//
// A zone's per-CPU slot has no lock (kernel/Mem/Portable/ZoneCPUCache.swift, "Locks"): its
// CPU pops and pushes its magazines with interrupts off and nothing else. So a drain or a
// validation on another CPU cannot just read or empty the slot - the owner may be halfway
// through a pop. Instead the asking CPU posts the zone and the request (CPUCache.Request) in
// the owner's per-CPU mailbox and sends `vector`; the owner answers from the interrupt, which
// it can only take with interrupts on, so never inside a fast path. The asker spins,
// interrupts off and the zone lock held, until every owner answered - the mailbox pattern of
// TLBShootdown.swift, whose one-asker-at-a-time argument (the kernel lock) holds here too.
//
// Who can fail to answer, and why it does not happen:
//   - a CPU spinning for the kernel lock (which the asker holds) with interrupts off: it
//     answers from its spin loop (KernelLock.enterSlow, like shootdowns), as do the page
//     lists' lock spin and the scheduler's wait for a sole thread;
//   - a CPU spinning on a standalone spin lock the asker holds: asserted against, as for
//     shootdowns;
//   - a halted CPU: the IPI wakes it. Unlike shootdowns, parked CPUs are asked too - but only
//     those whose slot holds a magazine (CPUCache.concerns), and a CPU's first magazine comes
//     through the zone lock, so a CPU that never used the zone is never woken;
//   - a CPU that is not running (not started, stopped by a panic): the asker answers for it.
// Cost: requests come from reclaim passes, caching switched off for a test scene, zone
// destruction and validations - never from an allocation or a free.

import ArchSupport
import Synchronization

enum ZoneCacheRequests {
    static let vector = 0xF8
    /// Pauses an asker waits for one answer before it reports the owner as stuck.
    static let answerPatience: UInt64 = 500_000_000

    static func start() {
        Interrupts.register(vector: vector, requestInterrupt, locking: .lockFree)
    }

    /// KernelZoneEnvironment.askOtherCPUs: every other CPU whose slot of `zone` concerns
    /// `request` answers it; returns when all have. Zone lock held, interrupts off.
    static func ask(_ zone: UnsafeMutablePointer<ZoneState>, _ request: CPUCache.Request) {
        guard SMP.areasUsed > 1 else { return }
        let me = PerCPU.this
        kassert(!CPU.interruptsEnabled && KernelLock.isHeldHere, "zone cache requests are made with the zone lock held and interrupts off")
        // A CPU spinning with interrupts off for a standalone spin lock this CPU holds could
        // never answer (the same rule as TLBShootdown.invalidate).
        kassert(me.pointee.standaloneSpinLocks == 0, "a zone cache request while holding \(me.pointee.standaloneSpinLocks) standalone spin lock(s): a CPU spinning on one with interrupts off could never answer")
        for index in 0..<min(SMP.areasUsed, CPUCache.slots) where index != me.pointee.index {
            let cache = zone.pointee.caches + index
            guard CPUCache.concerns(request, cache) else { continue }
            let cpu = PerCPU.area(index)
            guard cpu.pointee.currentState == .online else {
                // Not running: nothing can be halfway through its slot.
                CPUCache.answer(request, cache)
                continue
            }
            cpu.pointee.cacheRequestZone = zone
            cpu.pointee.cacheRequest = request
            cpu.pointee.cacheRequested.wrappingAdd(1, ordering: .releasing)
            LocalAPIC.sendIPI(to: cpu.pointee.apicID, vector: vector, .fixed)
        }
        // One asker at a time (the zone lock), and each waits for all its answers: a CPU not
        // asked this time has cacheDone == cacheRequested already.
        for index in 0..<min(SMP.areasUsed, CPUCache.slots) where index != me.pointee.index {
            let cpu = PerCPU.area(index)
            let requested = cpu.pointee.cacheRequested.load(ordering: .relaxed)
            SMP.awaitAnswer(patience: answerPatience, { cpu.pointee.cacheDone.load(ordering: .acquiring) == requested }) {
                panic("zone \(zone.pointee.name): cpu \(index) has not answered cache request \(requested) (it answered \(cpu.pointee.cacheDone.load(ordering: .acquiring)))")
            }
        }
    }

    /// Answers this CPU's pending request, if there is one (interrupts off, and not inside a
    /// zone's fast path: from the IPI, or from a loop that spins with interrupts off).
    @discardableResult
    static func answerPending(_ cpu: PerCPURef) -> Bool {
        let requested = cpu.pointee.cacheRequested.load(ordering: .acquiring)
        guard requested != cpu.pointee.cacheDone.load(ordering: .relaxed) else { return false }
        if let zone = cpu.pointee.cacheRequestZone {
            // A slot not as the request expects is left alone; the asker sees it and stops the
            // kernel naming the zone and this CPU (ZoneRef.askOtherCPUs).
            CPUCache.answer(cpu.pointee.cacheRequest, zone.pointee.caches + cpu.pointee.index)
        }
        cpu.pointee.cacheRequestsAnswered &+= 1
        cpu.pointee.cacheDone.store(requested, ordering: .releasing)
        return true
    }
}

private func requestInterrupt(_ frame: UnsafeMutablePointer<InterruptFrame>) {
    ZoneCacheRequests.answerPending(PerCPU.this)
    LocalAPIC.endOfInterrupt()
}
