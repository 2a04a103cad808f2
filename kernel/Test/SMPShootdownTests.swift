// SMPShootdownTests.swift - the smp suite's TLB shootdown cases (docs/smp.md, "TLB shootdown").
// Registered in SMPTests.cases; the probe's shared state is SMPTests' static storage.
//
// The APs keep reading a page through a kernel mapping while the boot CPU removes the mapping
// and writes new contents into the page (its reuse). Every read an AP makes after the removal
// returned must fault (ProbeRead.S); a read that succeeds went through a stale TLB entry. With
// shootdowns switched off the APs must be seen reading the reused page - the check can fail,
// and QEMU keeps stale entries as a CPU does. The parked cases show that a CPU not asked -
// halted in its idle loop, or spinning for the kernel lock - flushes before it reads again.

import ArchSupport
import Synchronization

extension SMPTests {
    static func anUnmappedPageIsUnreachableFromEveryCPU() {
        guard let seen = staleReads(shootdowns: true) else { return }
        Test.expectEqual(seen.stale, 0, "reads that reached the page after its mapping was removed (stale TLB entries)")
        Test.expect(seen.faults > 0, "no read faulted after the removal: the readers stopped reading")
        Test.expectEqual(seen.wrong, 0, "reads of the mapped page that returned another page's contents")
        // Up to one per AP for the leaf, and one more when the emptied page table is freed; an
        // AP whose tick handler was spinning for the kernel lock at that moment is parked and
        // is sent none (it flushes when it gets the lock): a 4-CPU boot saw 2 for 3 readers.
        Test.expect(seen.interrupts >= 1, "\(seen.interrupts) shootdown IPIs for \(SMP.onlineCount - 1) reading AP(s)")
    }

    /// The lazy side of shootdowns: the APs read the page, then say they are parked (as the
    /// parked loop does between two pieces of work, but spinning instead of halting: QEMU
    /// drops a halted vCPU's TLB, a CPU need not); the boot CPU removes the mapping - no IPI,
    /// nobody is active - reuses the page and maps the address to a new page. Each AP still
    /// holds the old translation, so it must flush when it becomes active again
    /// (TLBShootdown.becomeActive: the generation moved while it was parked): every read of
    /// the address must return the new page's pattern.
    static func anAPForgetsWhatChangedWhileItWasParked() {
        guard let (readers, old) = startParkingRound(.parks) else { return }
        probeParking.store(1, ordering: .releasing)
        waitFor { probeParked.load(ordering: .acquiring) == readers }
        let interruptsBefore = TLBShootdown.interruptsSent
        Pmap.remove(probeAddress, pages: 1)
        let interrupts = TLBShootdown.interruptsSent - interruptsBefore
        fill(old, reusedPattern)
        let new = mapNewProbePage()
        let readsBefore = probeReads.load(ordering: .acquiring)
        probeParking.store(2, ordering: .releasing)
        let (reads, wrong) = finishParkingRound(readers: readers, readsBefore: readsBefore)
        PhysicalMemory.free(old)
        Test.diagnostic("\(readers) parked AP(s) held the old translation; removal sent \(interrupts) IPIs; then \(reads) reads of the new page, \(wrong) returned another page's contents")
        Test.expectEqual(interrupts, 0, "shootdown IPIs to parked APs (they flush when they wake)")
        Test.expectEqual(wrong, 0, "reads of the new mapping that returned the old page's contents")
        Pmap.remove(probeAddress, pages: 1)
        PhysicalMemory.free(new)
    }

    /// A new page, filled with a pattern of its own (this round's) and mapped at the probe
    /// address; the readers compare what they read with that pattern from now on. The caller
    /// frees the page.
    static func mapNewProbePage() -> PageIndex {
        let page = PhysicalMemory.allocate(order: 0, .ordinary)!
        mapProbe(page)
        return page
    }

    /// Fills `page` with a new round's pattern and maps it at the probe address.
    static func mapProbe(_ page: PageIndex) {
        probeRounds += 1
        let pattern = mappedPattern &+ probeRounds
        fill(page, pattern)
        Test.expect(Pmap.enter(probeAddress, page: page, protection: .readWrite, .system), "the probe page is mapped")
        probePattern.store(pattern, ordering: .releasing)
    }

