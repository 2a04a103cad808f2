// Timer.swift - the periodic tick: PIT channel 0 on IRQ 0 (through the 8259s, then - on a
// machine with one - the I/O APIC: InterruptLines).
//
// The 8254 PIT divides 1,193,182 Hz; the kernel programs it for `hertz` ticks per second.
// Each tick: count it, acknowledge it, let the watchdog look, wake sleepers whose time has
// come, and preempt the running thread when its quantum is used up (kernel/Kern/Scheduler.swift).

import ArchSupport

enum Timer {
    static let hertz: UInt64 = 100
    static let inputFrequency: UInt64 = 1_193_182
    static var ticks: UInt64 = 0
    static var running = false

    static func start() {
        let divisor = UInt16(inputFrequency / hertz)
        IOPort(0x43).write8(0x36)                       // channel 0, lobyte/hibyte, square wave
        IOPort(0x40).write8(UInt8(divisor & 0xFF))
        IOPort(0x40).write8(UInt8(divisor >> 8))
        InterruptLines.enable(irq: 0, .isa, timerInterrupt)
        running = true
        Log.info(.cpu, "timer: PIT channel 0 at \(hertz) Hz (divisor \(divisor)); a thread's quantum is \(Scheduler.quantumTicks) ticks = \(UInt64(Scheduler.quantumTicks) * 1000 / hertz) ms")
    }

    /// `ticks`, read afresh from memory: for loops that wait for the timer interrupt to change it.
    static var currentTicks: UInt64 {
        arch_barrier()
        return ticks
    }

    static func milliseconds(_ ticks: UInt64) -> UInt64 { ticks * 1000 / hertz }
    static func ticks(milliseconds: UInt64) -> UInt64 { max(1, milliseconds * hertz / 1000) }
}

private func timerInterrupt(_ frame: UnsafeMutablePointer<InterruptFrame>) {
    Timer.ticks &+= 1
    InterruptLines.endOfInterrupt(irq: 0)
    Watchdog.tick()
    Trace.tick(Timer.ticks)
    Scheduler.timerTick()
}
