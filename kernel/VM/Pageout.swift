// Pageout.swift - the pageout thread: freeing memory by moving pages to swap.
//
// It sleeps until free pages fall below paging_start (allocations wake it) or a second
// passes (to retry zone refills that failed). Awake, it works without pause until free pages
// reach paging_target, in passes whose size follows the shortage (`scanPass`):
//   - clean: a page at the head of the inactive queue that was used goes back to active;
//     otherwise its swap slot is claimed (a block and a swblock if it has none - while it is
//     still mapped, so a step that cannot be fed changes nothing), it is unmapped everywhere
//     (its PV list), written to swap if it changed since its last copy there, and freed -
//     until the free count, with the pages of writes still in flight, reaches paging_target.
//     On a disk with request slots for it (virtio-blk) a write is not waited for: it stays in
//     flight, up to pageoutinflight= of them, and the disk's interrupt frees its pages when it
//     ends (kernel/VM/PageoutRequests.swift);
//   - deactivate: pages at the head of the active queue whose mappings were not used since
//     the last look go to the inactive queue, until it holds inactive_target pages; used ones
//     go round again.
// Each pass looks at every queued page at most once, so a pass is bounded by the queues and
// the work by the shortage, at any memory size. docs/allocators.md describes the targets.
// Before a pass it reaps the zones (`reapIfDue`): every zone gives back its empty slabs but
// for its reserve and a slab or so (kernel/Mem/Portable/ZoneReclaim.swift) - at most once a
// second.
// Everything it allocates - swblocks, pager windows, PV entries, page-table pages - is asked
// for under the pageout context (SwapPager.pageoutContext): every reserve and the pages below
// free_min, never waiting, so it can work when nobody else can allocate. When swap is full and
// memory below free_min it says so and the out-of-memory policy (kernel/VM/OutOfMemory.swift)
// stops the thread that owns the most pageable memory. Threads waiting for pages sleep in
// vm_wait (kernel/Mem/VMWait.swift), which wakes it.

extension LogTag {
    static let pageout = LogTag("pageout")
}

struct PageoutStatistics {
    var wakeups: UInt64 = 0
    var scanned: UInt64 = 0
    var deactivated: UInt64 = 0
    var reactivated: UInt64 = 0
    var written: UInt64 = 0
    var freed: UInt64 = 0
    var failures: UInt64 = 0
    var swapFullEvents: UInt64 = 0
    var oomKills: UInt64 = 0
    /// Times the zones were reaped, and the pages of empty slabs that gave back.
    var reaps: UInt64 = 0
    var reapedPages: UInt64 = 0
    /// Swap writes (one per cleaning step that wrote), and the pages written in clusters of
    /// more than one.
    var writeRequests: UInt64 = 0
    var clusteredPages: UInt64 = 0
}

/// How a cleaning step writes a dirty page: waiting for the write, or leaving it in flight
/// (PageoutRequests.swift) where the disk has request slots for that.
enum PageoutWriting {
    case waitingForIt
    case inFlight
}

enum Pageout {
    static var thread: ThreadRef? = nil
    static var statistics = PageoutStatistics()
    static var requested = false
    static let channel = UnsafeMutableRawPointer.allocate(byteCount: 8, alignment: 8)
    /// The tick before which the zones are not reaped again (the pageout thread's own).
    static var nextReapTick: UInt64 = 0
    static let reapInterval = Timer.hertz

    static func start() {
        // The reserve bounds count one pageout thread's chains (ReserveBounds.pageoutThreads).
        kassert(thread == nil, "a second pageout thread: the reserve bounds count \(ReserveBounds.pageoutThreads)")
        // A lazy global, first touched here: its allocation must not happen on the pageout path.
        clusterPages.initialize(repeating: .none, count: Disk.maximumTransferPages)
        PageoutRequests.initialize()
        let pageout = Threads.spawn("pageout", stackPages: 8) { Pageout.run() }
        thread = pageout
        Watchdog.pageoutThread = pageout
        Watchdog.enabled = true
        Log.info(.pageout, "pageout thread started: wakes below \(PhysicalMemory.thresholds.pagingStart) free pages, works up to \(PhysicalMemory.thresholds.pagingTarget); protections on: \(protections: Reserves.protections)")
    }

    static func wake() {
        guard let pageout = thread, !requested else { return }
        requested = true
        if pageout.pointee.state == .sleeping { Scheduler.wakeup(UnsafeRawPointer(channel)) }
    }

    /// Memory is short of paging_target, counting the pages of writes in flight as free: they
    /// will be once their writes end.
    static var isNeeded: Bool { PhysicalMemory.freePages + UInt64(PageoutRequests.pagesInFlight) < PhysicalMemory.thresholds.pagingTarget }