    /// The readers' counters and flags back to zero, before they start. Every global the APs
    /// use is touched here first (an AP must not initialise one).
    static func resetProbe() {
        probePhase.store(0, ordering: .relaxed)
        probeStop.store(false, ordering: .relaxed)
        probeReads.store(0, ordering: .relaxed)
        probeReaders.store(0, ordering: .relaxed)
        probeFaults.store(0, ordering: .relaxed)
        probeStaleReads.store(0, ordering: .relaxed)
        probeStaleValue.store(0, ordering: .relaxed)
        probeWrongReads.store(0, ordering: .relaxed)
        probePattern.store(0, ordering: .relaxed)
    }

    static func fill(_ page: PageIndex, _ pattern: UInt64) {
        let direct = PhysicalMemory.pointer(to: page).assumingMemoryBound(to: UInt64.self)
        for index in 0..<Int(pageSize) / 8 { direct[index] = pattern }
    }

    /// The same for a CPU spinning for the kernel lock, which is parked too (KernelLock
    /// enterSlow): the APs read the page, then try to take the kernel lock, which the boot CPU
    /// holds. Once each is spinning for it - and so parked - the boot CPU removes the mapping
    /// (no IPI: a shooter does not wait for CPUs that wait for it), reuses the page, maps the
    /// address to a new one and lets go. Each AP must flush when it gets the lock: every read
    /// after it must return the new page's pattern.
    static func anAPSpinningForTheKernelLockForgetsWhatChanged() {
        guard let (readers, old) = startParkingRound(.takesTheKernelLock) else { return }
        let new = PhysicalMemory.allocate(order: 0, .ordinary)!
        // The readers meet first, interrupts off, outside the lock: a reader whose tick handler
        // waited for the lock mid-read would otherwise count as parked and read the old page
        // after the remapping (seen once in 20 boots), or never arrive while this CPU held it.
        probeParking.store(1, ordering: .releasing)
        waitFor { probeParked.load(ordering: .acquiring) == readers }
        var parked: UInt64 = 0
        var interrupts: UInt64 = 0
        withInterruptsDisabled {
            probeParking.store(2, ordering: .releasing)
            // Not waitFor: it halts, and this CPU holds the kernel lock with interrupts off.
            var spins: UInt64 = 0
            repeat {
                parked = 0
                SMP.forEachOnlineAP { cpu in
                    if !cpu.pointee.tlbActive.load(ordering: .sequentiallyConsistent) { parked += 1 }
                }
                CPU.pause()
                spins += 1
            } while parked < readers && spins < 200_000_000
            let interruptsBefore = TLBShootdown.interruptsSent
            Pmap.remove(probeAddress, pages: 1)
            interrupts = TLBShootdown.interruptsSent - interruptsBefore
            fill(old, reusedPattern)
            mapProbe(new)
            probeParking.store(3, ordering: .releasing)
        }
        let (reads, wrong) = finishParkingRound(readers: readers, readsBefore: probeReads.load(ordering: .acquiring))
        PhysicalMemory.free(old)
        Test.diagnostic("\(parked) of \(readers) AP(s) parked spinning for the kernel lock with the old translation; removal sent \(interrupts) IPIs; then \(reads) reads of the new page, \(wrong) returned another page's contents")
        Test.expectEqual(parked, readers, "APs parked while they spin for the kernel lock")
        Test.expectEqual(interrupts, 0, "shootdown IPIs to APs spinning for the kernel lock (they flush when they get it)")
        Test.expectEqual(wrong, 0, "reads of the new mapping that returned the old page's contents")
        Pmap.remove(probeAddress, pages: 1)
        PhysicalMemory.free(new)
    }

