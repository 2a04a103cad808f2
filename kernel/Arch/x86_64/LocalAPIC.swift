// LocalAPIC.swift - each CPU's local APIC, in xAPIC mode: IPIs, end of interrupt, its timer.
//
// The registers are 4 KiB of memory-mapped I/O at the address the firmware gives (normally
// 0xfee00000), the same physical address on every CPU - each CPU sees its own APIC there.
// Pmap.bootstrap maps that page uncached (PCD|PWT) and no-execute at `KernelLayout.localAPICWindow`.
// Registers are 32 bits wide, 16-byte aligned, and must be accessed with 32-bit loads and stores.
//
// The APIC timer is calibrated on the boot CPU against the PIT (every local APIC runs on the
// same bus clock). Each AP's APIC timer is its periodic tick from the moment it is online; the
// boot CPU's serves the short delays of the INIT-SIPI-SIPI sequence (one-shot) until the APs
// are up, and then becomes its periodic tick too (Timer.moveToLocalAPIC).

import ArchSupport

enum LocalAPIC {
    enum Register: Int {
        case id = 0x20
        case version = 0x30
        case taskPriority = 0x80
        /// The first of eight 32-bit registers holding the 256 in-service bits (ISR), and of the
        /// eight holding the requested ones (IRR); each 16 bytes after the last.
        case inServiceFirst = 0x100
        case requestedFirst = 0x200
        case endOfInterrupt = 0xB0
        case spurious = 0xF0
        case errorStatus = 0x280
        case commandLow = 0x300
        case commandHigh = 0x310
        case timer = 0x320
        case lint0 = 0x350
        case lint1 = 0x360
        case error = 0x370
        case timerInitialCount = 0x380
        case timerCurrentCount = 0x390
        case timerDivide = 0x3E0
    }

    /// How an IPI is delivered (interrupt command register bits 8-10).
    enum Delivery: UInt32 {
        case fixed = 0x000
        case nmi = 0x400
        case initialize = 0x500
        case startup = 0x600
    }

    /// Which CPU's APIC is being set up: the boot CPU keeps the 8259's interrupts on LINT0.
    enum Role {
        case bootProcessor
        case applicationProcessor
    }

    static let spuriousVector = 0xFF
    static let masked: UInt32 = 1 << 16
    static let timerDivideBy16: UInt32 = 0x3
    /// The LVT timer entry's periodic mode (bits 17-18 = 01).
    static let periodic: UInt32 = 1 << 17

    /// Set by Pmap.bootstrap when it maps the registers; 0 until then (and without an APIC).
    static var base = VirtualAddress(0)
    /// APIC timer counts (divided by 16) per PIT tick; 0 until calibrated.
    static var countsPerTick: UInt64 = 0

    static var isMapped: Bool { base.rawValue != 0 }

    /// One 32-bit volatile access: a plain Swift load was once narrowed by the optimiser to a
    /// 1-byte load of the ID register's top byte, which the APIC answers with 0.
    @inline(__always)
    static func read(_ register: Register) -> UInt32 {
        arch_mmio_read32((base + UInt64(register.rawValue)).rawValue)
    }

    @inline(__always)
    static func write(_ register: Register, _ value: UInt32) {
        arch_mmio_write32((base + UInt64(register.rawValue)).rawValue, value)
    }

    /// The highest vector whose bit is set in the running CPU's ISR (`.inServiceFirst`) or IRR
    /// (`.requestedFirst`), or -1 when none is.
    static func highestVector(in bank: Register) -> Int {
        for word in stride(from: 7, through: 0, by: -1) {
            let bits = arch_mmio_read32((base + UInt64(bank.rawValue + word * 0x10)).rawValue)
            if bits != 0 { return word * 32 + 31 - bits.leadingZeroBitCount }
        }
        return -1
    }

    /// The running CPU's APIC id (bits 24-31 of the ID register).
    static var id: UInt32 { read(.id) >> 24 }