    private static func run() {
        while true {
            // Asleep until woken, or a second has passed (to retry zone refills).
            withInterruptsDisabled {
                // Short of paging_start but with enough coming from writes in flight: rest until
                // they end (the last one wakes this thread if memory is still short).
                if !requested && (PhysicalMemory.freePages >= PhysicalMemory.thresholds.pagingStart || !isNeeded) {
                    Scheduler.sleep(on: UnsafeRawPointer(channel), reason: "pageout idle", untilTick: Timer.ticks + Timer.hertz)
                }
                requested = false
            }
            statistics.wakeups += 1
            // Memory is short: pages on the CPUs' lists go back to the buddy allocator, where
            // the tiers and this thread's own allocations can have them (CPUPageList.swift).
            if isNeeded { CPUPageLists.drain() }
            if Zones.reservesEnabled { Zones.refillAll() }
            // The depots give back the magazines no CPU used since the last wakeup.
            Zones.trimDepots()
            // Below paging_target the thread works without pause: each pass scans as much of
            // the queues as the shortage needs. It rests (one tick) only after a pass that
            // looked at every queued page and freed nothing - every page was in use, or could
            // not be written - and gives up the episode after a few such passes in a row.
            var fruitlessPasses = 0
            while isNeeded {
                reapIfDue()
                if !isNeeded { break }
                let freed = scanPass()
                if freed > 0 {
                    fruitlessPasses = 0
                    continue
                }
                // Nothing could be cleaned, swap cannot take more, and threads are waiting for
                // memory: only stopping a consumer can help.
                // Pages still on a CPU's list are tried before a consumer is stopped.
                // Writes still in flight free their pages when they end: wait for those first.
                if PageoutRequests.requestsInFlight > 0 {
                    PageoutRequests.waitForOne()
                    continue
                }
                if (SwapDevice.isFull || !SwapDevice.isPresent) && VMWait.waiters > 0 && (CPUPageLists.drain() > 0 || OutOfMemory.act()) { continue }
                fruitlessPasses += 1
                if fruitlessPasses > 3 { break }
                Scheduler.sleep(ticks: 1)
            }
        }
    }

    /// Reaps the zones if `reapInterval` has passed since the last time. Called before each
    /// scan pass, so the first pass of an episode reaps and a long episode reaps once a second.
    /// Before the pass, not after it: an empty slab is memory nobody uses - freeing it costs
    /// no I/O and takes no page a thread will fault back in - so it should go before any
    /// pageable page does, and the pass that follows has that much less to clean. Not more
    /// often than once a second: under pressure episodes follow each other many times a
    /// second, and a zone whose spare slabs are reaped at every one would grow them back at
    /// once (the slabs it keeps make that rare, the interval bounds it).
    private static func reapIfDue() {
        guard Timer.ticks >= nextReapTick else { return }
        nextReapTick = Timer.ticks + reapInterval
        reapZones()
    }

    /// Asks every zone for its empty slabs (Zones.reclaimAll: each keeps its reserve and its
    /// keepEmptySlabs) and the page allocator for the pages of buddy descriptors it can give
    /// back (PhysicalMemory.reclaimDescriptorPages: it keeps its reserve), and counts what
    /// came back. Returns the pages freed. Allocates no page, never waits. The pageout thread calls it through `reapIfDue`; a test may call it
    /// directly, with preemption off, when it has made memory short itself.
    @discardableResult
    static func reapZones() -> UInt64 {
        let pages = Zones.reclaimAll() + PhysicalMemory.reclaimDescriptorPages()
        statistics.reaps += 1
        statistics.reapedPages += pages
        // Pages freed by the pageout thread: progress, as far as the watchdog is concerned.
        withInterruptsDisabled { Watchdog.pageoutProgress += pages }
        return pages
    }