    /// The two parked cases' start: with more than one CPU, the readers reading a new probe
    /// page, to do `midway` when asked; their number and the page. Nil with one CPU.
    static func startParkingRound(_ midway: ProbeReaderMidway) -> (readers: UInt64, page: PageIndex)? {
        guard SMP.onlineCount > 1 else {
            Test.diagnostic("one CPU: no other TLB to shoot down")
            return nil
        }
        resetProbe()
        let page = mapNewProbePage()
        probeParking.store(0, ordering: .relaxed)
        probeParked.store(0, ordering: .relaxed)
        startReaders(midway)
        return (UInt64(SMP.onlineCount - 1), page)
    }

    /// Their end, once the readers may go on: 1,000 more reads apiece, then the readers
    /// stopped; the reads since `readsBefore` and the wrong ones.
    static func finishParkingRound(readers: UInt64, readsBefore: UInt64) -> (reads: UInt64, wrong: UInt64) {
        waitFor { probeReads.load(ordering: .acquiring) >= readsBefore + 1000 * readers }
        stopReaders()
        return (probeReads.load(ordering: .acquiring) - readsBefore, probeWrongReads.load(ordering: .acquiring))
    }

    /// Every AP reads the probe address until each has read through its mapping and they
    /// have made 1,000 reads apiece.
    static func startReaders(_ midway: ProbeReaderMidway = .keepsReading) {
        var readers = 0
        SMP.forEachOnlineAP { cpu in
            SMP.run(on: cpu, readTheProbePage, argument: midway.rawValue)
            readers += 1
        }
        waitFor { probeReaders.load(ordering: .acquiring) == UInt64(readers) && probeReads.load(ordering: .acquiring) >= UInt64(1000 * readers) }
    }

    static func stopReaders() {
        probeStop.store(true, ordering: .releasing)
        SMP.forEachOnlineAP { cpu in _ = waitUntilIdle(cpu) }
    }

    /// The negative case. A stale entry is what a CPU may keep, not what it must: QEMU was seen
    /// to lose one now and then (a 4-CPU boot in which every reader faulted at once). So a few
    /// rounds, and one that shows a stale read is enough.
    static func withoutShootdownsAnAPReadsTheReusedPage() {
        for _ in 0..<5 {
            guard let seen = staleReads(shootdowns: false) else { return }
            Test.expectEqual(seen.interrupts, 0, "shootdown IPIs with shootdowns off")
            if seen.stale > 0 { return }
        }
        Test.fail("without shootdowns no stale read was seen in 5 rounds: this machine would not show a missing shootdown")
    }

    /// Every AP reads a mapped page in a loop; the boot CPU removes the mapping, then writes a
    /// new pattern into the page through the direct map, as its next owner would. Returns the
    /// reads after the removal that faulted and that reached the page (through a stale TLB
    /// entry), and the shootdown IPIs sent; nil on one CPU.
    static func staleReads(shootdowns: Bool) -> (faults: UInt64, stale: UInt64, wrong: UInt64, interrupts: UInt64)? {
        guard SMP.onlineCount > 1 else {
            Test.diagnostic("one CPU: no other TLB to shoot down")
            return nil
        }
        let readers = SMP.onlineCount - 1
        resetProbe()
        let page = mapNewProbePage()
        let shootdownsBefore = TLBShootdown.interruptsSent
        // Each reader's TLB holds the translation once it has read through it.
        startReaders()
        TLBShootdown.enabled = shootdowns
        Pmap.remove(probeAddress, pages: 1)
        probePhase.store(1, ordering: .releasing)
        fill(page, reusedPattern)
        let readsAtRemoval = probeReads.load(ordering: .acquiring)
        // Long enough for every reader to try many times more.
        waitFor { probeFaults.load(ordering: .acquiring) + probeStaleReads.load(ordering: .acquiring) >= UInt64(1000 * readers) }
        stopReaders()
        // Counted before the late invalidation below: that one is this case's clean-up, and
        // it sends an IPI to any AP that has finished reading but has not parked yet (a CI
        // run at 4 CPUs counted 1 when the count was taken after it).
        let interrupts = TLBShootdown.interruptsSent - shootdownsBefore
        TLBShootdown.enabled = true
        // What the missing shootdown would have done, late: the APs forget the old
        // translation before they run anything else.
        if !shootdowns { TLBShootdown.invalidate(probeAddress, pages: 1) }
        PhysicalMemory.free(page)
        let stale = probeStaleReads.load(ordering: .acquiring)
        let faults = probeFaults.load(ordering: .acquiring)
        let wrong = probeWrongReads.load(ordering: .acquiring)
        let mode: StaticString = shootdowns ? "on" : "off"
        Test.diagnostic("shootdowns \(mode), \(readers) AP(s): \(readsAtRemoval) reads before the removal; after it \(faults) faulted and \(stale) reached the page (last \(hex: probeStaleValue.load(ordering: .relaxed))); \(interrupts) shootdown IPIs; \(wrong) reads while it was mapped returned another page's contents")
        return (faults, stale, wrong, interrupts)
    }
}

