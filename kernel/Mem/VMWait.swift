// VMWait.swift - vm_wait: where a blocking page allocation sleeps until memory is freed.
//
// PhysicalMemory (kernel/Mem/PhysicalMemory.swift) never sleeps itself: when a blocking
// allocation cannot be met under its page class's threshold it calls the installed
// `waitForPages`, which is `VMWait.wait`. That wakes the pageout thread and sleeps on one
// channel until pages are freed (`freeHook` wakes it), the thread is stopped, or a tenth of a
// second passes - the caller then retries, so a wakeup is a hint, not a promise of pages.
// It is not an allocator and not a policy: which class may take which page is
// PagePolicy's (kernel/Mem/Portable/PagePolicy.swift), freeing memory is the pageout
// thread's and stopping a consumer is the out-of-memory policy's (kernel/VM/OutOfMemory.swift).
//
// Locking: `waiters` and `waits` change with interrupts off, and the threshold check and
// the sleep happen in that same interrupts-off region, so a free between them cannot be missed.

/// Real waiting for pages: a blocking allocation that cannot be met sleeps here until the
/// pageout thread (which it wakes on the way) has freed pages.
enum VMWait {
    static let channel = UnsafeMutableRawPointer.allocate(byteCount: 8, alignment: 8)
    static var waiters = 0
    static var waits: UInt64 = 0

    static func install() {
        PhysicalMemory.waitForPages = { pageClass, pages in VMWait.wait(pageClass, pages) }
        PhysicalMemory.freeHook = {
            if VMWait.waiters > 0 { Scheduler.wakeup(UnsafeRawPointer(VMWait.channel)) }
        }
    }

    static func wait(_ pageClass: PageClass, _ pages: UInt64) {
        Pageout.wake()
        withInterruptsDisabled {
            if Scheduler.current.pointee.killed { return }
            if PhysicalMemory.thresholds.allows(pageClass, taking: pages, from: PhysicalMemory.freePages) { return }
            waiters += 1
            waits += 1
            Scheduler.sleep(on: UnsafeRawPointer(channel), reason: "vm_wait", pageClass: pageClass, pagesWanted: pages,
                            untilTick: Timer.ticks + Timer.hertz / 10)
            waiters -= 1
        }
    }
}
