// Scheduler.swift - round-robin preemptive scheduling on every CPU, sleep and wakeup,
// preemption control.
//
// One run queue serves every CPU: a FIFO of ready threads, under the kernel lock
// (KernelLock.swift) like everything the scheduler touches. One queue rather than one per
// CPU because the kernel lock already serialises every enqueue and dequeue, so per-CPU
// queues would add balancing and migration code without removing a lock - they come with
// per-CPU caching, when the lock shrinks (issue 20). Migration is therefore implicit: a
// thread runs on whichever CPU takes it next, unless its affinity names one CPU (the boot
// thread "main" stays on the boot CPU; each CPU's idle thread on its CPU). A CPU with nothing
// to run runs its idle thread, which halts until an interrupt; a thread made ready for a
// halted CPU wakes it with an IPI (`kick`).
//
// Each CPU's tick takes `quantumTicks` from the running thread and preempts it at zero: the
// PIT's on the boot CPU (kernel/Arch/x86_64/Timer.swift), which also counts time and wakes
// timed sleepers, and the local APIC timer's on each AP (SMP.swift). A switch from a tick
// happens inside the interrupt handler: the interrupted thread's registers stay on its stack
// and it returns through the handler when it next runs - on any CPU.
//
// sleep(on:) and wakeup(_:) work on wait channels (any address). Sleeping must be done with
// interrupts off, after checking the condition, so that no wakeup can fall between the check
// and the sleep: `withInterruptsDisabled { while !condition { Scheduler.sleep(on:...) } }`.
// Every sleeping thread records why (WaitInfo) and what it waits on (WaitKind), from which the
// deadlock watchdog draws the wait-for graph (kernel/Kern/WaitGraph.swift).
// Sleepers wait on sleep queues (kernel/Kern/SleepQueues.swift): a wakeup looks only at the
// chain its channel hashes to, and the tick only at the head of the timeout list.
//
// Locking: the run queue, the sleep queues and every thread's state and links change only
// with interrupts off and the kernel lock held (withInterruptsDisabled). A CPU switches
// threads holding the kernel lock, which passes to the thread it switches to (KernelLock.swift):
// a thread that put itself on the run queue cannot be taken by another CPU before its
// registers are saved. A CPU may not switch while it holds a spin lock (PerCPU.preemptionCount).
//
// Preemption off (Preemption.disable) means what it meant on one CPU: the thread keeps the
// processor and no other thread runs until it enables preemption again. With several CPUs
// that makes it the sole thread: the other CPUs give up what they run and stay idle meanwhile.

import ArchSupport
import Synchronization

enum Scheduler {
    static let quantumTicks = 2
    /// The running thread: the running CPU's per-CPU field (kernel/Arch/x86_64/PerCPU.swift).
    /// Set by `bootstrap`; until then the never-mapped placeholder (kernel/Lib/UnsetPlaceholder.swift).
    static var current: ThreadRef {
        @inline(__always) get { PerCPU.runningThread }
        @inline(__always) set { PerCPU.this.pointee.setCurrentThread(newValue) }
    }
    static var idle: ThreadRef {
        @inline(__always) get { PerCPU.this.pointee.idleThread }
        @inline(__always) set { PerCPU.this.pointee.idleThread = newValue }
    }
    static var runHead: ThreadRef? = nil
    static var runTail: ThreadRef? = nil
    static var switches: UInt64 = 0
    static var started = false
    /// The thread that has preemption off while several CPUs run threads: the only one any
    /// CPU may run until it enables preemption again. Kernel lock.
    static var soleThread: ThreadRef? = nil
    /// Wake IPIs sent to idle CPUs (statistics, kernel lock).
    static var kicks: UInt64 = 0
    /// Threads sleeping until a device finishes a transfer (kernel/Drivers/Disk.swift). While
    /// there are any, the boot CPU's idle thread waits with `pause` instead of `hlt`: under QEMU's
    /// `-icount sleep=off` a halted CPU makes guest time jump to the next timer, so that a
    /// transfer taking a millisecond of host time would seem to take many ticks - enough for
    /// the deadlock watchdog to see a pageout thread that frees nothing. Spinning keeps guest
    /// time moving with the instructions run, as it did when the ATA driver polled. Interrupts off.
    static var transfersAwaited = 0
    /// Bumped (kernel lock) whenever a CPU that found nothing to run may now find something:
    /// a thread queued, the sole thread gone. An idle CPU woken by an interrupt goes back to
    /// sleep without the kernel lock while it has not moved (`idleMayStay`).
    static var queueChanges: UInt64 = 0
    /// Empty-loop turns between two pauses of the boot CPU's idle spin while a transfer is awaited.
    static let transferSpinTurns: UInt = 128

