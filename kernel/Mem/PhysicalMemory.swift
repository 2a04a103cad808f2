// PhysicalMemory.swift - the page allocator: descriptors, buddy, requester tiers, thresholds.
//
// `bootstrap` turns the cleaned memory map into one physical segment per usable range, puts
// the page-descriptor array in memory taken from the map itself, and releases every page not
// stolen at boot to the buddy allocator (kernel/Mem/Portable/BuddyAllocator.swift). On top of the
// buddy this file adds the policy: each request brings its AllocationContext - who is asking
// and whether it may wait; the free-page thresholds (kernel/Mem/Portable/PagePolicy.swift) decide how low each requester may
// take the free count; fault injection fails requests on purpose; statistics record what
// happened, including the deepest each requester ever dug below its tier.
//
// A blocking request that cannot be met waits for the pageout thread once threads exist
// (vm_wait, kernel/Mem/VMWait.swift); before that, it panics with the requester and the counts.
// Every allocation may wake the pageout thread (below paging_start) and every free wakes the
// threads in vm_wait.

extension LogTag {
    static let pmm = LogTag("pmm")
}

struct RequesterStatistics {
    var allocations: UInt64 = 0
    var failures: UInt64 = 0
    var injectedFailures: UInt64 = 0
    /// The most pages this requester ever held below the floor of the requester before it
    /// (system: below freeReserved; pageout: below freeMin). 0 for ordinary.
    var deepestReserveUse: UInt64 = 0
}

enum PhysicalMemory {
    /// The buddy allocator, at a fixed address (the gdb helpers read it there).
    static var buddy: UnsafeMutablePointer<BuddyAllocator>? = nil
    static var pages: UnsafeMutablePointer<VMPage>? = nil
    static var pageCount = 0
    static var managedPages: UInt64 = 0
    static var thresholds = FreePageThresholds(freeMin: 1, freeReserved: 2, pagingStart: 3, pagingTarget: 4)
    static var faultInjector = FaultInjector()
    static let maximumInjectedRetries = 8
    static var statistics = PerRequester<RequesterStatistics>(RequesterStatistics())
    static var lowestFreePages: UInt64 = UInt64.max
    /// The deepest draw below free_min the derivation allows the pageout requester
    /// (ReserveBounds.bound.pages; a deeper one panics at once), and the chain of the deepest
    /// draw so far. Int.max until bootstrap.
    static var pageoutDrawBound = Int.max
    static var deepestPageoutChain = DrawChain()
    /// Pages below free_min a test holds to stand in for other privileged work (Dillon's
    /// situation, NecessityTests): the pageout requester's draws are counted below what is
    /// left, so that the bound checks what the pageout path itself takes. 0 except inside
    /// `whilePagesBelowFreeMinAreHeld`.
    private(set) static var heldBelowFreeMin = 0

    /// Runs `body` while a test holds `count` pages below free_min (see heldBelowFreeMin).
    static func whilePagesBelowFreeMinAreHeld<R>(_ count: Int, _ body: () -> R) -> R {
        kassert(heldBelowFreeMin == 0 && count >= 0 && count <= Int(thresholds.freeMin), "pages held below free_min: \(count) (already \(heldBelowFreeMin))")
        heldBelowFreeMin = count
        defer { heldBelowFreeMin = 0 }
        return body()
    }

    static var freePages: UInt64 { buddy?.pointee.freePages ?? 0 }

    // MARK: - Bootstrap