    /// One pass of the daemon, sized by the shortage (FreeBSD's vm_pageout_scan in small):
    ///   1. clean: from the head of the inactive queue, free pages until the free count reaches
    ///      paging_target, looking at each inactive page at most once; a page used since it was
    ///      deactivated goes back to the active queue;
    ///   2. deactivate: from the head of the active queue, move pages not used since the last
    ///      look to the inactive queue until it holds its target (the pages the next pass may
    ///      clean), looking at each active page at most once; used ones go round again with
    ///      their accessed bits cleared.
    /// Returns the pages freed or on their way out in writes left in flight. A page is taken off its queue and either put back or marked
    /// busy in one step with interrupts off: a page that is on no queue and not busy is one its
    /// object may free at any moment.
    static func scanPass() -> Int {
        let thresholds = PhysicalMemory.thresholds
        var freed = 0
        var looked = 0
        PageoutRequests.settleFailures()
        let inactiveLength = withInterruptsDisabled { PageQueues.inactive.count }
        while looked < inactiveLength && isNeeded {
            looked += 1
            let candidate: PageIndex?? = withInterruptsDisabled {
                guard let page = PageQueues.takeHead(.inactive) else { return nil }
                statistics.scanned += 1
                if Pmap.testAndClearReferenced(page) {
                    PageQueues.insert(page, .active)
                    statistics.reactivated += 1
                    return .some(nil)
                }
                PageQueues.setBusy(page)     // taken off its queue above
                return .some(page)
            }
            guard let taken = candidate else { break }
            guard let page = taken else { continue }
            let cleaned = clean(page, clustering: true, writing: .inFlight)
            if cleaned > 0 {
                freed += cleaned
                looked += cleaned - 1       // the followers came off the inactive queue too
            } else {
                // Swap is full or the device failed: the next page would fare no better now.
                statistics.failures += 1
                break
            }
        }
        let inactiveTarget = thresholds.inactiveTarget
        let activeLength = withInterruptsDisabled { PageQueues.active.count }
        looked = 0
        while looked < activeLength {
            looked += 1
            let more: Bool = withInterruptsDisabled {
                guard UInt64(PageQueues.inactive.count) < inactiveTarget, let page = PageQueues.takeHead(.active) else { return false }
                statistics.scanned += 1
                if Pmap.testAndClearReferenced(page) {
                    PageQueues.insert(page, .active)
                } else {
                    PageQueues.insert(page, .inactive)
                    statistics.deactivated += 1
                }
                return true
            }
            if !more { break }
        }
        return freed
    }

    /// Cleans every resident page of `object` now, as a pass would (written to swap if dirty,
    /// then freed), skipping pages someone holds busy. Returns the pages freed. The race tests
    /// use it to put chosen pages on swap at a chosen moment.
    /// With `clustering`, each page cleaned gathers the inactive pages after it as a pass would
    /// (the cluster tests put the pages on the inactive queue first); with `stoppingAtAFailure`
    /// it stops at the first page it cannot write, as a pass does.
    /// With `writing: .inFlight` the writes are left in flight as the pageout thread leaves
    /// them (the pages counted are then on their way out; PageoutRequests.waitForAll ends them).
    static func evict(_ object: ObjectRef, clustering: Bool = false, stoppingAtAFailure: Bool = false,
                      writing: PageoutWriting = .waitingForIt) -> Int {
        var freed = 0
        for index in 0..<object.pointee.pageCount {
            let claimed: PageIndex? = withInterruptsDisabled {
                let page = object.pointee.page(at: index)
                guard page != .none, !PhysicalMemory.pageable(page).pointee.flags.contains(.busy) else { return nil }
                PageQueues.claim(page)
                return page
            }
            guard let page = claimed else { continue }
            let cleaned = clean(page, clustering: clustering, writing: writing)
            if cleaned == 0 && stoppingAtAFailure { break }
            freed += cleaned
        }
        return freed
    }

    /// Claims `page`'s swap slot, unmaps it, writes it out if needed and frees it (the page is
    /// taken off its queue and marked busy by the caller) - with `clustering`, together with the
    /// dirty inactive pages that follow it in its object, in one write. Returns the pages freed;
    /// 0 when the page could not be written: it goes back to the inactive queue.
    ///
    /// The slot comes first, while the page is still mapped. A step that cannot be fed (swap
    /// full, no swblock to be had) then changes nothing: unmapping first would free the page's
    /// PV entries and perhaps page tables for a page that stays, handing memory to whoever
    /// waits for it and making the owner fault the mapping back in. Tried again and again on a
    /// long inactive queue, those frees add up to whole empty slabs that reaping gives back -
    /// progress that depends on how many pages happen to be mapped, not on the reserves
    /// (docs/reserves.md, "Necessity"). FreeBSD, too, has swap space assigned in putpages
    /// before it lets go of anything. The write itself needs the page unmapped, so that it
    /// cannot change under the I/O and its dirty bit is final.
    ///
    /// Clustering (`gatherFollowers`, FreeBSD's vm_pageout_cluster in small) happens only when
    /// the first page got a new block: the pages after it in its object that are resident,
    /// inactive, not busy, not used since they were deactivated and dirty, and have no swap
    /// block yet, take the blocks after it - each claimed like the first page but under the
    /// ordinary context without waiting, so a follower never touches a reserve and the
    /// reserves' bounds, which cover one page per step, still hold (docs/reserves.md).
    ///
    /// With `writing: .inFlight`, on a disk with request slots for it, a dirty page's write is
    /// left in flight (PageoutRequests.swift): the step takes a request slot first - before it
    /// claims its swap slot, so that it begins with at most pageoutWritesInFlight - 1 writes
    /// unfinished (ReserveBounds.stepsBeforeGrowth) - and returns the pages it sent, which the
    /// disk's interrupt frees. A page that looked clean takes no request slot; if it turns out
    /// dirty after all, it is written the waiting way.
    private static func clean(_ page: PageIndex, clustering: Bool, writing: PageoutWriting) -> Int {
        cleanOrSay(page, clustering: clustering, writing: writing).pages
    }