/// What a probe reader does when the boot CPU asks it to (probeParking 1); the raw value is
/// its SMP.run argument.
enum ProbeReaderMidway: UInt64 {
    case keepsReading = 0
    /// Parks (TLBShootdown.becomeParked) until asked on, as the idle halt does.
    case parks = 1
    /// Waits for the kernel lock the boot CPU holds, which parks it for the spin.
    case takesTheKernelLock = 2
}

// The probe reader: a plain C function, run on each AP through SMP.run.

/// An AP reading the TLB case's probe page until told to stop: a read after the boot CPU said
/// the mapping is gone must fault; one that succeeds went through a stale TLB entry.
/// `argument` is a ProbeReaderMidway: `.parks` parks when asked (probeParking 1), touching
/// nothing that changes, and becomes active again when asked (2), as the parked loop does
/// around work; `.takesTheKernelLock` waits, interrupts off, when asked (1), then takes and
/// drops the kernel lock, which the boot CPU holds from 2 until it says 3.
private func readTheProbePage(_ argument: UInt64) {
    let cpu = PerCPU.this
    let address = UnsafePointer<UInt64>(bitPattern: UInt(SMPTests.probeAddress.rawValue))!
    var value: UInt64 = 0
    var counted = false
    while !SMPTests.probeStop.load(ordering: .acquiring) {
        if argument == ProbeReaderMidway.parks.rawValue && SMPTests.probeParking.load(ordering: .acquiring) == 1 {
            TLBShootdown.becomeParked(cpu)
            SMPTests.probeParked.wrappingAdd(1, ordering: .releasing)
            while SMPTests.probeParking.load(ordering: .acquiring) == 1 { CPU.pause() }
            TLBShootdown.becomeActive(cpu)
        }
        if argument == ProbeReaderMidway.takesTheKernelLock.rawValue && SMPTests.probeParking.load(ordering: .acquiring) == 1 {
            // Arrived, interrupts off; once the boot CPU holds the lock (2) take it: the spin
            // parks this CPU until the boot CPU has remapped the page and let go (3).
            CPU.disableInterrupts()
            SMPTests.probeParked.wrappingAdd(1, ordering: .releasing)
            while SMPTests.probeParking.load(ordering: .acquiring) == 1 {
                TLBShootdown.answerPending(cpu)
                CPU.pause()
            }
            KernelLock.leave(KernelLock.enter())
            CPU.enableInterrupts()
        }
        let phase = SMPTests.probePhase.load(ordering: .acquiring)
        if arch_probe_read(address, &value) != 0 {
            if !counted {
                SMPTests.probeReaders.wrappingAdd(1, ordering: .releasing)
                counted = true
            }
            SMPTests.probeReads.wrappingAdd(1, ordering: .releasing)
            if phase == 0 && value != SMPTests.probePattern.load(ordering: .relaxed) {
                SMPTests.probeWrongReads.wrappingAdd(1, ordering: .relaxed)
            }
            if phase != 0 {
                SMPTests.probeStaleReads.wrappingAdd(1, ordering: .releasing)
                SMPTests.probeStaleValue.store(value, ordering: .relaxed)
            }
        } else {
            SMPTests.probeFaults.wrappingAdd(1, ordering: .releasing)
        }
    }
}