    /// Software-enables the running CPU's APIC with its spurious vector, accepts every priority,
    /// and sets its local interrupt lines: on the boot CPU LINT0 delivers the 8259's interrupts
    /// (ExtINT: the PIT tick keeps arriving as before) until InterruptLines moves the device
    /// lines to the I/O APIC and closes it; on the others LINT0 is masked. LINT1 is
    /// the NMI line everywhere. The timer and error interrupts stay masked.
    static func enable(_ role: Role) {
        write(.taskPriority, 0)
        write(.spurious, 0x100 | UInt32(spuriousVector))
        write(.lint0, role == .bootProcessor ? 0x700 : masked)
        write(.lint1, Delivery.nmi.rawValue)
        write(.error, masked)
        write(.timer, masked)
        write(.errorStatus, 0)
    }

    static func endOfInterrupt() { write(.endOfInterrupt, 0) }

    /// Masks LINT0, the 8259s' way in (ExtINT), once the I/O APIC delivers every device line.
    static func closeLegacyLine() { write(.lint0, masked) }

    /// Sends an IPI to the CPU with `apicID` and waits until the APIC has sent it.
    static func sendIPI(to apicID: UInt32, vector: Int = 0, _ delivery: Delivery) {
        withInterruptsDisabled {
            write(.commandHigh, apicID << 24)
            let levelAssert: UInt32 = 1 << 14
            write(.commandLow, delivery.rawValue | levelAssert | UInt32(vector & 0xFF))
            while read(.commandLow) & (1 << 12) != 0 { CPU.pause() }   // delivery status: pending
        }
    }

    // MARK: - The timer, for delays

    /// Counts the APIC timer's decrements over `ticks` PIT ticks. The boot CPU, interrupts on,
    /// the PIT running.
    ///
    /// Preemption is off meanwhile, and the count is read in the same interrupts-off check that
    /// sees the last edge: a switch to another thread between the two would count that
    /// thread's time into the measurement, and the boot CPU's own tick runs on this timer
    /// (Timer.moveToLocalAPIC), so an error here is an error in the kernel's clock. The
    /// interrupts suite checks the result against PIT channel 2 by another method.
    ///
    /// Three measurements, and the median is kept: each depends on when two tick interrupts
    /// were taken, and under TCG on a loaded host one of them can come milliseconds late (a
    /// clean-clone make test, two boots at once, calibrated 670,000 counts per tick where
    /// 625,000 is right: the interrupts suite's 5% check failed). One late edge spoils one
    /// measurement, not the median.
    static func calibrate(ticks: UInt64 = 5) {
        kassert(Timer.running && CPU.interruptsEnabled, "APIC timer calibration needs the PIT tick")
        Preemption.disable()
        defer { Preemption.enable() }
        write(.timerDivide, timerDivideBy16)
        write(.timer, masked)                       // one-shot, masked
        var first = countOnce(ticks: ticks), second = countOnce(ticks: ticks), third = countOnce(ticks: ticks)
        if first > second { swap(&first, &second) }
        if second > third { swap(&second, &third) }
        if first > second { swap(&first, &second) }
        countsPerTick = max(1, second / ticks)
        Log.info(.cpu, "APIC timer: \(countsPerTick) counts per PIT tick (\(Timer.milliseconds(1)) ms) with divider 16, the median of \(first / ticks), \(second / ticks) and \(third / ticks) over \(ticks) ticks each: bus clock about \(countsPerTick * 16 * Timer.hertz / 1000) kHz")
    }

    /// The APIC timer's decrements from one PIT tick edge to the edge `ticks` later.
    private static func countOnce(ticks: UInt64) -> UInt64 {
        let start = waitForTickEdge()
        write(.timerInitialCount, UInt32.max)
        var counted: UInt64 = 0
        haltUntil {
            guard Timer.currentTicks >= start + ticks else { return false }
            counted = UInt64(UInt32.max - read(.timerCurrentCount))
            return true
        }
        write(.timerInitialCount, 0)
        return counted
    }

    /// Waits for the PIT tick to change and returns the new count, so a measurement starts on a tick.
    private static func waitForTickEdge() -> UInt64 {
        haltUntilTick(Timer.currentTicks + 1)
        return Timer.currentTicks
    }

