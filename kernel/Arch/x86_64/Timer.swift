// Timer.swift - the boot CPU's periodic tick: the kernel's clock (`ticks`), the watchdogs,
// timed sleepers, and its share of scheduling.
//
// It starts on the 8254 PIT (channel 0, IRQ 0: through the 8259s, then - on a machine with
// one - the I/O APIC: InterruptLines), programmed for `hertz` ticks per second from its
// 1,193,182 Hz input. The PIT is the one timer whose rate is known, so the local APIC timers
// are calibrated against it (LocalAPIC.calibrate). Once the APs are up, `moveToLocalAPIC`
// hands the tick to the boot CPU's own APIC timer in periodic mode at the same rate, as every
// AP's tick is (`tick=pit` keeps the PIT; so does a machine without a local APIC), and masks
// IRQ 0: from then on each CPU's scheduling tick is its own APIC timer, and the PIT only
// calibrated them. The boot CPU's APIC timer served the start-up delays until then
// (LocalAPIC.delay), which is why the move waits for the APs.
//
// Each tick: count it, acknowledge it, let the watchdog look, wake sleepers whose time has
// come, and preempt the running thread when its quantum is used up (kernel/Kern/Scheduler.swift).
// `ticks` is advanced only here, on the boot CPU; an AP reads it (ProcessorWatch watches it).

import ArchSupport

/// What drives the boot CPU's tick (the `tick=` option chooses; docs/smp.md).
enum TickSource: Int {
    case localAPIC = 0
    case pit = 1

    var name: StaticString { self == .pit ? "the PIT" : "its local APIC timer" }
}

enum Timer {
    static let hertz: UInt64 = 100
    static let inputFrequency: UInt64 = 1_193_182
    /// The boot CPU's tick's vector once it runs on its APIC timer (an AP's is SMP.tickVector).
    static let bootAPICVector = 0xF7
    static var ticks: UInt64 = 0
    static var running = false
    /// What `tick=` asked for, and what drives the tick now.
    static var requested = TickSource.localAPIC
    static var source = TickSource.pit
    /// Ticks each timer raised on the boot CPU (the interrupts suite checks which one runs).
    static var pitTicks: UInt64 = 0
    static var localAPICTicks: UInt64 = 0

    static func start() {
        let divisor = UInt16(inputFrequency / hertz)
        // Mode 2 (rate generator: one short low pulse per period), not mode 3 (square wave):
        // through QEMU's I/O APIC a square wave interrupted twice per period, and the kernel's
        // clock ran at 200 Hz while it counted 100 (InterruptTests.theAPICTimerRunsAtThePITRate).
        IOPort(0x43).write8(0x34)                       // channel 0, lobyte/hibyte, mode 2
        IOPort(0x40).write8(UInt8(divisor & 0xFF))
        IOPort(0x40).write8(UInt8(divisor >> 8))
        InterruptLines.enable(irq: 0, .isa, pitInterrupt)
        running = true
        Log.info(.cpu, "timer: PIT channel 0 at \(hertz) Hz (divisor \(divisor)); a thread's quantum is \(Scheduler.quantumTicks) ticks = \(UInt64(Scheduler.quantumTicks) * 1000 / hertz) ms")
    }

    /// Moves the boot CPU's tick from the PIT to its local APIC timer, at the rate the
    /// calibration measured, unless `tick=pit` or the APIC timer is not calibrated. Boot CPU,
    /// after SMP.start. Interrupts are off across the move, so no tick is counted twice: a
    /// PIT edge in the gap stays pending at a line that is masked from then on.
    static func moveToLocalAPIC() {
        guard requested == .localAPIC else {
            Log.info(.cpu, "timer: the boot CPU's tick stays on the PIT (tick=pit)")
            return
        }
        guard LocalAPIC.isMapped && LocalAPIC.countsPerTick > 0 else {
            Log.info(.cpu, "timer: the boot CPU's tick stays on the PIT (no calibrated local APIC)")
            return
        }
        Interrupts.register(vector: bootAPICVector, localAPICInterrupt)
        withInterruptsDisabled {
            InterruptLines.disable(irq: 0)
            LocalAPIC.startPeriodicTimer(vector: bootAPICVector)
            source = .localAPIC
        }
        Log.info(.cpu, "timer: the boot CPU's tick now runs on its local APIC timer (vector \(hex: UInt64(bootAPICVector)), \(LocalAPIC.countsPerTick) counts per tick); IRQ 0, the PIT, is masked")
    }

    /// `ticks`, read afresh from memory: for loops that wait for the timer interrupt to change it.
    static var currentTicks: UInt64 {
        arch_barrier()
        return ticks
    }

    static func milliseconds(_ ticks: UInt64) -> UInt64 { ticks * 1000 / hertz }
    static func ticks(milliseconds: UInt64) -> UInt64 { max(1, milliseconds * hertz / 1000) }

    /// One tick on the boot CPU, whichever timer raised it. Interrupts off, kernel lock held,
    /// the interrupt already acknowledged.
    fileprivate static func tick() {
        ticks &+= 1
        // Gives the other vCPUs their turn under QEMU 7.2's single-threaded TCG with -icount
        // (the harness's SMP boots). Each round gives the vCPUs in turn, the boot CPU first, a
        // budget up to the next timer deadline; a boot CPU busy until that deadline leaves the
        // APs none - they accept an interrupt but run no instruction, for as long as it stays
        // busy, and the watchdog sees an AP silent for 2 s (the irqroute=spread failures of
        // issue 19). `pause` ends a vCPU's turn there (target/i386 helper_pause), so each tick
        // hands the rest of the period to the next CPU. QEMU 8.1 shares the budget itself
        // (commit 83ecdb18eb, "ensure fairness with icount"). On real hardware: a spin hint.
        // Only once an AP is online: without icount the exit costs host time that varies (it
        // takes QEMU's global lock), which made the APIC timer's calibration against these
        // PIT ticks miss by 10% (the interrupts suite's rate check failed 2 boots in 3).
        if SMP.onlineCount > 1 { CPU.pause() }
        Watchdog.tick()
        Trace.tick(ticks)
        Scheduler.timerTick()
    }
}

private func pitInterrupt(_ frame: UnsafeMutablePointer<InterruptFrame>) {
    InterruptLines.endOfInterrupt(irq: 0)
    Timer.pitTicks &+= 1
    Timer.tick()
}

private func localAPICInterrupt(_ frame: UnsafeMutablePointer<InterruptFrame>) {
    LocalAPIC.endOfInterrupt()
    Timer.localAPICTicks &+= 1
    Timer.tick()
}