    /// Turns the boot flow into the "main" thread and creates the boot CPU's idle thread.
    static func bootstrap() {
        SleepQueues.initialize()
        let main = Threads.makeRecord("main")
        main.pointee.state = .running
        main.pointee.quantumLeft = quantumTicks
        main.pointee.affinity = .only(0)
        Threads.register(main)
        current = main
        FreePath.locateThreadState = runningThreadFreePath
        idle = Threads.spawn("idle", stackPages: 2) { idleLoop() }
        idle.pointee.affinity = .only(0)
        // The idle thread is never on the run queue; it runs only when nothing else can.
        withInterruptsDisabled { remove(idle) }
        started = true
    }

    /// An AP's idle thread: a record for the stack it boots on (SMP.startProcessor), which
    /// becomes the thread when the AP enters `idleLoop`. Boot CPU, before the AP starts.
    static func makeIdleThread(for cpu: PerCPURef, stack: (start: VirtualAddress, bytes: UInt64)) -> ThreadRef {
        let thread = Threads.makeRecord("idle")
        thread.pointee.stackStart = stack.start
        thread.pointee.stackBytes = stack.bytes
        thread.pointee.state = .running
        thread.pointee.affinity = .only(cpu.pointee.index)
        thread.pointee.cpu = cpu.pointee.index
        cpu.pointee.idleThread = thread
        cpu.pointee.setCurrentThread(thread)
        return thread
    }

    // MARK: - Run queue (kernel lock)

    /// Whether CPU `index` may run `thread` now.
    @inline(__always)
    static func mayRun(_ thread: ThreadRef, on index: Int) -> Bool {
        thread.pointee.affinity.allows(index) && (soleThread == nil || soleThread == thread)
    }

    static func enqueue(_ thread: ThreadRef) {
        queueChanges &+= 1
        thread.pointee.queueNext = nil
        if let tail = runTail { tail.pointee.queueNext = thread } else { runHead = thread }
        runTail = thread
    }

    /// Takes the first thread CPU `index` may run off the queue.
    static func takeNext(for index: Int) -> ThreadRef? {
        var previous: ThreadRef? = nil
        var candidate = runHead
        while let thread = candidate {
            if mayRun(thread, on: index) {
                unlink(thread, after: previous)
                return thread
            }
            previous = thread
            candidate = thread.pointee.queueNext
        }
        return nil
    }

    /// Whether a thread CPU `index` may run is waiting.
    static func hasWork(for index: Int) -> Bool {
        var candidate = runHead
        while let thread = candidate {
            if mayRun(thread, on: index) { return true }
            candidate = thread.pointee.queueNext
        }
        return false
    }

    static func remove(_ thread: ThreadRef) {
        var previous: ThreadRef? = nil
        var candidate = runHead
        while let found = candidate {
            if found == thread { return unlink(found, after: previous) }
            previous = found
            candidate = found.pointee.queueNext
        }
    }

    private static func unlink(_ thread: ThreadRef, after previous: ThreadRef?) {
        if let previous = previous { previous.pointee.queueNext = thread.pointee.queueNext } else { runHead = thread.pointee.queueNext }
        if runTail == thread { runTail = previous }
        thread.pointee.queueNext = nil
    }

    /// Puts `thread` on the run queue and wakes an idle CPU that may run it.
    static func makeReady(_ thread: ThreadRef) {
        withInterruptsDisabled {
            thread.pointee.state = .ready
            enqueue(thread)
            kick(for: thread)
        }
    }

    /// Wakes one halted CPU, other than this one, that may run `thread` (kernel lock). This CPU
    /// needs no IPI: it looks at the queue at its next switch or tick.
    static func kick(for thread: ThreadRef) {
        guard KernelLock.active else { return }
        let me = PerCPU.this.pointee.index
        for index in 0..<SMP.areasUsed where index != me {
            let cpu = PerCPU.area(index)
            guard cpu.pointee.idling, cpu.pointee.currentState == .online, mayRun(thread, on: index) else { continue }
            // Woken once: it clears `idling` when it looks at the queue again.
            cpu.pointee.idling = false
            kicks &+= 1
            LocalAPIC.sendIPI(to: cpu.pointee.apicID, vector: SMP.wakeVector, .fixed)
            return
        }
    }

