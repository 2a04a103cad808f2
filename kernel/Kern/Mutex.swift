// Mutex.swift - a sleeping lock.
//
// A thread that finds the mutex taken sleeps on it and is woken when it is released. The
// owner is recorded, so taking a mutex one already holds is caught, as is releasing one held
// by someone else, and a thread asleep on the mutex (WaitKind.mutex) names its owner in the
// watchdog's wait-for graph (kernel/Kern/WaitGraph.swift). Mutexes live at fixed addresses
// (inside a structure or a global); code uses them through a pointer.
//
// Locking: `owner` and `contended` change only inside withInterruptsDisabled - interrupts off
// and the kernel lock held (kernel/Kern/KernelLock.swift) - in lock and unlock, which is also
// how the watchdog (timer interrupt) reads them. So a mutex works across CPUs: its sleepers
// may wake on any CPU, and the check and the sleep are one section on every one of them.

struct Mutex {
    let name: StaticString
    /// The thread holding the mutex; nil when it is free. Interrupts off.
    var owner: ThreadRef? = nil
    var contended: UInt64 = 0

    init(_ name: StaticString) { self.name = name }
}

extension UnsafeMutablePointer where Pointee == Mutex {
    func lock(_ file: StaticString = #fileID, _ line: UInt = #line) {
        if LockOrder.isEnabled { LockOrder.acquiring(pointee.name, LockSite(file, line)) }
        withInterruptsDisabled {
            let me = Scheduler.current
            if pointee.owner == me { panic("mutex \(pointee.name): taken twice by thread \(me.pointee.name)") }
            while pointee.owner != nil {
                pointee.contended += 1
                Scheduler.sleep(on: UnsafeRawPointer(self), reason: "mutex", kind: .mutex)
            }
            pointee.owner = me
        }
    }

    func unlock() {
        withInterruptsDisabled {
            if pointee.owner != Scheduler.current { panic("mutex \(pointee.name): released by a thread that does not hold it") }
            pointee.owner = nil
            Scheduler.wakeup(UnsafeRawPointer(self))
        }
        if LockOrder.isEnabled { LockOrder.released(pointee.name) }
    }

    func withLock<R>(_ file: StaticString = #fileID, _ line: UInt = #line, _ body: () -> R) -> R {
        lock(file, line)
        defer { unlock() }
        return body()
    }
}
