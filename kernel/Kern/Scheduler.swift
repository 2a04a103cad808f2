// Scheduler.swift - round-robin preemptive scheduling, sleep and wakeup, preemption control.
//
// One CPU. Ready threads wait on a FIFO run queue; the idle thread runs when it is empty and
// halts until the next interrupt. The timer (kernel/Arch/x86_64/Timer.swift) takes `quantumTicks`
// ticks from the running thread and preempts it at zero - unless it has preemption disabled,
// in which case the switch happens when it enables preemption again. A switch from the timer
// happens inside the interrupt handler: the interrupted thread's registers stay on its stack
// and it returns through the handler when it next runs.
//
// sleep(on:) and wakeup(_:) work on wait channels (any address). Sleeping must be done with
// interrupts off, after checking the condition, so that no wakeup can fall between the check
// and the sleep: `withInterruptsDisabled { while !condition { Scheduler.sleep(on:...) } }`.
// Every sleeping thread records why (WaitInfo) and what it waits on (WaitKind), from which the
// deadlock watchdog draws the wait-for graph (kernel/Kern/WaitGraph.swift).
// Sleepers wait on sleep queues (kernel/Kern/SleepQueues.swift): a wakeup looks only at the
// chain its channel hashes to, and the tick only at the head of the timeout list.
//
// Locking: one CPU. The run queue, the sleep queues and every thread's state and links change
// only with interrupts off.

import ArchSupport

enum Scheduler {
    static let quantumTicks = 2
    /// Set by `bootstrap`; until then the never-mapped placeholder (kernel/Lib/UnsetPlaceholder.swift).
    static var current = ThreadRef.unsetPlaceholder
    static var idle = ThreadRef.unsetPlaceholder
    static var runHead: ThreadRef? = nil
    static var runTail: ThreadRef? = nil
    static var needsReschedule = false
    static var switches: UInt64 = 0
    static var started = false
    /// Threads sleeping until a device finishes a transfer (kernel/Drivers/Disk.swift). While
    /// there are any, the idle thread waits with `pause` instead of `hlt`: under QEMU's
    /// `-icount sleep=off` a halted CPU makes guest time jump to the next timer, so that a
    /// transfer taking a millisecond of host time would seem to take many ticks - enough for
    /// the deadlock watchdog to see a pageout thread that frees nothing. Spinning keeps guest
    /// time moving with the instructions run, as it did when the ATA driver polled. Interrupts off.
    static var transfersAwaited = 0

    /// Turns the boot flow into the "main" thread and creates the idle thread.
    static func bootstrap() {
        SleepQueues.initialize()
        let main = Threads.makeRecord("main")
        main.pointee.state = .running
        main.pointee.quantumLeft = quantumTicks
        Threads.register(main)
        current = main
        FreePath.threadState = main.pointer(to: \.freePath)
        idle = Threads.spawn("idle", stackPages: 2) { idleLoop() }
        // The idle thread is never on the run queue; it runs only when nothing else can.
        withInterruptsDisabled { _ = dequeue() }
        started = true
    }

    // MARK: - Run queue

    static func enqueue(_ thread: ThreadRef) {
        thread.pointee.queueNext = nil
        if let tail = runTail { tail.pointee.queueNext = thread } else { runHead = thread }
        runTail = thread
    }

    static func dequeue() -> ThreadRef? {
        guard let head = runHead else { return nil }
        runHead = head.pointee.queueNext
        if runHead == nil { runTail = nil }
        head.pointee.queueNext = nil
        return head
    }

    static func makeReady(_ thread: ThreadRef) {
        withInterruptsDisabled {
            thread.pointee.state = .ready
            enqueue(thread)
        }
    }

    // MARK: - Switching (interrupts off)

    /// Switches to the next ready thread (or idle). The current thread must already be
    /// queued, sleeping or dead. Returns when the current thread runs again.
    static func switchAway() {
        kassert(!CPU.interruptsEnabled, "switchAway with interrupts on")
        let previous = current
        let next = dequeue() ?? idle
        if next == previous {
            previous.pointee.state = .running
            return
        }
        next.pointee.state = .running
        next.pointee.quantumLeft = quantumTicks
        next.pointee.switchesIn += 1
        switches += 1
        needsReschedule = false
        current = next
        FreePath.threadState = next.pointer(to: \.freePath)
        context_switch(&previous.pointee.savedStackPointer, next.pointee.savedStackPointer)
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
            }
        }
    }

    /// Wakes threads whose timed sleep is over (and takes them off their channels' chains).
    /// Interrupt context.
    private static func wakeExpiredSleepers() {
        SleepQueues.removeExpired(at: Timer.ticks) { thread in
            thread.pointee.state = .ready
            enqueue(thread)
        }
    }

    // MARK: - The tick

    /// Called by the timer interrupt, interrupts off.
    static func timerTick() {
        guard started else { return }
        wakeExpiredSleepers()
        let thread = current
        if thread == idle {
            if runHead != nil { switchAway() }
            return
        }
        thread.pointee.quantumLeft -= 1
        guard thread.pointee.quantumLeft <= 0, runHead != nil else { return }
        if thread.pointee.preemptDisableCount > 0 {
            needsReschedule = true
            return
        }
        thread.pointee.state = .ready
        enqueue(thread)
        switchAway()
    }

    // MARK: - Idle

    private static func idleLoop() {
        while true {
            Threads.reapDetached()
            CPU.disableInterrupts()
            if runHead == nil {
                if transfersAwaited > 0 {
                    CPU.enableInterrupts()
                    CPU.pause()
                } else {
                    CPU.enableInterruptsAndHalt()
                }
                CPU.disableInterrupts()
            }
            switchAway()
            CPU.enableInterrupts()
        }
    }
}

/// Holding off preemption for a short critical section: interrupts still arrive, but the
/// running thread keeps the CPU until it enables preemption again. It may not sleep meanwhile.
enum Preemption {
    static func disable() {
        Scheduler.current.pointee.preemptDisableCount += 1
    }

    static func enable() {
        let thread = Scheduler.current
        kassert(thread.pointee.preemptDisableCount > 0, "preemption enabled more often than disabled")
        thread.pointee.preemptDisableCount -= 1
        if thread.pointee.preemptDisableCount == 0 && Scheduler.needsReschedule { Scheduler.yield() }
    }
}