    static func bootstrap(_ map: PhysicalMemoryMap, pageoutFloor: UInt64) {
        // One descriptor per page of every usable range, in one array from the map itself.
        let ranges = map.usable
        pageCount = Int(map.usablePages)
        let descriptorBytes = UInt64(pageCount * MemoryLayout<VMPage>.stride + BuddyAllocator.scratchBytes)
        let descriptorPages = Int(roundUp(descriptorBytes, to: pageSize) / pageSize)
        let arrayAddress = BootPageAllocator.steal(pages: descriptorPages)
        let array = PhysicalWindow.pointer(to: arrayAddress).bindMemory(to: VMPage.self, capacity: pageCount)
        let scratch = PhysicalWindow.pointer(to: arrayAddress) + pageCount * MemoryLayout<VMPage>.stride
        var allocator = BuddyAllocator(pages: array, pageCount: pageCount, scratch: scratch)
        pages = array

        var first = 0
        for (number, range) in ranges.enumerated() {
            let count = Int(range.pageCount)
            allocator.addSegment(basePFN: range.start.frameNumber, count: count)
            let stolenUpTo = BootPageAllocator.ranges[number].start
            let stolen = Int((stolenUpTo - range.start) >> pageShift)
            if count > stolen {
                allocator.addFree(first: PageIndex(first + stolen), count: count - stolen)
            }
            first += count
        }
        let stored = UnsafeMutablePointer<BuddyAllocator>.allocate(capacity: 1)
        stored.initialize(to: allocator)
        buddy = stored
        BootPageAllocator.closed = true
        managedPages = allocator.freePages
        thresholds = FreePageThresholds.derive(totalPages: managedPages, pageoutFloor: pageoutFloor)
        statistics = PerRequester(RequesterStatistics())
        lowestFreePages = freePages
        // The derivation holds with the zone reserves on; without them the pageout path grows
        // the entry zones itself (the chain at depth 2), which has its own bound.
        pageoutDrawBound = Reserves.protections.contains(.zones) ? ReserveBounds.bound.pages : ReserveBounds.boundWithoutZoneReserves.pages

        let descriptorSize = UInt64(MemoryLayout<VMPage>.stride)
        Log.info(.pmm, "page descriptors: \(descriptorSize) bytes each, \(pageCount) pages, \(bytes: UInt64(descriptorPages) * pageSize) in total = \(percent: descriptorSize, of: pageSize) of RAM")
        Log.info(.pmm, "\(managedPages) pages free (\(bytes: managedPages * pageSize)); \(BootPageAllocator.stolenPages) pages taken at boot for page tables and descriptors")
        Log.info(.pmm, "thresholds: free_min \(thresholds.freeMin), free_reserved \(thresholds.freeReserved), paging_start \(thresholds.pagingStart), paging_target \(thresholds.pagingTarget) pages")
        for order in 0...BuddyAllocator.maxOrder where allocator.freeBlockCount(order: order) > 0 {
            Log.debug(.pmm, "  order \(order, width: 2): \(allocator.freeBlockCount(order: order)) free blocks")
        }
    }

    static func configureFaultInjection(_ injector: FaultInjector) {
        faultInjector = injector
    }

    // MARK: - Allocation

    /// Allocates 2^order contiguous pages aligned to their size, under `context`'s rules.
    /// Nil only when `context` may not wait.
    static func allocate(order: Int = 0, _ context: AllocationContext) -> PageIndex? {
        FreePath.checkAllocation(.pageAllocator)
        let count = UInt64(1) << UInt64(order)
        // Without the page tiers (reserves= without pages) nobody digs below the ordinary floor.
        let requester = Reserves.tier(context.requester)
        var injectedRetries = 0
        while true {
            // A blocking request treats an injected failure as a transient shortage and retries,
            // but draws at most `maximumInjectedRetries` in a row: pagefail=every:1 must slow
            // blocking requests down, not hang them. (Decided and counted with interrupts off:
            // the injector's pattern and the statistics are shared by every thread.) Nothing is
            // injected before vm_wait exists: boot-time allocations (the idle thread's stack, the
            // swap tables) can neither wait nor fail gracefully, and a seed that lands on one
            // would only test the boot's panic.
            let injected: Bool = withInterruptsDisabled {
                guard faultInjector.isActive && VMWait.isAvailable && injectedRetries < maximumInjectedRetries && faultInjector.shouldFail(requester) else { return false }
                statistics[requester].injectedFailures += 1
                if context.blocking == .noWait { statistics[requester].failures += 1 }
                return true
            }
            if injected {
                if context.blocking == .noWait { return nil }
                injectedRetries += 1
                continue
            }
            let result: PageIndex? = withInterruptsDisabled {
                guard thresholds.allows(requester, taking: count, from: buddy!.pointee.freePages),
                      let block = buddy!.pointee.allocate(order: order) else { return nil }
                noteAllocation(requester)
                return block
            }
            if let block = result {
                if freePages < thresholds.pagingStart { Pageout.wake() }
                return block
            }
            withInterruptsDisabled { statistics[requester].failures += 1 }
            if context.blocking == .noWait { return nil }
            guard VMWait.isAvailable else {
                panic("page allocator: a blocking \(requester.name) request for \(count) pages cannot be met: \(freePages) pages free, \(requester.name) requests may not go below \(thresholds.floor(for: requester)) (free_min \(thresholds.freeMin), free_reserved \(thresholds.freeReserved)); no thread can free pages yet")
            }
            VMWait.wait(AllocationContext(requester, .wait), pages: count)
        }
    }

    private static func noteAllocation(_ requester: Requester) {
        let free = buddy!.pointee.freePages
        statistics[requester].allocations += 1
        if free < lowestFreePages { lowestFreePages = free }
        // How deep below the floor of the requester before it this one went.
        guard let before = Requester(rawValue: requester.rawValue - 1) else { return }
        let floorAbove = thresholds.floor(for: before)
        guard free < floorAbove else { return }
        if requester != .pageout {
            statistics[requester].deepestReserveUse = max(statistics[requester].deepestReserveUse, floorAbove - free)
            return
        }
        // Below free_min: the pageout requester's reserve, checked against its derived bound.
        let depth = Int(floorAbove - free) - heldBelowFreeMin
        guard depth > 0 else { return }
        var deepest = Int(statistics.pageout.deepestReserveUse)
        let withinBound = ReserveDraws.note(depth, bound: pageoutDrawBound, deepest: &deepest, chain: &deepestPageoutChain,
                                            caller: { Backtrace.callChain() })
        statistics.pageout.deepestReserveUse = UInt64(deepest)
        if !withinBound {
            panic("page allocator: pageout draw \(depth) pages below free_min is beyond its derived bound \(pageoutDrawBound) (ReserveBounds.bound.pages, docs/reserves.md): a chain the derivation misses - the backtrace below")
        }
    }

