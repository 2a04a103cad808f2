// TLBShootdown.swift - making the other CPUs forget a kernel mapping that was removed or
// weakened, before the page behind it is used for anything else.
//
// Every CPU walks the same kernel page tables and caches what it walks in its own TLB. When
// the pmap clears or weakens a leaf entry it invalidates the address on the CPU it runs on
// (invlpg), but another CPU may still hold the old translation and keep reading - or writing -
// a page that the allocator has already handed to someone else. So each such change ends here:
// `invalidate(range)` returns only when no CPU that may use the kernel's changing mappings
// still holds a translation of the range.
//
// Which CPUs must be asked. A CPU that runs threads or work (SMP.run) may touch any kernel
// address; a parked AP - its idle thread halted - touches only mappings that never change (the
// kernel image, the direct map, its own stacks and the local APIC - SMP.swift), so its stale
// entries cannot be used until it runs work again. Those CPUs are not interrupted (waking a
// halted vCPU costs a round trip per pmap change): they flush their whole TLB before they
// next look at the run queue or run work. The hand-over is a generation count and a per-CPU
// `tlbActive` flag, both sequentially consistent:
//   - the shooting CPU bumps `generation`, then reads each AP's `tlbActive`;
//   - an AP waking from its halt stores `tlbActive = true`, then reads `generation`, and flushes
//     everything if it moved since its last flush.
// In the single total order of those four operations either the AP's read of `generation`
// comes after the bump (it flushes) or its store of `tlbActive` comes before the shooter's
// read (it is sent the IPI): no stale entry survives either way.
//
// An active CPU gets an IPI on `vector` with the range in its mailbox and answers by storing
// `tlbDone` = `tlbRequested` after it invalidated (release); the shooter waits for that
// (acquire) with interrupts off. Ranges longer than `fullFlushPages` flush the whole TLB
// instead of page by page - one request per pmap operation, however many pages it removes
// (Pmap.remove batches). Paging-structure caches: invlpg drops those too, and the pmap frees
// an emptied page table only after the shootdown of the addresses it mapped.
//
// Any CPU may shoot: `invalidate` runs inside a kernel-lock section (KernelLock.swift), so
// one shootdown runs at a time and the mailboxes need no lock of their
// own. The shooter posts every request, then waits for every answer, interrupts off. A CPU
// spinning for the kernel lock is parked the same way as a halted AP - it touches nothing
// that changes until it holds the lock, and then flushes - so it is not asked; one that was
// asked just before it started to spin answers from its spin loop (`answerPending`). Waiting
// for CPUs that only wait for the lock cost a host scheduling round per shootdown when vCPUs
// outnumber host cores: `paging` at 4 CPUs on 2 cores took 100 s against 4 s at 2 CPUs. A target spinning on a
// `.standalone` spin lock the shooter holds could not, so `invalidate` asserts the shooter
// holds none. A CPU is active except while it spins for the kernel lock and, for an AP,
// while its idle thread halts (Scheduler.idleLoop). Clearing an accessed bit
// (Pmap.testAndClearReferenced) is not shot down, as on Linux: a CPU with a stale entry may
// keep using the page without setting the bit again, which only makes pageout's guess worse.

import ArchSupport
import Synchronization

enum TLBShootdown {
    /// The IPI that asks an active AP to invalidate its mailbox's range.
    static let vector = 0xF3
    /// Longer ranges flush the whole TLB (a CR3 reload: the kernel sets no global pages).
    static let fullFlushPages = 32
    /// Bumped once per shootdown; an AP compares it with `tlbFlushedGeneration` when it
    /// becomes active.
    static let generation = Atomic<UInt64>(0)
    /// Off only for the smp suite's negative case, which shows that a stale entry is then seen.
    static var enabled = true

    /// Pauses a shooter waits for one answer before it reports the target as stuck: some
    /// seconds, against microseconds for an answer.
    static let answerPatience: UInt64 = 500_000_000
    /// Shootdown IPIs sent (kernel lock); the smp suite counts them.
    static var interruptsSent: UInt64 = 0

    static func start() {
        Interrupts.register(vector: vector, shootdownInterrupt, locking: .lockFree)
        PerCPU.this.pointee.tlbActive.store(true, ordering: .sequentiallyConsistent)
    }

