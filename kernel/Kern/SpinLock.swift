// SpinLock.swift - a lock for short critical sections that never sleep, correct on many CPUs.
//
// Taking the lock first turns interrupts off on this CPU (an interrupt handler that wanted the
// same lock would otherwise spin forever on the CPU that holds it), then claims the lock word
// with an atomic compare-and-exchange (acquire), spinning with `pause` while another CPU holds
// it. The word holds the holder's CPU index + 1, so a CPU taking a lock it already holds - a
// code path re-entering a data structure it is in the middle of changing - stops the kernel
// with the lock's name instead of spinning forever. While it holds any spin lock a CPU's
// preemptionCount (PerCPU) is not zero and the scheduler refuses to switch threads on it.
// Nothing may sleep while holding it. Releasing stores 0 with release ordering, so everything
// written inside the critical section is visible to the next holder, then restores interrupts.
//
// Atomics: the lock word is a plain UInt32 driven by three C11 `__atomic` builtins in
// CSupport/arch.h (`lock cmpxchg`, plain loads and stores). The Synchronization module's
// `Atomic` works in Embedded Swift here - PerCPU and the smp tests use it - but it is
// ~Copyable, and a lock inside a structure makes that structure ~Copyable too: MapControl then
// loses its unset placeholder and the key-path field offsets the gdb helpers read
// (kernel/Kern/DebugTable.swift). So a lock is a plain struct, and like any lock it must be
// used in place - through a pointer or as a global, never copied (a copy is another lock).

//
// Scope: a lock `.underKernelLock` (the vm_map locks) takes the kernel lock first
// (kernel/Kern/KernelLock.swift), as every other section of the shared kernel does, so that
// the two can never be taken in opposite orders on two CPUs. A `.standalone` lock (work the
// parked APs share, the smp suite's counter) does not: its word alone excludes the other CPUs.

import ArchSupport

/// Whether a spin lock nests inside the kernel lock (KernelLock.swift).
enum SpinLockScope {
    case underKernelLock
    case standalone
}

struct SpinLock {
    let name: StaticString
    let scope: SpinLockScope
    /// 0 when free, else the holding CPU's index + 1. Only through the atomics below.
    private var holder: UInt32 = 0
    /// Whether interrupts were on before the holder took the lock; the holder's alone.
    private var interruptsWereEnabled = false
    /// Times a CPU found the lock held and had to spin (statistics, updated by the holder).
    private(set) var contended: UInt64 = 0

    /// Whether this holder entered the kernel lock; the holder's alone.
    private var enteredKernelLock = false

    init(_ name: StaticString, _ scope: SpinLockScope) {
        self.name = name
        self.scope = scope
    }

    var isHeld: Bool {
        mutating get { withUnsafeMutablePointer(to: &holder) { arch_atomic_load_relaxed_u32($0) } != 0 }
    }

    private enum Acquisition { case atOnce, afterSpinning, alreadyHeldByThisCPU }

    mutating func lock(_ file: StaticString = #fileID, _ line: UInt = #line) {
        if LockOrder.isEnabled { LockOrder.acquiring(name, LockSite(file, line)) }
        let wasEnabled = CPU.interruptsEnabled
        CPU.disableInterrupts()
        let entered = scope == .underKernelLock ? KernelLock.enter() : false
        let cpu = PerCPU.this
        let me = UInt32(cpu.pointee.index + 1)
        let outcome = withUnsafeMutablePointer(to: &holder) { word -> Acquisition in
            if arch_atomic_load_relaxed_u32(word) == me { return .alreadyHeldByThisCPU }
            if arch_atomic_cmpxchg_acquire_u32(word, 0, me) != 0 { return .atOnce }
            repeat {
                // Read-only spinning keeps the cache line shared until the holder lets go.
                while arch_atomic_load_relaxed_u32(word) != 0 { CPU.pause() }
            } while arch_atomic_cmpxchg_acquire_u32(word, 0, me) == 0
            return .afterSpinning
        }
        if outcome == .alreadyHeldByThisCPU { panic("lock \(name) taken twice: a path re-entered what it holds") }
        if outcome == .afterSpinning { contended += 1 }
        interruptsWereEnabled = wasEnabled
        enteredKernelLock = entered
        cpu.pointee.preemptionCount += 1
        if scope == .standalone { cpu.pointee.standaloneSpinLocks += 1 }
    }

    mutating func unlock() {
        if LockOrder.isEnabled { LockOrder.released(name) }
        let cpu = PerCPU.this
        let restore = interruptsWereEnabled
        let entered = enteredKernelLock
        withUnsafeMutablePointer(to: &holder) { word in
            kassert(arch_atomic_load_relaxed_u32(word) == UInt32(cpu.pointee.index + 1), "lock \(name) released by a CPU that does not hold it")
            cpu.pointee.preemptionCount -= 1
            if scope == .standalone { cpu.pointee.standaloneSpinLocks -= 1 }
            arch_atomic_store_release_u32(word, 0)
        }
        KernelLock.leave(entered)
        if restore { CPU.enableInterrupts() }
    }
}