    /// Halts until the PIT tick count reaches `tick` (interrupts on). Halting, not spinning:
    /// under `-icount` a spin with `pause` leaves QEMU's execution loop on every iteration and
    /// took 5 s of host time per boot for these 60 ms (10 s with 4 vCPUs), while a halted CPU
    /// lets the virtual clock jump to the next tick. The check runs with interrupts off and
    /// `sti; hlt` follows it, so a tick between the two still ends the halt (sti's shadow).
    private static func haltUntilTick(_ tick: UInt64) {
        haltUntil { Timer.currentTicks >= tick }
    }

    /// Halts until `done` (interrupts on, an interrupt will come that can make it true).
    private static func haltUntil(_ done: () -> Bool) {
        while true {
            CPU.disableInterrupts()
            if done() { break }
            CPU.enableInterruptsAndHalt()
        }
        CPU.enableInterrupts()
    }

    /// Starts this CPU's APIC timer as its periodic scheduling tick on `vector`, at the PIT's
    /// rate. The timer is the CPU's own from then on: `delay` counts down its periods.
    static func startPeriodicTimer(vector: Int) {
        kassert(countsPerTick > 0 && countsPerTick <= UInt64(UInt32.max), "APIC timer started before calibration (\(countsPerTick) counts per tick)")
        write(.timerDivide, timerDivideBy16)
        write(.timer, UInt32(vector) | periodic)
        write(.timerInitialCount, UInt32(countsPerTick))
    }

    /// The one-shot APIC timer interrupt that ends a halted `delay` on the boot CPU (its
    /// handler only acknowledges it). Registered by SMP.start; spinning delays before that.
    static let alarmVector = 0xF6
    static var alarmRegistered = false

    /// Waits at least `microseconds` on this CPU's APIC timer (calibrated first). On the boot
    /// CPU while the PIT still ticks (the APs' start-up), a one-shot count: halted until the
    /// timer's alarm when interrupts are on, spinning on the count when they are off. Where the
    /// timer is the CPU's periodic tick (every AP; the boot CPU after Timer.moveToLocalAPIC), it
    /// counts down the running timer instead. Halting matters under `-icount`, where each spin
    /// step leaves QEMU's execution loop: an AP start's 10 ms cost a second of host time.
    static func delay(microseconds: UInt64) {
        kassert(countsPerTick > 0, "APIC delay before calibration")
        let tickMicroseconds = 1_000_000 / Timer.hertz
        let counts = max(1, countsPerTick * microseconds / tickMicroseconds)
        if PerCPU.this.pointee.index == 0 && Timer.source == .pit {
            delayOneShot(counts)
        } else {
            delayOnTheTick(counts)
        }
    }

    private static func delayOneShot(_ counts: UInt64) {
        var remaining = counts
        let halting = alarmRegistered && CPU.interruptsEnabled
        write(.timer, halting ? UInt32(alarmVector) : masked)    // one-shot
        while remaining > 0 {
            let chunk = min(remaining, UInt64(UInt32.max))
            write(.timerInitialCount, UInt32(chunk))
            if halting {
                haltUntil { read(.timerCurrentCount) == 0 }
            } else {
                while read(.timerCurrentCount) != 0 { CPU.pause() }
            }
            remaining -= chunk
        }
        write(.timer, masked)
    }

    /// Counts `counts` decrements of the periodic timer that is this CPU's tick, across its
    /// reloads. With interrupts on it halts while more than a period remains (the tick itself
    /// ends each halt) and spins for the rest; with them off it spins. A gap between two reads
    /// longer than a period (the vCPU descheduled by the host) is counted as less than it
    /// was, which only makes the wait longer.
    private static func delayOnTheTick(_ counts: UInt64) {
        let period = UInt64(read(.timerInitialCount))
        kassert(period > 0 && read(.timer) & periodic != 0, "APIC delay on cpu \(PerCPU.this.pointee.index), whose APIC timer is not running periodically")
        var previous = UInt64(read(.timerCurrentCount))
        var elapsed: UInt64 = 0
        while elapsed < counts {
            if CPU.interruptsEnabled && counts - elapsed > period {
                CPU.enableInterruptsAndHalt()
            } else {
                CPU.pause()
            }
            let now = UInt64(read(.timerCurrentCount))
            elapsed += now <= previous ? previous - now : previous + period - now
            previous = now
        }
    }
}
