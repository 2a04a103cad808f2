// LockOrder.swift - the lock-order checker in the kernel (lockorder=on; off by default).
//
// Every Mutex and SpinLock acquisition on a CPU that runs threads reports its lock's name and
// call site here before it takes the lock; each release reports the name. The thread's stack of
// held locks (Thread.heldLocks) and the one graph of orders seen so far (LockOrderGraph, in
// kernel/Lib) decide: taking B while holding A, when B was seen taken before A (directly or
// through other locks), panics - naming both locks, the site taking B, the site that took A,
// and where the opposite order was seen - before the thread can deadlock on it. The check runs
// with interrupts off; the graph is allocated when the option is parsed, so nothing allocates
// on a lock's path. Every CPU runs threads (an AP's work for SMP.run runs on its idle thread),
// so every acquisition is checked; the graph changes under the kernel lock.

enum LockOrder {
    static var graph: UnsafeMutablePointer<LockOrderGraph>? = nil
    /// Acquisitions checked (a violation panics at once).
    static var checked: UInt64 = 0

    static var isEnabled: Bool { graph != nil }

    static func enable() {
        guard graph == nil else { return }
        let table = UnsafeMutablePointer<LockOrderGraph>.allocate(capacity: 1)
        table.initialize(to: LockOrderGraph())
        graph = table
    }

    /// `name` is about to be taken at `site` by the running thread.
    static func acquiring(_ name: StaticString, _ site: LockSite) {
        guard let graph = graph, Scheduler.started else { return }
        withInterruptsDisabled {
            guard let lockClass = graph.pointee.lockClass(named: name) else { return }
            let thread = Scheduler.current
            checked += 1
            if let v = graph.pointee.acquire(lockClass, at: site, holding: thread.pointee.heldLocks) {
                panic("lock order: '\(v.taking)' taken at \(v.takingSite.file):\(v.takingSite.line) while holding '\(v.holding)' taken at \(v.holdingSite.file):\(v.holdingSite.line); but '\(v.taking)' was held when '\(v.earlierInner)' was taken (at \(v.earlierOuterSite.file):\(v.earlierOuterSite.line), then \(v.earlierInnerSite.file):\(v.earlierInnerSite.line)): the two orders can deadlock")
            }
            thread.pointee.heldLocks.push(HeldLock(lockClass: lockClass, site: site))
        }
    }

    /// `name` was released by the running thread.
    static func released(_ name: StaticString) {
        guard let graph = graph, Scheduler.started else { return }
        withInterruptsDisabled {
            guard let lockClass = graph.pointee.lockClass(named: name) else { return }
            Scheduler.current.pointee.heldLocks.remove(lockClass)
        }
    }

    static func logStatistics() {
        guard let graph = graph else { return }
        Log.info(.cpu, "lock order: \(checked) acquisitions checked, \(graph.pointee.classCount) lock classes, \(graph.pointee.edgeCount) orders seen, \(graph.pointee.classesDropped) classes beyond the table")
    }
}
