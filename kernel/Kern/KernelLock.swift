// KernelLock.swift - the kernel lock: the one-CPU exclusion of "interrupts off", made to hold
// across CPUs once threads run on more than one.
//
// The kernel was written for one CPU, where turning interrupts off excludes everything else:
// interrupt handlers and other threads alike. Every shared structure - run queue, sleep
// queues, zones, the buddy allocator, pmap, vm_map, memory objects, swap, pageout, the
// statistics - is changed only inside such a section (`withInterruptsDisabled`, a zone's
// Environment.lock, a SpinLock, an interrupt handler). This lock keeps that rule true on many
// CPUs: each of those sections also holds it, so at most one CPU is inside any of them at a
// time. What runs outside them - copying and checking page contents, a thread's own work,
// the page-fault path between its sections, the APs' parked work - runs on every CPU at once.
// It is FreeBSD's Giant, or Linux 2.0's kernel lock, and it is meant to shrink: per-CPU
// caching (issue 20) takes the zones and the page allocator's fast paths out from under it.
//
// Rules:
//   - it is taken only with interrupts off on this CPU and is recursive per CPU: `depth`
//     (PerCPU.kernelLockDepth) counts the nesting, and the word names the holding CPU;
//   - a thread that switches away keeps it held by the CPU: the scheduler saves the depth in
//     the thread (Thread.kernelLockDepth) and the thread it switches to restores its own, so
//     the lock passes from thread to thread on a CPU exactly as "interrupts off" did. A new
//     thread starts by letting go of it (kernelThreadStart);
//   - a CPU spinning for it, interrupts off, is parked for TLB shootdowns (it touches no
//     changing mapping before it holds the lock, and then flushes if one happened), so the
//     holder does not wait for it; a request posted just before it parked is answered from
//     the spin, which polls its shootdown mailbox;
//   - the lock-order checker does not see it: it is taken around everything, so it is
//     always first, and recursion is its normal use;
//   - it is `active` only once application processors run threads (SMP.start). With one
//     CPU a section costs one load and a branch more than before;
//   - a panicking CPU takes it no more (`bypassedBy`): the CPU that held it has been stopped
//     and the report must still be printed.

import ArchSupport
import Synchronization

enum KernelLock {
    /// Whether the lock is in force (more than one CPU runs threads). Set once, by the boot
    /// CPU, before any AP takes a thread.
    static var active = false
    /// 0 when free, else the holding CPU's index + 1. Only through the atomics below.
    static var holder: UInt32 = 0
    /// The CPU (index + 1) that panicked; 0 normally.
    static var bypassedBy: UInt32 = 0
    /// Times a CPU had to spin for it (statistics, updated by the new holder).
    static var contended: UInt64 = 0
    /// Shootdowns answered by a CPU while it spun for the lock.
    static var shootdownsAnsweredSpinning: UInt64 = 0

    /// Takes the lock for this CPU (interrupts must be off) and returns whether it did: a
    /// section that found it inactive gives nothing back. Recursive.
    @inline(__always)
    static func enter() -> Bool {
        guard active else { return false }
        enterSlow()
        return true
    }

    @inline(__always)
    static func leave(_ entered: Bool) {
        if entered { leaveSlow() }
    }

    @inline(never)
    static func enterSlow() {
        let cpu = PerCPU.this
        let me = UInt32(cpu.pointee.index + 1)
        if cpu.pointee.kernelLockDepth > 0 {
            cpu.pointee.kernelLockDepth += 1
            return
        }
        if bypassedBy == me { return }
        let spun = withUnsafeMutablePointer(to: &holder) { word -> Bool in
            if arch_atomic_cmpxchg_acquire_u32(word, 0, me) != 0 { return false }
            // Until it holds the lock this CPU touches no mapping that can change, so it parks
            // for shootdowns meanwhile: a shooter (which holds the lock) skips it instead of
            // waiting for an answer that needs this vCPU to be scheduled, and it flushes when it
            // gets the lock if one happened (TLBShootdown.swift). A request posted before it
            // parked is still answered from the loop.
            let wasActive = cpu.pointee.tlbActive.load(ordering: .relaxed)
            if wasActive { TLBShootdown.becomeParked(cpu) }
            repeat {
                while arch_atomic_load_relaxed_u32(word) != 0 {
                    if TLBShootdown.answerPending(cpu) { shootdownsAnsweredSpinning &+= 1 }
                    // The holder may be draining or checking a zone: it waits for this CPU.
                    ZoneCacheRequests.answerPending(cpu)
                    CPU.pause()
                }
            } while arch_atomic_cmpxchg_acquire_u32(word, 0, me) == 0
            if wasActive { TLBShootdown.becomeActive(cpu) }
            return true
        }
        if spun { contended &+= 1 }
        cpu.pointee.kernelLockDepth = 1
    }

    @inline(never)
    static func leaveSlow() {
        let cpu = PerCPU.this
        if bypassedBy == UInt32(cpu.pointee.index + 1) && cpu.pointee.kernelLockDepth == 0 { return }
        kassert(cpu.pointee.kernelLockDepth > 0, "the kernel lock released by cpu \(cpu.pointee.index), which does not hold it")
        cpu.pointee.kernelLockDepth -= 1
        if cpu.pointee.kernelLockDepth == 0 {
            withUnsafeMutablePointer(to: &holder) { arch_atomic_store_release_u32($0, 0) }
        }
    }

    /// Whether this CPU holds it (always true while inactive: one CPU, interrupts off).
    static var isHeldHere: Bool {
        !active || PerCPU.this.pointee.kernelLockDepth > 0 || bypassedBy == UInt32(PerCPU.this.pointee.index + 1)
    }

    /// A new thread's first step: the CPU holds the lock for the thread that switched to it
    /// (at that thread's depth), and the new thread holds nothing.
    static func leaveForNewThread() {
        guard active else { return }
        let cpu = PerCPU.this
        guard cpu.pointee.kernelLockDepth > 0 else { return }
        cpu.pointee.kernelLockDepth = 0
        withUnsafeMutablePointer(to: &holder) { arch_atomic_store_release_u32($0, 0) }
    }

    /// The panicking CPU stops taking the lock (Panic.swift).
    static func bypassForPanic() {
        bypassedBy = UInt32(PerCPU.this.pointee.index + 1)
    }
}