    /// Returns pages to the buddy allocator. Never allocates, never blocks. The block's owner
    /// must have given it back untyped (`clearUse`): its head is .allocated, its other pages
    /// .tail.
    static func free(_ block: PageIndex, order: Int = 0) {
        FreePath.enter(.pageFree)
        withInterruptsDisabled {
            var page = pages![block.int]
            kassert(page.use == .allocated, "freeing page \(hex: physicalAddress(of: block).rawValue) whose use is \(page.use.name), not allocated (a double free, or its owner did not give it back)")
            kassert(page.pvList == nil, "freeing page \(hex: physicalAddress(of: block).rawValue) that is still mapped (\(page.pvCount) PV entries)")
            kassert(page.queue == .none, "freeing page \(hex: physicalAddress(of: block).rawValue) that is still on page queue \(page.queue.name)")
            kassert(!page.flags.contains(.busy), "freeing page \(hex: physicalAddress(of: block).rawValue) while it is busy")
            page.flags = []
            page.object = nil
            page.offset = 0
            page.wireCount = 0
            pages![block.int] = page
            buddy!.pointee.free(block, order: order)
        }
        VMWait.pagesFreed()
        FreePath.leave()
    }

    // MARK: - Page use

    /// The owner of a block it just allocated types it: its head goes from .allocated to
    /// `use` (and, for `everyPage`, each other page of the block from .tail to `use`).
    static func setUse(_ block: PageIndex, _ use: PageUse, order: Int = 0, everyPage: Bool = false) {
        let head = page(block)
        kassert(head.pointee.use == .allocated, "page \(hex: physicalAddress(of: block).rawValue) made \(use.name) while it is \(head.pointee.use.name), not freshly allocated")
        head.pointee.use = use
        guard everyPage && order > 0 else { return }
        for number in 1..<(1 << order) {
            let tail = page(PageIndex(block.int + number))
            kassert(tail.pointee.use == .tail, "page \(hex: physicalAddress(of: block).rawValue) + \(number) made \(use.name) while it is \(tail.pointee.use.name), not a tail")
            tail.pointee.use = use
        }
    }

    /// The owner gives a block back untyped, before freeing it: the reverse of `setUse`, which
    /// must have typed it `use`.
    static func clearUse(_ block: PageIndex, _ use: PageUse, order: Int = 0, everyPage: Bool = false) {
        let head = page(block)
        kassert(head.pointee.use == use, "page \(hex: physicalAddress(of: block).rawValue) given back as \(use.name) while it is \(head.pointee.use.name)")
        head.pointee.use = .allocated
        guard everyPage && order > 0 else { return }
        for number in 1..<(1 << order) {
            let tail = page(PageIndex(block.int + number))
            kassert(tail.pointee.use == use, "page \(hex: physicalAddress(of: block).rawValue) + \(number) given back as \(use.name) while it is \(tail.pointee.use.name)")
            tail.pointee.use = .tail
        }
    }

    // MARK: - Descriptors and addresses

    @inline(__always)
    static func page(_ index: PageIndex) -> UnsafeMutablePointer<VMPage> {
        pages! + index.int
    }

    static func physicalAddress(of index: PageIndex) -> PhysicalAddress {
        PhysicalAddress(frameNumber: buddy!.pointee.frameNumber(of: index))
    }

    static func index(of address: PhysicalAddress) -> PageIndex? {
        buddy?.pointee.index(ofFrame: address.frameNumber)
    }

    /// The page's contents through the direct map.
    static func pointer(to index: PageIndex) -> UnsafeMutableRawPointer {
        PhysicalWindow.pointer(to: physicalAddress(of: index))
    }

    static func logStatistics() {
        Log.info(.pmm, "free pages \(freePages) of \(managedPages), lowest ever \(lowestFreePages)")
        for requester in Requester.allCases {
            let s = statistics[requester]
            Log.info(.pmm, "  \(requester.name) requests: \(s.allocations) allocations, \(s.failures) failures (\(s.injectedFailures) injected), deepest reserve use \(s.deepestReserveUse) pages")
        }
        if faultInjector.isActive {
            Log.info(.pmm, "fault injection: \(faultInjector.injected) failures injected in \(faultInjector.requests) requests")
        }
    }
}