    // MARK: - Switching (interrupts off, kernel lock held)

    /// Switches to the next thread this CPU may run (or its idle thread). The current thread
    /// must already be queued, sleeping or dead. Returns when the current thread runs again,
    /// on whichever CPU took it.
    static func switchAway() {
        kassert(!CPU.interruptsEnabled, "switchAway with interrupts on")
        let cpu = PerCPU.this
        kassert(cpu.pointee.preemptionCount == 0, "switching threads on cpu \(cpu.pointee.index) while it holds \(cpu.pointee.preemptionCount) spin lock(s)")
        kassert(KernelLock.isHeldHere, "switchAway on cpu \(cpu.pointee.index) without the kernel lock")
        let previous = current
        let next = takeNext(for: cpu.pointee.index) ?? idle
        if next == previous {
            previous.pointee.state = .running
            return
        }
        next.pointee.state = .running
        next.pointee.quantumLeft = quantumTicks
        next.pointee.switchesIn += 1
        next.pointee.cpu = cpu.pointee.index
        switches += 1
        cpu.pointee.needsReschedule = false
        current = next
        previous.pointee.kernelLockDepth = cpu.pointee.kernelLockDepth
        context_switch(&previous.pointee.savedStackPointer, next.pointee.savedStackPointer)
        // Running again, perhaps on another CPU, which holds the kernel lock for us.
        PerCPU.this.pointee.kernelLockDepth = previous.pointee.kernelLockDepth
    }

    /// Gives the CPU to the next ready thread, if there is one.
    static func yield() {
        withInterruptsDisabled {
            if current != idle {
                current.pointee.state = .ready
                enqueue(current)
            }
            switchAway()
        }
    }

    // MARK: - Sleep and wakeup

    /// Sleeps on `channel` until a wakeup names it. Interrupts must be off; they are off again
    /// on return. `reason` and the optional details say what the thread waits for; `kind` says
    /// what `channel` is, so that the watchdog can find who owns it (WaitKind).
    static func sleep(on channel: UnsafeRawPointer, reason: StaticString, kind: WaitKind = .channel, requester: Requester? = nil,
                      pagesWanted: UInt64 = 0, untilTick: UInt64 = 0) {
        kassert(!CPU.interruptsEnabled, "sleep with interrupts on: a wakeup could be lost")
        kassert(current != idle, "the idle thread may not sleep")
        kassert(current.pointee.preemptDisableCount == 0, "sleeping with preemption disabled")
        let thread = current
        thread.pointee.state = .sleeping
        thread.pointee.wait = WaitInfo(channel: channel, reason: reason, kind: kind, requester: requester, pagesWanted: pagesWanted,
                                       zone: thread.pointee.growingZone, sinceTick: Timer.ticks)
        thread.pointee.wakeAtTick = untilTick
        SleepQueues.insert(thread)
        switchAway()
        thread.pointee.wait = WaitInfo()
        thread.pointee.wakeAtTick = 0
    }

    /// Sleeps for at least `ticks` timer ticks.
    static func sleep(ticks: UInt64) {
        withInterruptsDisabled {
            let until = Timer.ticks + max(1, ticks)
            while Timer.ticks < until {
                sleep(on: UnsafeRawPointer(current), reason: "timed sleep", kind: .time, untilTick: until)
            }
        }
    }

    /// Wakes every thread sleeping on `channel` (newest sleeper first); returns how many. Safe
    /// in interrupt handlers. A thread in a timed sleep on `channel` leaves the timeout list too.
    @discardableResult
    static func wakeup(_ channel: UnsafeRawPointer) -> Int {
        withInterruptsDisabled {
            SleepQueues.removeSleepers(on: channel) { thread in
                thread.pointee.state = .ready
                enqueue(thread)
                kick(for: thread)
            }
        }
    }

    /// Wakes threads whose timed sleep is over (and takes them off their channels' chains).
    /// Interrupt context.
    private static func wakeExpiredSleepers() {
        SleepQueues.removeExpired(at: Timer.ticks) { thread in
            thread.pointee.state = .ready
            enqueue(thread)
            kick(for: thread)
        }
    }