    /// One pageout step on `page`, which the caller has taken off its queue and marked busy, as
    /// a pass takes it (no clustering): the reserve-bound tests drive the real step with it.
    /// The pages cleaned or sent, or why none could be.
    static func step(_ page: PageIndex, writing: PageoutWriting) -> StepResult {
        cleanOrSay(page, clustering: false, writing: writing)
    }

    /// What a cleaning step came to.
    enum StepResult {
        case cleaned(Int)
        case failed(PageOutResult)

        var pages: Int {
            if case .cleaned(let count) = self { return count }
            return 0
        }
    }

    private static func cleanOrSay(_ page: PageIndex, clustering: Bool, writing: PageoutWriting) -> StepResult {
        let descriptor = PhysicalMemory.pageable(page)
        let object = descriptor.pointee.object!.assumingMemoryBound(to: MemoryObject.self)
        let index = Int(descriptor.pointee.offset)
        MemoryObjects.check(object)
        var request: Int? = nil
        if writing == .inFlight && PageoutRequests.isUsable && (descriptor.pointee.flags.contains(.dirty) || Pmap.isModified(page)) {
            request = PageoutRequests.reserveSlot()
        }
        let slot: SwapPager.Slot
        switch SwapPager.claimSlot(object, index) {
        case .claimed(let claimed):
            slot = claimed
        case .failed(let result):
            if let unused = request { PageoutRequests.cancel(unused) }
            PageQueues.release(page, to: .inactive)
            if result == .swapFull { noteSwapFull() }
            return .failed(result)
        }
        let pages = clusterPages
        pages[0] = page
        var count = 1
        if clustering && slot.isNew { count = gatherFollowers(object, index, slot.block, into: pages) }
        withInterruptsDisabled {
            for number in 0..<count {
                if Pmap.isModified(pages[number]) { PhysicalMemory.pageable(pages[number]).pointee.flags.insert(.dirty) }
                Pmap.removeAll(pages[number])
            }
        }
        if descriptor.pointee.flags.contains(.dirty), let request = request {
            let sent = startWriting(request, pages, count: count, object, index, slot)
            return sent > 0 ? .cleaned(sent) : .failed(.ioError)
        }
        if let unused = request { PageoutRequests.cancel(unused) }
        if descriptor.pointee.flags.contains(.dirty) {
            let gathered = count
            let result = SwapPager.writeCluster(pages, count: &count, object, index, to: slot)
            // Pages the window could not take stay dirty and go back, unwritten.
            for number in count..<gathered { PageQueues.release(pages[number], to: .inactive) }
            guard result == .written else {
                for number in 0..<count { PageQueues.release(pages[number], to: .inactive) }
                return .failed(result)
            }
            noteWritten(count)
            swapFullReported = false
        } else {
            // A page with no copy on swap is dirty from the fault that filled it
            // (PageFault.swift), so only an existing slot can go unused here - and only a new
            // slot gathers followers.
            kassert(!slot.isNew, "pageout: page \(index) has no copy on swap and is not dirty")
            kassert(count == 1, "pageout: a clean page gathered a cluster")
        }
        for number in 0..<count {
            withInterruptsDisabled { MemoryObjects.takeOut(pages[number], from: object, at: index + number) }
            PhysicalMemory.free(pages[number])
        }
        noteFreed(count)
        return .cleaned(count)
    }

    /// Hands a cluster (unmapped, busy, dirty, its swap slots claimed) to the disk in request
    /// slot `request` and returns its length, or 0 with everything put back when the disk
    /// refused it at once. The pages are freed when the write ends (PageoutRequests.end).
    private static func startWriting(_ request: Int, _ pages: UnsafeMutablePointer<PageIndex>, count: Int, _ object: ObjectRef,
                                     _ index: Int, _ slot: SwapPager.Slot) -> Int {
        if let refused = PageoutRequests.start(request, pages: pages, count: count, object, index, slot) {
            countEvent(&SwapDevice.writeErrors)
            Log.error(.swap, "writing blocks \(slot.block)+\(count) failed: \(refused.what) (status \(hex: refused.status))")
            SwapPager.releaseSlots(object, index, count: count, slot)
            for number in 0..<count { PageQueues.release(pages[number], to: .inactive) }
            return 0
        }
        swapFullReported = false
        return count
    }

