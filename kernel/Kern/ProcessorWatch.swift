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
// Runs in the boot CPU's timer interrupt; the `heartbeat*Seen*` fields of an AP's area are
// the boot CPU's alone. A parked AP is halted with interrupts on and answers at once; an AP
// running work keeps its interrupts on but for short spin-locked sections.
//
// The boot CPU is watched the other way round: the first online AP (the watcher) looks, on
// each tick of its own APIC timer, at the boot CPU's tick count (Timer.ticks), which only the boot
// CPU's timer interrupt advances. If it has not moved for `bootCPUSilentSeconds` of the
// watcher's ticks, the watcher panics naming cpu 0, and the panic's stop NMI shows where the
// boot CPU spins. The check runs first in the AP's tick interrupt, before anything that takes
// a lock: a boot CPU stuck with the kernel lock held must still be reported. With one CPU
// nobody watches the boot CPU (the runner's timeout is the last resort).

import Synchronization

enum ProcessorWatch {
    /// How often each AP is sent a heartbeat.
    static let pingTicks = Timer.hertz / 10
    /// How long an AP may take no interrupt before it is reported.
    static let silentSeconds: UInt64 = 2
    /// How long the boot CPU may take no tick before its watcher reports it: longer than
    /// an AP's, because the boot CPU does the kernel's long interrupts-off work (boot-time
    /// walks over every page descriptor, consistency checks of large tables) while the APs
    /// are up.
    static let bootCPUSilentSeconds: UInt64 = 5

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

    /// Called first in every AP's tick interrupt (SMP.swift): the watcher's look at the boot
    /// CPU (see the file's header). Reads the PIT count without a lock - one aligned load.
    /// Not inlined: a report's backtrace names it.
    @inline(never)
    static func processorTick(_ cpu: PerCPURef) {
        cpu.pointee.processorTicks &+= 1
        guard cpu.pointee.index == watcherIndex else { return }
        let bootTicks = Timer.currentTicks
        let now = cpu.pointee.processorTicks
        if bootTicks != cpu.pointee.bootTicksSeen || cpu.pointee.bootTicksSeenAt == 0 {
            cpu.pointee.bootTicksSeen = bootTicks
            cpu.pointee.bootTicksSeenAt = now
        } else if now - cpu.pointee.bootTicksSeenAt >= bootCPUSilentSeconds * Timer.hertz {
            let boot = PerCPU.area(0)
            panic("watchdog: cpu 0 (APIC id \(boot.pointee.apicID)) has taken no timer tick for \(Timer.milliseconds(now - cpu.pointee.bootTicksSeenAt)) ms, seen from cpu \(cpu.pointee.index): it runs with interrupts off and does not come back (a hard lockup); its registers and backtrace are below", status: .deadlock)
        }
    }

    /// The AP that watches the boot CPU: the first one online (0: none yet).
    static var watcherIndex: Int {
        var first = 0
        SMP.forEachOnlineAP { cpu in if first == 0 { first = cpu.pointee.index } }
        return first
    }

    private static func report(_ cpu: PerCPURef, silentFor ticks: UInt64) -> Never {
        panic("watchdog: cpu \(cpu.pointee.index) (APIC id \(cpu.pointee.apicID)) has taken no interrupt for \(Timer.milliseconds(ticks)) ms: it runs with interrupts off and does not come back (a hard lockup); its registers and backtrace are below", status: .deadlock)
    }
}