    // MARK: - The tick

    /// Called by the boot CPU's timer interrupt (PIT), interrupts off, kernel lock held.
    static func timerTick() {
        guard started else { return }
        wakeExpiredSleepers()
        tick()
    }

    /// Called by an AP's local APIC timer interrupt, interrupts off, kernel lock held.
    static func processorTick() {
        guard started else { return }
        tick()
    }

    /// This CPU's share of a tick: the running thread's quantum, and a switch when it is used
    /// up and something else may run here - or at once when the thread may no longer run here
    /// (another thread became the sole thread).
    private static func tick() {
        let cpu = PerCPU.this
        let thread = current
        if thread == idle {
            if hasWork(for: cpu.pointee.index) { switchAway() }
            return
        }
        thread.pointee.quantumLeft -= 1
        preemptIfDue(thread, cpu, quantumUsed: thread.pointee.quantumLeft <= 0)
    }

    /// Preempts the running thread if it may not run here any more, or if `quantumUsed` and
    /// another thread may. Interrupts off, kernel lock held.
    static func preemptIfDue(_ thread: ThreadRef, _ cpu: PerCPURef, quantumUsed: Bool) {
        let displaced = !mayRun(thread, on: cpu.pointee.index)
        guard displaced || (quantumUsed && hasWork(for: cpu.pointee.index)) else { return }
        if thread.pointee.preemptDisableCount > 0 {
            cpu.pointee.needsReschedule = true
            return
        }
        thread.pointee.state = .ready
        enqueue(thread)
        switchAway()
    }

    /// The wake IPI on any CPU: a thread may be waiting for it, or the one it runs may have to
    /// make way for the sole thread. Interrupt context, interrupts off, no kernel lock yet.
    static func wakeInterrupt() {
        let cpu = PerCPU.this
        // Parked (its idle thread halted): it touches nothing that changes; the idle loop
        // looks at the queue once the halt ends, which this interrupt just did.
        guard started, cpu.pointee.tlbActive.load(ordering: .acquiring) else { return }
        let entered = KernelLock.enter()
        let thread = current
        if thread != idle { preemptIfDue(thread, cpu, quantumUsed: false) }
        KernelLock.leave(entered)
    }

    // MARK: - Idle

    /// Every CPU's idle thread: work handed to an AP (SMP.run), else the next thread, else a
    /// halt until an interrupt. An AP parks while halted (TLBShootdown.becomeParked): it
    /// touches only memory whose mapping never changes - its stack, static data - until it
    /// becomes active again, and only then looks at the run queue.
    static func idleLoop() -> Never {
        let cpu = PerCPU.this
        let isBootCPU = cpu.pointee.index == 0
        while true {
            Threads.reapDetached()
            if !isBootCPU { SMP.runRequestedWork(cpu) }
            CPU.disableInterrupts()
            var entered = KernelLock.enter()
            if !hasWork(for: cpu.pointee.index) && !SMP.hasRequestedWork(cpu) {
                cpu.pointee.idling = true
                let changesSeen = queueChanges
                KernelLock.leave(entered)
                if !isBootCPU { TLBShootdown.becomeParked(cpu) }
                repeat {
                    if isBootCPU && transfersAwaited > 0 {
                        CPU.enableInterrupts()
                        // A few hundred instructions per pause, about what a turn of the old
                        // loop took with the lock: each pause leaves QEMU's execution loop,
                        // and a turn of a handful of instructions made swap-bound icount boots
                        // slower in host time (docs/testing.md).
                        CPU.spin(iterations: transferSpinTurns)
                        CPU.pause()
                    } else {
                        CPU.enableInterruptsAndHalt()
                    }
                    CPU.disableInterrupts()
                } while idleMayStay(cpu, changesSeen)
                if !isBootCPU { TLBShootdown.becomeActive(cpu) }
                entered = KernelLock.enter()
                cpu.pointee.idling = false
            }
            switchAway()
            KernelLock.leave(entered)
            CPU.enableInterrupts()
        }
    }

