// Balloon.swift - memory a test takes away first, so that a workload sized from what is left
// meets memory pressure quickly on a machine of any size.
//
// The balloon holds buddy blocks (largest first, so that inflating 8 GiB takes thousands of
// allocations, not millions) in a PageHold (PageHold.swift): it needs no memory of its own. It takes only what an ordinary requester may take without waiting, so it never
// digs into the reserves the pageout path relies on. The thresholds (paging_start, free_min,
// ...) stay those of the whole machine - pageout still scans with the machine's targets - and
// they grow with RAM (paging_target is about 48 MiB at 3 GiB), so what the balloon leaves is
// counted above paging_target: below it pageout is already at work, and a balloon that left
// less would leave the workload nothing pageable to run in, which the watchdog rightly calls
// a deadlock.

struct Balloon {
    private var hold = PageHold()
    var pages: UInt64 { UInt64(hold.pages) }

    /// Takes free memory until about `pageable` pages are free above paging_target (nothing
    /// when fewer already are).
    mutating func inflate(leavingPageable pageable: UInt64) {
        let leave = PhysicalMemory.thresholds.pagingTarget + pageable
        var order = BuddyAllocator.maxOrder
        while PhysicalMemory.freePages > leave {
            let excess = PhysicalMemory.freePages - leave
            while order > 0 && UInt64(1) << order > excess { order -= 1 }
            guard let block = PhysicalMemory.allocate(order: order, .ordinaryNoWait) else {
                if order == 0 { break }
                order -= 1
                continue
            }
            hold.keep(block, order: order)
        }
    }

    /// Gives everything back.
    mutating func deflate() {
        hold.release()
    }
}
