// VMWait.swift - vm_wait: where a blocking allocation sleeps until memory is freed.
//
// A page request that its requester's tier cannot meet (kernel/Mem/PhysicalMemory.swift) and
// that may wait comes here: it wakes the pageout thread and sleeps until pages are freed
// (every free wakes the waiters) or a tenth of a second passes, then the allocator tries
// again. The wait is for the requester's own tier - an ordinary fault waits until the free
// count is above free_reserved, not merely above zero - so a woken thread whose tier is still
// short sleeps again instead of spinning.
//
// It is not an allocator and not a policy: who may take which page is the thresholds'
// (kernel/Mem/Portable/PagePolicy.swift), freeing memory is the pageout thread's and stopping
// a consumer is the out-of-memory policy's (kernel/VM/OutOfMemory.swift). A wakeup is a hint,
// not a promise of pages: the caller always retries. Before threads exist there is nobody to
// wait for: `isAvailable` is false, and the page allocator panics instead of calling here.
//
// Locking: `waiters` and `waits` change with interrupts off (one CPU), and the threshold check
// and the sleep happen in that same interrupts-off region, so a free between them cannot be
// missed.

enum VMWait {
    static let channel = UnsafeMutableRawPointer.allocate(byteCount: 8, alignment: 8)
    /// Threads asleep in vm_wait now (the watchdog reads it).
    static var waiters = 0
    static var waits: UInt64 = 0
    /// True once threads and the pageout thread exist (set at boot; a test clears it to see
    /// what early boot does).
    static var isAvailable = false

    static func enable() {
        // Made now: a lazy global first touched inside `wait` would allocate while memory is
        // short, and Embedded Swift's swift_once spins if that allocation waits here again.
        _ = channel
        isAvailable = true
    }

    /// What a waiter sleeps for.
    enum Goal {
        /// Until its requester's tier could take the pages it asked for.
        case pagesForItsTier
        /// Until any page is freed: for a multi-page request that failed although enough
        /// pages are free (no free block of its order), since a free may complete a block.
        /// The page allocator bounds how often it comes here.
        case aFreedPage
    }

    /// Wakes pageout and sleeps until `goal` is met, or a tenth of a second has passed; the
    /// caller retries either way. A thread that was stopped (OOM) returns at once so that it
    /// can end.
    static func wait(_ context: AllocationContext, pages: UInt64, for goal: Goal = .pagesForItsTier) {
        kassert(context.blocking == .wait, "vm_wait: a \(context.requester.name) request that may not wait asked to")
        kassert(context.requester != .pageout || !Reserves.pageoutNeverWaits, "vm_wait: the pageout path waits for memory only it can free")
        Pageout.wake()
        withInterruptsDisabled {
            if Scheduler.current.pointee.killed { return }
            let tier = Reserves.tier(context.requester)
            if goal == .pagesForItsTier && PhysicalMemory.thresholds.allows(tier, taking: pages, from: PhysicalMemory.freePages) { return }
            waiters += 1
            waits += 1
            Scheduler.sleep(on: UnsafeRawPointer(channel), reason: "vm_wait", kind: .pages, requester: tier, pagesWanted: pages,
                            untilTick: Timer.ticks + Timer.hertz / 10)
            waiters -= 1
        }
    }

    /// Called by the page allocator after every free: wakes the waiters, if any.
    @inline(__always)
    static func pagesFreed() {
        if waiters > 0 { Scheduler.wakeup(UnsafeRawPointer(channel)) }
    }
}
