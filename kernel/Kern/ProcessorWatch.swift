// ProcessorWatch.swift - the watchdog's eye on the other CPUs: a CPU that stops taking
// interrupts is reported, with its registers, instead of hanging the machine silently.
//
// Only the boot CPU has a tick (Timer.swift). Every `pingTicks` it sends each online AP a
// heartbeat IPI (SMP.heartbeatVector), whose handler does nothing but count it in the AP's
// per-CPU area. An AP whose count has not moved for `silentSeconds` has had its interrupts
// off all that time - a spin lock never released, a loop with interrupts off - or is wedged
// in an interrupt handler: a hard lockup, in Linux's words. The watchdog then panics naming
// it; the panic stops every other CPU with an NMI, which reaches a CPU with interrupts off,
// and prints each one's registers and backtrace (SMP.stopOthers), so the report shows where
// the silent CPU spins.
//
// Runs in the boot CPU's timer interrupt; the `seen*` fields of an AP's area are the boot
// CPU's alone. A parked AP is halted with interrupts on and answers at once; an AP running
// work keeps its interrupts on but for short spin-locked sections. The boot CPU itself is
// not watched here: if it stops taking interrupts there is no tick to notice with (the
// runner's timeout is the last resort).

import Synchronization

enum ProcessorWatch {
    /// How often each AP is sent a heartbeat.
    static let pingTicks = Timer.hertz / 10
    /// How long an AP may take no interrupt before it is reported.
    static let silentSeconds: UInt64 = 2

    /// Called by Watchdog.tick on every boot-CPU tick.
    static func tick() {
        guard SMP.areasUsed > 1, Timer.ticks % pingTicks == 0 else { return }
        let now = Timer.ticks
        SMP.forEachOnlineAP { cpu in
            let beats = cpu.pointee.heartbeats.load(ordering: .relaxed)
            if beats != cpu.pointee.heartbeatsSeen || cpu.pointee.heartbeatSeenTick == 0 {
                cpu.pointee.heartbeatsSeen = beats
                cpu.pointee.heartbeatSeenTick = now
            } else if now - cpu.pointee.heartbeatSeenTick >= silentSeconds * Timer.hertz {
                report(cpu, silentFor: now - cpu.pointee.heartbeatSeenTick)
            }
            LocalAPIC.sendIPI(to: cpu.pointee.apicID, vector: SMP.heartbeatVector, .fixed)
        }
    }

    private static func report(_ cpu: PerCPURef, silentFor ticks: UInt64) -> Never {
        panic("watchdog: cpu \(cpu.pointee.index) (APIC id \(cpu.pointee.apicID)) has taken no interrupt for \(Timer.milliseconds(ticks)) ms: it runs with interrupts off and does not come back (a hard lockup); its registers and backtrace are below", status: .deadlock)
    }
}
