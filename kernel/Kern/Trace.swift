// Trace.swift - samples of memory pressure on the serial log, for pictures (`make trace`).
//
// With `trace=on` the timer interrupt writes one short line every `intervalTicks` ticks:
//
//   T <tick> <free> <paged out> <paged in> <swap in use> <waiting> <pv_entry> <map_entry> <swblock>
//
// free pages, the swap device's cumulative page-out and page-in counts, swap blocks in use,
// threads asleep in vm_wait, and the free objects of each reserve zone. `start` first logs a
// header (`I trace: ...`) with what the host needs to read them: the interval, the tick rate,
// managed pages, the four thresholds, swap size and each zone's reserve. qemu/trace.py turns
// the lines into a chart (docs/trace.md).
//
// Why the timer tick and not a sampler thread: a thread would compete with the pageout thread
// and the workload for the CPU and change the very schedule it is meant to show. The tick
// runs anyway; sampling adds nine numbers formatted and some 50 bytes of polled UART output
// to it, and no scheduling decision.
// Every number is a counter the kernel already keeps, read in the interrupt handler with
// interrupts off (one CPU), so no count changes half-way through a line, and the zone
// counts are whole (a zone's lock is interrupts off). The monitor's `trace on|off` starts and
// stops the samples at any time (begin, end). Nothing allocates: the line is a
// LogMessage on the stack. Under QEMU's -icount the tick lands on the same instruction every
// run, so the same seed draws the same picture until the first swap I/O (QEMU's disk then
// completes in host time: docs/trace.md). With trace=off (the default) nothing at all is
// printed and the tick pays one test of a Bool.

extension LogTag {
    static let trace = LogTag("trace")
}

enum TraceSwitch: Int {
    case off = 0
    case on = 1
}

enum Trace {
    /// Set from `trace=` (KernelOptions); only `start` acts on it.
    static var requested = TraceSwitch.off
    /// True from `start` on: the timer samples.
    static var running = false
    /// Ticks between two samples: 1 tick is 1000 / Timer.hertz ms of guest time.
    static let intervalTicks: UInt64 = 1

    /// Logs the header and starts sampling, when trace=on. Called once at boot, after the
    /// timer, the zones and the pageout thread exist (their numbers are in the header).
    static func start() {
        guard requested == .on else { return }
        begin()
    }

    /// Logs the header and starts sampling, whatever `trace=` said: the monitor's `trace on`.
    /// A second begin logs the header again, so each stretch of samples has its own.
    static func begin() {
        let t = PhysicalMemory.thresholds
        Log.info(.trace, "header interval_ticks=\(intervalTicks) hz=\(Timer.hertz) managed=\(PhysicalMemory.managedPages) free_min=\(t.freeMin) free_reserved=\(t.freeReserved) paging_start=\(t.pagingStart) paging_target=\(t.pagingTarget) swap_blocks=\(SwapDevice.blocks)")
        Log.info(.trace, "protections \(protections: Reserves.protections)")
        Log.info(.trace, "zones \(Zones.pvEntry.name):\(Zones.pvEntry.state.pointee.reserveTarget) \(Zones.mapEntry.name):\(Zones.mapEntry.state.pointee.reserveTarget) \(Zones.swapBlock.name):\(Zones.swapBlock.state.pointee.reserveTarget)")
        Log.info(.trace, "fields T tick free out in swap waiting \(Zones.pvEntry.name) \(Zones.mapEntry.name) \(Zones.swapBlock.name)")
        running = true
    }

    /// Stops sampling (the monitor's `trace off`); `begin` starts it again.
    static func end() {
        running = false
        Log.info(.trace, "stopped at tick \(Timer.ticks)")
    }

    /// From the timer interrupt (interrupts off), every tick.
    @inline(__always)
    static func tick(_ ticks: UInt64) {
        guard running, ticks % intervalTicks == 0 else { return }
        sample(ticks)
    }

    @inline(never)
    private static func sample(_ ticks: UInt64) {
        Console.printLine("T \(ticks) \(PhysicalMemory.freePages) \(SwapDevice.pagesWritten) \(SwapDevice.pagesRead) \(SwapDevice.usedBlocks) \(VMWait.waiters) \(Zones.pvEntry.state.pointee.freeObjects) \(Zones.mapEntry.state.pointee.freeObjects) \(Zones.swapBlock.state.pointee.freeObjects)")
    }
}