    /// Makes every CPU that may use the kernel's changing mappings forget [start, start +
    /// pages pages). The calling CPU has already invalidated them itself. Allocates nothing,
    /// never sleeps; it spins, interrupts off, until each active CPU has answered.
    static func invalidate(_ start: VirtualAddress, pages: Int) {
        guard SMP.areasUsed > 1, enabled, pages > 0 else { return }
        withInterruptsDisabled {
            let me = PerCPU.this
            generation.wrappingAdd(1, ordering: .sequentiallyConsistent)
            // A CPU spinning with interrupts off for a standalone spin lock this CPU holds
            // could never answer: the wait below would never end.
            kassert(me.pointee.standaloneSpinLocks == 0, "a TLB shootdown while holding \(me.pointee.standaloneSpinLocks) standalone spin lock(s): a CPU spinning on one with interrupts off could never answer")
            // Every request is posted before any answer is awaited, so the targets invalidate
            // at the same time. One shooter at a time (the kernel lock) and each shootdown
            // waits for all its answers: a CPU not asked this time has tlbDone == tlbRequested.
            for index in 0..<SMP.areasUsed where index != me.pointee.index {
                let cpu = PerCPU.area(index)
                guard cpu.pointee.currentState == .online, cpu.pointee.tlbActive.load(ordering: .sequentiallyConsistent) else { continue }
                cpu.pointee.tlbStart = start.rawValue
                cpu.pointee.tlbPages = pages
                cpu.pointee.tlbRequested.wrappingAdd(1, ordering: .releasing)
                interruptsSent &+= 1
                LocalAPIC.sendIPI(to: cpu.pointee.apicID, vector: vector, .fixed)
            }
            for index in 0..<SMP.areasUsed where index != me.pointee.index {
                let cpu = PerCPU.area(index)
                let request = cpu.pointee.tlbRequested.load(ordering: .relaxed)
                SMP.awaitAnswer(patience: answerPatience, { cpu.pointee.tlbDone.load(ordering: .acquiring) == request }) {
                    panic("TLB shootdown: cpu \(index) has not answered request \(request) (it answered \(cpu.pointee.tlbDone.load(ordering: .acquiring)); active \(cpu.pointee.tlbActive.load(ordering: .acquiring)); kernel lock holder \(KernelLock.holder), depth here \(me.pointee.kernelLockDepth))")
                }
            }
        }
    }

    /// Invalidates what this CPU's mailbox asks for, if it asks, and answers. The IPI handler
    /// calls it, and so does a CPU spinning for the kernel lock or waiting with interrupts off
    /// (the shooter may be what it waits for). Returns whether there was a request.
    @discardableResult
    static func answerPending(_ cpu: PerCPURef) -> Bool {
        let request = cpu.pointee.tlbRequested.load(ordering: .acquiring)
        guard request != cpu.pointee.tlbDone.load(ordering: .relaxed) else { return false }
        let pages = cpu.pointee.tlbPages
        if pages > fullFlushPages {
            flushAll()
        } else {
            for number in 0..<pages { CPU.invalidatePage(VirtualAddress(cpu.pointee.tlbStart + UInt64(number) * pageSize)) }
        }
        cpu.pointee.tlbDone.store(request, ordering: .releasing)
        return true
    }

    /// Before a parked CPU runs work (an AP waking, any CPU that got the kernel lock after
    /// spinning): it may touch changing mappings from now on, so it says so and then flushes
    /// whatever changed while it was parked.
    static func becomeActive(_ cpu: PerCPURef) {
        cpu.pointee.tlbActive.store(true, ordering: .sequentiallyConsistent)
        let now = generation.load(ordering: .sequentiallyConsistent)
        if now != cpu.pointee.tlbFlushedGeneration {
            flushAll()
            cpu.pointee.tlbFlushedGeneration = now
        }
    }

    /// An AP halting after its work, or a CPU starting to spin for the kernel lock: from here
    /// on it touches only mappings that never change.
    static func becomeParked(_ cpu: PerCPURef) {
        cpu.pointee.tlbActive.store(false, ordering: .sequentiallyConsistent)
    }

    static func flushAll() { CPU.loadCR3(CPU.cr3) }
}

/// On an active CPU: invalidate the mailbox's range, then answer.
private func shootdownInterrupt(_ frame: UnsafeMutablePointer<InterruptFrame>) {
    TLBShootdown.answerPending(PerCPU.this)
    LocalAPIC.endOfInterrupt()
}
