// SMPWatchTests.swift - the smp suite's watchdog cases: a CPU that stops taking interrupts
// is reported by another - an AP by the boot CPU's heartbeats, the boot CPU by the first AP
// watching its tick - and each AP's own tick, which the watcher counts time in, runs at
// the PIT's rate (kernel/Kern/ProcessorWatch.swift). Registered in SMPTests.cases.

extension SMPTests {
    /// An AP spins with its interrupts off and never comes back: the boot CPU's watchdog must
    /// notice within ProcessorWatch.silentSeconds and panic naming it (the runner's judge then
    /// sees the AP stopped, its registers in spinWithInterruptsOff).
    static func anAPWithInterruptsOffIsReported() {
        guard let cpu = firstOnlineAP() else { return }
        SMP.run(on: cpu, spinWithInterruptsOff, argument: 0)
        Scheduler.sleep(ticks: 3 * ProcessorWatch.silentSeconds * Timer.hertz)
        Test.fail("cpu \(cpu.pointee.index) spun with interrupts off for \(3 * ProcessorWatch.silentSeconds) s and the watchdog said nothing")
    }

    /// Each AP's scheduling tick is its APIC timer, calibrated on the PIT (LocalAPIC.calibrate):
    /// over 100 PIT ticks every AP must count about 100 of its own. The watcher's report of a
    /// silent boot CPU (ProcessorWatch.processorTick) measures time in them.
    static func everyAPTicksAtThePITRate() {
        let span: UInt64 = 100
        var before = [UInt64](repeating: 0, count: SMP.areasUsed)
        SMP.forEachOnlineAP { cpu in before[cpu.pointee.index] = cpu.pointee.processorTicks }
        let start = Timer.currentTicks
        Scheduler.sleep(ticks: span)
        let elapsed = Timer.currentTicks - start
        SMP.forEachOnlineAP { cpu in
            let counted = cpu.pointee.processorTicks - before[cpu.pointee.index]
            Test.diagnostic("cpu \(cpu.pointee.index): \(counted) APIC timer ticks in \(elapsed) PIT ticks")
            Test.expect(counted * 10 >= elapsed * 8 && counted * 10 <= elapsed * 12,
                        "cpu \(cpu.pointee.index) counted \(counted) ticks of its own in \(elapsed) PIT ticks (within 20%)")
        }
    }

    /// The boot CPU spins with interrupts off, so its tick stops: the first AP must say so
    /// (ProcessorWatch.processorTick) and stop it with the panic's NMI.
    static func theBootCPUWithInterruptsOffIsReported() {
        guard firstOnlineAP() != nil else { return }
        let seconds = 3 * ProcessorWatch.bootCPUSilentSeconds
        CPU.disableInterrupts()
        LocalAPIC.delay(microseconds: seconds * 1_000_000)     // a spin: interrupts are off
        CPU.enableInterrupts()
        Test.fail("the boot CPU spun with interrupts off for \(seconds) s and no AP reported it")
    }
}

/// Never returns: interrupts off, spinning - what a lost spin-lock release looks like.
@inline(never)
private func spinWithInterruptsOff(_ argument: UInt64) {
    CPU.disableInterrupts()
    while true { CPU.pause() }
}
