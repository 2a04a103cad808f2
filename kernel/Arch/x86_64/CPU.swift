// CPU.swift - typed access to the processor's registers and instructions.
//
// Thin wrappers over kernel/Arch/x86_64/CSupport/arch.h: port I/O, control registers, MSRs, the
// interrupt flag, halting, the time-stamp counter. Everything that touches the processor
// directly goes through here, so the rest of the kernel reads as Swift.

import ArchSupport

/// An x86 I/O port.
struct IOPort {
    let number: UInt16

    init(_ number: UInt16) { self.number = number }

    func read8() -> UInt8 { arch_inb(number) }
    func write8(_ value: UInt8) { arch_outb(number, value) }
    func read16() -> UInt16 { arch_inw(number) }
    func write16(_ value: UInt16) { arch_outw(number, value) }
    func read32() -> UInt32 { arch_inl(number) }
    func write32(_ value: UInt32) { arch_outl(number, value) }
    func offset(_ delta: UInt16) -> IOPort { IOPort(number + delta) }
}

enum CPU {
    static var cr0: UInt64 { arch_read_cr0() }
    /// The faulting linear address of the last page fault.
    static var cr2: UInt64 { arch_read_cr2() }
    static var cr3: UInt64 { arch_read_cr3() }
    static var cr4: UInt64 { arch_read_cr4() }
    static func loadCR3(_ value: UInt64) { arch_write_cr3(value) }

    static func timestamp() -> UInt64 { arch_rdtsc() }

    static var interruptsEnabled: Bool { arch_read_rflags() & (1 << 9) != 0 }
    static func disableInterrupts() { arch_cli() }
    static func enableInterrupts() { arch_sti() }
    /// Waits for the next interrupt with interrupts enabled, without a window in which a
    /// wake-up interrupt could be missed.
    static func enableInterruptsAndHalt() { arch_sti_hlt() }
    static func pause() { arch_pause() }
    /// An empty loop of `iterations` turns (a few instructions each), kept by the compiler.
    static func spin(iterations: UInt) { arch_spin(iterations) }

    static func invalidatePage(_ address: VirtualAddress) { arch_invlpg(address.rawValue) }

    static var framePointer: UInt64 { arch_read_rbp() }
    static var stackPointer: UInt64 { arch_read_rsp() }

    /// Halts forever with interrupts off.
    static func haltForever() -> Never {
        while true {
            arch_cli()
            arch_hlt()
        }
    }

    struct CPUIDResult { let eax, ebx, ecx, edx: UInt32 }

    static func cpuid(_ leaf: UInt32, _ subleaf: UInt32 = 0) -> CPUIDResult {
        var a: UInt32 = 0, b: UInt32 = 0, c: UInt32 = 0, d: UInt32 = 0
        arch_cpuid(leaf, subleaf, &a, &b, &c, &d)
        return CPUIDResult(eax: a, ebx: b, ecx: c, edx: d)
    }

    /// The APIC id the processor was given at reset (CPUID leaf 1, EBX bits 31-24).
    static var initialAPICID: UInt32 { cpuid(1).ebx >> 24 }

    /// True when the CPU supports no-execute page protection (EFER.NXE was set at boot).
    static var hasNXBit: Bool { cpuid(0x8000_0001).edx & (1 << 20) != 0 }
}

/// Adds one to a statistics counter that several threads update: one instruction, so no
/// interrupt (and no preemption) can split the read from the write.
@inline(__always)
func countEvent(_ counter: UnsafeMutablePointer<UInt64>) {
    arch_increment(counter)
}

/// Runs `body` with interrupts disabled and the kernel lock held (kernel/Kern/KernelLock.swift),
/// restoring the previous state afterwards. This is the kernel's shortest critical section:
/// it excludes interrupt handlers, preemption and - through the kernel lock - every other
/// CPU's sections alike. Nothing in `body` may sleep except through Scheduler.sleep.
@inline(__always)
func withInterruptsDisabled<R>(_ body: () -> R) -> R {
    let wasEnabled = CPU.interruptsEnabled
    CPU.disableInterrupts()
    let entered = KernelLock.enter()
    let result = body()
    KernelLock.leave(entered)
    if wasEnabled { CPU.enableInterrupts() }
    return result
}