    /// Whether an idle CPU woken by an interrupt (a tick, a device, a shootdown) has nothing
    /// new to look at, read without the kernel lock, interrupts off: nobody kicked it, no work
    /// was handed to it and the run queue has not changed since it found nothing there. Every
    /// change that could give it a thread bumps `queueChanges` before the kick, and a kick
    /// that lands after this read is a pending interrupt that ends the next halt at once.
    /// Taking the kernel lock on every tick of every idle CPU - and the boot CPU's pause loop
    /// around transfers, which took it on every turn - kept the lock busy for the CPUs that
    /// had work (docs/smp.md, "The idle loop").
    @inline(__always)
    static func idleMayStay(_ cpu: PerCPURef, _ changesSeen: UInt64) -> Bool {
        cpu.pointee.idling && queueChanges == changesSeen && !SMP.hasRequestedWork(cpu)
    }

    // MARK: - The sole thread (Preemption.disable with several CPUs)

    /// Makes `thread` the only one any CPU runs, and waits until every other CPU has given up
    /// what it ran. Interrupts on, kernel lock not held (the other CPUs need it to switch).
    static func becomeSoleThread(_ thread: ThreadRef) {
        kassert(PerCPU.this.pointee.kernelLockDepth == 0, "preemption disabled inside a kernel-lock section: the other CPUs could not switch")
        while !withInterruptsDisabled({ () -> Bool in
            guard soleThread == nil else { return false }
            soleThread = thread
            return true
        }) {
            // Another thread is the sole one; this one is not allowed to run until it is done.
            yield()
        }
        // Every other CPU must be idle. "Other" is the CPU running `thread` when it looks, not
        // an index read once: until it holds preemption off, `thread` can be preempted here
        // and resume on another CPU - waiting for its own new CPU to go idle would never end,
        // and its old CPU may have taken another thread meanwhile.
        for index in 0..<SMP.areasUsed where PerCPU.area(index).pointee.currentState == .online {
            let cpu = PerCPU.area(index)
            var waited: UInt64 = 0
            while cpu.pointee.currentThread != cpu.pointee.idleThread && cpu.pointee.currentThread != thread {
                if waited % 1_000 == 0 { LocalAPIC.sendIPI(to: cpu.pointee.apicID, vector: SMP.wakeVector, .fixed) }
                // This CPU may have interrupts off: answer shootdowns the switching CPU sends.
                _ = TLBShootdown.answerPending(PerCPU.this)
                ZoneCacheRequests.answerPending(PerCPU.this)
                CPU.pause()
                waited += 1
                if waited == 200_000_000 {
                    panic("cpu \(index) did not give up thread \(cpu.pointee.currentThread.pointee.name) for the sole thread \(thread.pointee.name)")
                }
            }
        }
    }

    /// Lets every CPU run every thread again.
    static func endSoleThread(_ thread: ThreadRef) {
        withInterruptsDisabled {
            kassert(soleThread == thread, "the sole thread ended by another thread")
            soleThread = nil
            queueChanges &+= 1
            var candidate = runHead
            while let waiting = candidate {
                kick(for: waiting)
                candidate = waiting.pointee.queueNext
            }
        }
    }
}

/// FreePath's way to the running thread's state (FreePath.locateThreadState): this CPU's
/// free-path pointer (one gs-relative load, wherever the thread has moved), which is the
/// current thread's state - or, while an interrupt handler runs, the CPU's interrupt state.
@_cdecl("kernel_running_thread_free_path")
func runningThreadFreePath() -> UnsafeMutableRawPointer? {
    UnsafeMutableRawPointer(PerCPU.runningFreePath)
}

/// Holding off preemption for a short critical section: interrupts still arrive, but the
/// running thread keeps the CPU until it enables preemption again - and, with several CPUs,
/// no other thread runs anywhere meanwhile (Scheduler.becomeSoleThread). It may not sleep.
enum Preemption {
    static func disable() {
        let thread = Scheduler.current
        if thread.pointee.preemptDisableCount == 0 && KernelLock.active && Scheduler.started {
            Scheduler.becomeSoleThread(thread)
        }
        thread.pointee.preemptDisableCount += 1
    }

    static func enable() {
        let thread = Scheduler.current
        kassert(thread.pointee.preemptDisableCount > 0, "preemption enabled more often than disabled")
        thread.pointee.preemptDisableCount -= 1
        guard thread.pointee.preemptDisableCount == 0 else { return }
        if KernelLock.active && Scheduler.started { Scheduler.endSoleThread(thread) }
        if PerCPU.this.pointee.needsReschedule { Scheduler.yield() }
    }
}