    /// Counts a write of `count` pages: waited for by this thread, or ended by the disk's
    /// interrupt (PageoutRequests.end). With interrupts off, because the interrupt counts
    /// here too, on any CPU.
    static func noteWritten(_ count: Int) {
        withInterruptsDisabled {
            statistics.written += UInt64(count)
            statistics.writeRequests += 1
            if count > 1 { statistics.clusteredPages += UInt64(count) }
        }
    }

    /// Counts `count` pages freed - progress, for the watchdog. Interrupts off, as above.
    static func noteFreed(_ count: Int) {
        withInterruptsDisabled {
            statistics.freed += UInt64(count)
            Watchdog.pageoutProgress += UInt64(count)
        }
    }

    /// The most pages one cleaning step writes (pageoutcluster=, at most
    /// Disk.maximumTransferPages).
    static var clusterLimit = Disk.maximumTransferPages
    /// The pages of the cluster being cleaned: the pageout thread's alone, allocated at start so
    /// that cleaning allocates nothing for it.
    static let clusterPages = UnsafeMutablePointer<PageIndex>.allocate(capacity: Disk.maximumTransferPages)

    /// Claims the pages after `index` in `object` that can join a cluster starting at `block`
    /// (see `clean`), each taken off the inactive queue and marked busy with its slot claimed,
    /// until one cannot. `pages[0]` is the first page; returns the cluster's length.
    private static func gatherFollowers(_ object: ObjectRef, _ index: Int, _ block: UInt32,
                                        into pages: UnsafeMutablePointer<PageIndex>) -> Int {
        var count = 1
        while count < clusterLimit && index + count < object.pointee.pageCount {
            let next = index + count
            let follower: PageIndex? = withInterruptsDisabled {
                let page = object.pointee.page(at: next)
                guard page != .none else { return nil }
                let descriptor = PhysicalMemory.pageable(page)
                guard !descriptor.pointee.flags.contains(.busy), descriptor.pointee.queue == .inactive else { return nil }
                // Used since it was deactivated: the cluster ends, and the page is left for the
                // scan to judge (its accessed bits untouched).
                guard !Pmap.isReferenced(page) else { return nil }
                guard descriptor.pointee.flags.contains(.dirty) || Pmap.isModified(page) else { return nil }
                PageQueues.claim(page)
                return page
            }
            guard let page = follower else { break }
            guard SwapPager.claimFollowerSlot(object, next, block: block + UInt32(count)) else {
                PageQueues.release(page, to: .inactive)
                break
            }
            pages[count] = page
            count += 1
        }
        return count
    }

    static var swapFullReported = false

    /// Says so once per episode (until a page-out succeeds again).
    private static func noteSwapFull() {
        statistics.swapFullEvents += 1
        if !swapFullReported {
            swapFullReported = true
            Log.warn(.pageout, "swap is full: \(SwapDevice.usedBlocks) of \(SwapDevice.blocks) blocks in use; dirty pages cannot be cleaned")
        }
    }

    static func logStatistics() {
        let s = statistics
        Log.info(.pageout, "pageout: \(s.wakeups) wakeups, \(s.scanned) pages scanned, \(s.written) written to swap, \(s.freed) freed, \(s.reactivated) reactivated, \(s.failures) failed steps, \(s.oomKills) threads stopped for lack of memory")
        Log.info(.pageout, "clusters: \(s.written) pages written in \(s.writeRequests) requests (\(s.clusteredPages) of them in clusters of 2 to \(clusterLimit) pages)")
        Log.info(.pageout, "reaping: \(s.reaps) reaps gave back \(s.reapedPages) pages of empty zone slabs")
        Log.info(.pageout, "swap: \(SwapDevice.pagesWritten) pages out, \(SwapDevice.pagesRead) pages in, \(SwapDevice.usedBlocks) of \(SwapDevice.blocks) blocks in use; faults: \(PageFault.zeroFills) zero-fill, \(PageFault.swapIns) from swap, \(PageFault.remaps) remapped, \(PageFault.descriptorShortages) short of a page descriptor")
        SwapMetadata.logStatistics()
        PageoutRequests.logStatistics()
        Disk.logStatistics()
        LockOrder.logStatistics()
    }
}
