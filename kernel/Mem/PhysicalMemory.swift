// PhysicalMemory.swift - the page allocator: descriptors, buddy, requester tiers, thresholds.
//
// `bootstrap` turns the cleaned memory map into one physical segment per usable range, puts
// the mem_desc array (8 bytes a page, kernel/Mem/Portable/MemDesc.swift: the only static
// per-page memory) in memory taken from the map itself, and releases every page not stolen at boot to the buddy
// allocator (kernel/Mem/Portable/BuddyAllocator.swift), whose blocks are described by buddy
// descriptors from a static page in the image and then from pages of their own
// (docs/memory-descriptors.md). On top of the
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
    /// Blocking multi-page requests that failed with enough pages free but no block free.
    var fragmentedFailures: UInt64 = 0
    /// The most pages this requester ever held below the floor of the requester before it
    /// (system: below freeReserved; pageout: below freeMin). 0 for ordinary.
    var deepestReserveUse: UInt64 = 0
}

import ArchSupport

enum PhysicalMemory {
    /// The buddy allocator, at a fixed address (the gdb helpers read it there).
    static var buddy: UnsafeMutablePointer<BuddyAllocator>? = nil
    static var memDescs: UnsafeMutablePointer<MemDesc>? = nil
    /// Pages stolen at boot for the mem_desc array (and the buddy's scratch).
    static var descriptorArrayPages = 0
    /// Whether the switch from the static descriptor page to dynamic ones has been logged.
    static var descriptorSwitchLogged = false
    /// Pageable pages with their descriptor attached (makePageable .. releasePageable).
    static var pageableDescriptors = 0
    /// Descriptors a fault has taken and not yet attached (or given back): between the two it
    /// may be preempted, so the validator counts them.
    static var pageableDescriptorsUnattached = 0
    /// The most pages of dynamic descriptors (buddy descriptor pages + page_desc slabs) seen,
    /// sampled whenever a page is made pageable and whenever the buddy pool reaches a new high.
    static var peakDescriptorPages = 0
    static var peakBuddyDescriptorPages = 0
    static var pageCount = 0
    static var managedPages: UInt64 = 0
    static var thresholds = FreePageThresholds(freeMin: 1, freeReserved: 2, pagingStart: 3, pagingTarget: 4)
    static var faultInjector = FaultInjector()
    static let maximumInjectedRetries = 8
    /// How often a blocking multi-page request waits for pageout to complete a block before
    /// it fails (memory fragmented).
    static let maximumFragmentedRetries = 8
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

    /// Runs `body` while a test holds `count` pages below free_min (see heldBelowFreeMin), and
    /// whatever buddy descriptors below their reserve line its holding took: each page a test
    /// holds keeps a descriptor, so taking all of memory draws the descriptor reserve too.
    static func whilePagesBelowFreeMinAreHeld<R>(_ count: Int, _ body: () -> R) -> R {
        kassert(heldBelowFreeMin == 0 && count >= 0 && count <= Int(thresholds.freeMin), "pages held below free_min: \(count) (already \(heldBelowFreeMin))")
        heldBelowFreeMin = count
        withInterruptsDisabled {
            let allocator = buddy!
            let below = allocator.pointee.descriptors.reserveTarget - allocator.pointee.descriptors.freeCount
            allocator.pointee.descriptors.heldBelowReserveLine = max(0, below)
        }
        defer {
            heldBelowFreeMin = 0
            buddy!.pointee.descriptors.heldBelowReserveLine = 0
        }
        return body()
    }

    /// Free pages: the buddy allocator's (the centre's) and those on the CPUs' page lists
    /// (CPUPageLists.swift), which are never the reserves' - below paging_start the lists are
    /// drained before anything is decided, so every decision there sees the centre alone.
    static var freePages: UInt64 { (buddy?.pointee.freePages ?? 0) + CPUPageLists.pages }

    // MARK: - Bootstrap

    static func bootstrap(_ map: PhysicalMemoryMap, pageoutFloor: UInt64) {
        // One mem_desc word per page of every usable range, in one run of pages from the map
        // itself. Nothing else about a page is static (docs/memory-descriptors.md).
        let ranges = map.usable
        pageCount = Int(map.usablePages)
        let wordBytes = pageCount * MemoryLayout<MemDesc>.stride
        let descriptorBytes = UInt64(wordBytes + BuddyAllocator.scratchBytes)
        let descriptorPages = Int(roundUp(descriptorBytes, to: pageSize) / pageSize)
        descriptorArrayPages = descriptorPages
        let arrayAddress = BootPageAllocator.steal(pages: descriptorPages)
        let base = PhysicalWindow.pointer(to: arrayAddress)
        let words = base.bindMemory(to: MemDesc.self, capacity: pageCount)
        let scratch = base + wordBytes
        let staticDescriptors = UnsafeMutableRawPointer(bitPattern: UInt(arch_buddy_descriptor_static_page()))!
        var allocator = BuddyAllocator(memDescs: words, pageCount: pageCount, scratch: scratch,
                                       window: PhysicalWindow.pointer(to: PhysicalAddress(0)), staticDescriptors: staticDescriptors)
        memDescs = words

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
        // The pageout path's descriptor reserve (ReserveBounds, docs/memory-descriptors.md).
        allocator.descriptors.reserveTarget = ReserveBounds.buddyDescriptorReserve
        allocator.descriptors.reserveDrawBound = ReserveBounds.buddyDescriptorBound
        // zonedebug's doublefree and poison apply to the buddy-descriptor pool as to every zone.
        if Zones.debug.contains(.doubleFree) || Zones.debug.contains(.poison) {
            allocator.descriptors.enableDebugChecks(poison: Zones.debug.contains(.poison))
        }
        let stored = UnsafeMutablePointer<BuddyAllocator>.allocate(capacity: 1)
        stored.initialize(to: allocator)
        buddy = stored
        refillDescriptors(.ordinary)
        BootPageAllocator.closed = true
        managedPages = allocator.freePages
        thresholds = FreePageThresholds.derive(totalPages: managedPages, pageoutFloor: pageoutFloor)
        statistics = PerRequester(RequesterStatistics())
        lowestFreePages = freePages
        // The derivation holds with the zone reserves on; without them the pageout path grows
        // the entry zones itself (the chain at depth 2), which has its own bound.
        pageoutDrawBound = Reserves.protections.contains(.zones) ? ReserveBounds.bound.pages : ReserveBounds.boundWithoutZoneReserves.pages
        CPUPageLists.setUp(managedPages: managedPages, cpus: 1 + Machine.processorsToStart.count)

        let descriptorSize = UInt64(MemoryLayout<MemDesc>.stride)
        Log.info(.pmm, "page descriptors: \(descriptorSize) bytes each (the mem_desc word; everything else is allocated with the memory), \(pageCount) pages, \(bytes: UInt64(descriptorPages) * pageSize) in total with the buddy's scratch = \(percent: descriptorSize, of: pageSize) of RAM")
        logDescriptorSwitch()
        logDescriptorMemory("at boot")
        Log.info(.pmm, "buddy descriptor reserve: bound \(ReserveBounds.buddyDescriptorBound), reserve \(ReserveBounds.buddyDescriptorReserve) (docs/reserves.md)")
        Log.info(.pmm, "\(managedPages) pages free (\(bytes: managedPages * pageSize)); \(BootPageAllocator.stolenPages) pages taken at boot for page tables and descriptors")
        Log.info(.pmm, "thresholds: free_min \(thresholds.freeMin), free_reserved \(thresholds.freeReserved), paging_start \(thresholds.pagingStart), paging_target \(thresholds.pagingTarget) pages")
        for order in 0...BuddyAllocator.maxOrder where allocator.freeBlockCount(order: order) > 0 {
            Log.debug(.pmm, "  order \(order, width: 2): \(allocator.freeBlockCount(order: order)) free blocks")
        }
    }

    static func configureFaultInjection(_ injector: FaultInjector) {
        faultInjector = injector
    }

    /// Whether `pagefail=` may fail requests yet: from the end of the boot on.
    static var faultInjectionArmed = false

    /// Called once every subsystem is up (kernel_init_complete): the tests and workloads that
    /// follow meet the injected failures, the boot never does.
    static func armFaultInjection() {
        faultInjectionArmed = true
        if faultInjector.isActive { Log.info(.pmm, "fault injection armed: the boot is over") }
    }

    // MARK: - Allocation

    /// Allocates 2^order contiguous pages aligned to their size, under `context`'s rules.
    /// Nil only when `context` may not wait.
    static func allocate(order: Int = 0, _ context: AllocationContext) -> PageIndex? {
        checkNotInFreePath()
        // An ordinary single page: this CPU's list first, without the kernel lock. Taken here,
        // before the loop's set-up, unless failures are being injected (they count every
        // request, in the loop): one site in the loop costs the pair 35 instructions more.
        let listed = order == 0 && context.requester == .ordinary
        if listed && !faultInjector.isActive, let page = CPUPageLists.take() { return page }
        let count = UInt64(1) << UInt64(order)
        // Without the page tiers (reserves= without pages) nobody digs below the ordinary floor.
        let requester = Reserves.tier(context.requester)
        var injectedRetries = 0
        var fragmentedRetries = 0
        while true {
            // A blocking request treats an injected failure as a transient shortage and retries,
            // but draws at most `maximumInjectedRetries` in a row: pagefail=every:1 must slow
            // blocking requests down, not hang them. (Decided and counted with interrupts off:
            // the injector's pattern and the statistics are shared by every thread.) Nothing is
            // injected before the boot is over (`armFaultInjection`): boot-time allocations (the
            // idle thread's stack, the swap tables, a disk driver's DMA memory) can neither wait
            // nor fail gracefully - stressfaults with seed 7 lost its virtio disk to one - and a
            // seed that lands on one would only test the boot's failure path.
            let injected: Bool = faultInjector.isActive && withInterruptsDisabled {
                guard faultInjectionArmed && injectedRetries < maximumInjectedRetries && faultInjector.shouldFail(requester) else { return false }
                statistics[requester].injectedFailures += 1
                if context.blocking == .noWait { statistics[requester].failures += 1 }
                return true
            }
            if injected {
                if context.blocking == .noWait { return nil }
                injectedRetries += 1
                continue
            }
            if listed && faultInjector.isActive, let page = CPUPageLists.take() { return page }
            var fragmented = false
            let result: PageIndex? = withInterruptsDisabled {
                PerCPU.this.pointee.pageAllocatorSections &+= 1
                // Below paging_start the tiers decide, on the centre alone: the lists go back
                // to it first (CPUPageList.swift).
                if buddy!.pointee.freePages < thresholds.pagingStart + count { CPUPageLists.drainLocked() }
                let free = buddy!.pointee.freePages
                // Descriptors for a split: the pageout path grows the pool like a system
                // request while that stays above free_min, and below it takes the reserve.
                let access = descriptorAccess(requester, count: count, free: free)
                let extra = buddy!.pointee.extraPages(order: order, access)
                guard thresholds.allows(requester, taking: count + extra, from: free) else { return nil }
                var found = buddy!.pointee.allocate(order: order, access)
                // No block of this order: pages on the lists may complete one.
                if found == nil && order > 0 && CPUPageLists.drainLocked() > 0 { found = buddy!.pointee.allocate(order: order, access) }
                guard let block = found else {
                    fragmented = order > 0
                    return nil
                }
                noteAllocation(requester)
                noteDescriptors(block, requester)
                if listed { CPUPageLists.refillLocked() }
                return block
            }
            if let block = result {
                if !descriptorSwitchLogged { logDescriptorSwitch() }
                if freePages < thresholds.pagingStart { Pageout.wake() }
                return block
            }
            withInterruptsDisabled { statistics[requester].failures += 1 }
            if context.blocking == .noWait { return nil }
            guard VMWait.isAvailable else {
                panic("page allocator: a blocking \(requester.name) request for \(count) pages cannot be met: \(freePages) pages free, \(requester.name) requests may not go below \(thresholds.floor(for: requester)) (free_min \(thresholds.freeMin), free_reserved \(thresholds.freeReserved)); no thread can free pages yet")
            }
            if fragmented {
                // Enough pages are free but no block of this order: vm_wait would return at
                // once and the loop would spin for ever. Pageout's frees may complete a
                // block, so wait for them a few times; then the request fails like a
                // non-waiting one (a caller that can use scattered pages - kmalloc - does
                // not come here once kmem exists).
                if fragmentedRetries == maximumFragmentedRetries {
                    withInterruptsDisabled { statistics[requester].fragmentedFailures += 1 }
                    Log.warn(.pmm, "page allocator: no free block of \(count) pages for a request of the \(requester.name) tier after \(fragmentedRetries) waits, though \(freePages) pages are free: memory is fragmented")
                    return nil
                }
                fragmentedRetries += 1
                VMWait.wait(AllocationContext(requester, .wait), pages: count, for: .aFreedPage)
                continue
            }
            VMWait.wait(AllocationContext(requester, .wait), pages: count)
        }
    }

    /// FreePath.checkAllocation through this CPU's pointer to the running thread's state: a
    /// load and a compare where the portable check costs calls (as the zones' fast path does).
    @inline(__always)
    private static func checkNotInFreePath() {
        let depth = PerCPU.runningFreePath.pointee.depth
        if depth > 0 { FreePath.report(.pageAllocator, "") }
    }

    /// Which buddy descriptors a request may take: the reserve is the pageout path's, and only
    /// once growing the pool would take it below free_min.
    @inline(__always)
    private static func descriptorAccess(_ requester: Requester, count: UInt64, free: UInt64) -> DescriptorAccess {
        guard requester == .pageout else { return .aboveReserve }
        let extra = buddy!.pointee.extraPages(order: 0, .aboveReserve) + 1
        return thresholds.allows(.system, taking: count + extra, from: free) ? .aboveReserve : .reserve
    }

    /// After an allocation: mark a block taken below free_reserved as from the reserves, stop
    /// at a descriptor draw beyond its bound, and top the descriptor reserve up when an
    /// allocation that may not take it found it short.
    @inline(__always)
    static func noteDescriptors(_ block: PageIndex, _ requester: Requester) {
        let allocator = buddy!
        if requester != .ordinary && allocator.pointee.freePages < thresholds.freeReserved {
            allocator.pointee.descriptor(of: block)!.pointee.flags.insert(.fromReserve)
        }
        let beyond = allocator.pointee.descriptors.drawBeyondBound
        if beyond != 0 {
            panic("page allocator: a buddy-descriptor draw \(beyond) below the reserve line is beyond its derived bound \(ReserveBounds.buddyDescriptorBound) (ReserveBounds.buddyDescriptorBound, docs/memory-descriptors.md)")
        }
        if allocator.pointee.descriptors.freeCount < allocator.pointee.descriptors.reserveTarget && requester != .pageout {
            refillDescriptors(requester)
        }
        // The pool only grows on an allocation: a new high is a candidate for the peak.
        if allocator.pointee.descriptors.dynamicPages > peakBuddyDescriptorPages {
            peakBuddyDescriptorPages = allocator.pointee.descriptors.dynamicPages
            notePeakDescriptorPages()
        }
    }

    /// Grows the descriptor pool back to its reserve, a page at a time, as far as
    /// `requester`'s page floor allows. Interrupts off (the caller's, or here).
    static func refillDescriptors(_ requester: Requester) {
        withInterruptsDisabled {
            let allocator = buddy!
            while allocator.pointee.descriptors.freeCount < allocator.pointee.descriptors.reserveTarget,
                  thresholds.allows(requester, taking: 1, from: allocator.pointee.freePages),
                  allocator.pointee.growDescriptors() {}
        }
    }

    /// Buddy descriptors free above the pool's reserve line: what splits may take before an
    /// allocation above free_min grows the pool by a page.
    static var spareDescriptors: Int { withInterruptsDisabled { buddy!.pointee.descriptors.available(.aboveReserve) } }

    /// Grows the descriptor pool by one page from the smallest free block, whatever the
    /// floors say: for tests that set the free pages exactly and must not have the pool take
    /// one of them in the middle of the chain they count (ReserveBoundTests.Scene).
    static func growDescriptorPool() -> Bool {
        withInterruptsDisabled { buddy!.pointee.growDescriptors() }
    }

    /// Gives back pages of buddy descriptors that describe no allocated block - what a burst
    /// of fragmentation leaves once its blocks have merged again - keeping the reserve
    /// and a page's worth of spare descriptors, so that the next splits do not grow the pool
    /// at once. The pageout thread's reaping calls it (Pageout.reapZones), never a free path:
    /// each page needs a descriptor from another page (BuddyAllocator.reclaimDescriptorPages).
    /// Returns the pages freed.
    static func reclaimDescriptorPages() -> UInt64 {
        let freed = withInterruptsDisabled { () -> Int in
            let allocator = buddy!
            let keep = allocator.pointee.descriptors.reserveTarget + BuddyDescriptorPool.descriptorsPerPage
            return allocator.pointee.reclaimDescriptorPages(keeping: keep)
        }
        if freed > 0 { VMWait.pagesFreed() }
        return UInt64(freed)
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
        let use = self.use(of: block)
        kassert(use == .allocated, "freeing page \(hex: physicalAddress(of: block).rawValue) whose use is \(use.name), not allocated (a double free, or its owner did not give it back)")
        let descriptor = memDescs![block.int].buddy!
        kassert(!descriptor.pointee.flags.contains(.onCPUList), "freeing page \(hex: physicalAddress(of: block).rawValue) that is already free on a CPU's page list (a double free)")
        kassert(descriptor.pointee.mappings.isEmpty, "freeing page \(hex: physicalAddress(of: block).rawValue) that is still mapped (\(descriptor.pointee.mappings.count) PV entries)")
        // A push on this CPU's list allocates nothing: the free-path guard starts after it.
        if order == 0 && CPUPageLists.keep(block) { return }
        FreePath.enter(.pageFree)
        withInterruptsDisabled {
            PerCPU.this.pointee.pageAllocatorSections &+= 1
            buddy!.pointee.free(block, order: order)
        }
        VMWait.pagesFreed()
        FreePath.leave()
    }

    // MARK: - Page use

    /// The owner of a block it just allocated types it: every page's mem_desc goes from
    /// .allocated to `use` (the pointer, the block's buddy descriptor, stays: the owner frees
    /// the block with it).
    static func setUse(_ block: PageIndex, _ use: PageUse) {
        let current = self.use(of: block)
        kassert(current == .allocated && isFirstPage(block) && !memDescs![block.int].buddy!.pointee.flags.contains(.onCPUList),
                "page \(hex: physicalAddress(of: block).rawValue) made \(use.name) while it is \(current.name), not a freshly allocated block")
        kassert(memDescs![block.int].buddy!.pointee.mappings.isEmpty, "page \(hex: physicalAddress(of: block).rawValue) made \(use.name) while it is mapped")
        buddy!.pointee.setUse(block, use)
    }

    /// The owner gives a block back untyped, before freeing it: the reverse of `setUse`, which
    /// must have typed it `use`. Its owner words must be back at zero: no mappings left, a
    /// page table with no entries.
    static func clearUse(_ block: PageIndex, _ use: PageUse) {
        let current = self.use(of: block)
        kassert(current == use && isFirstPage(block), "page \(hex: physicalAddress(of: block).rawValue) given back as \(use.name) while it is \(current.name)")
        let words = memDescs![block.int].buddy!.pointee.ownerWords
        kassert(words.first == 0, "page \(hex: physicalAddress(of: block).rawValue) given back as \(use.name) while its owner words say it is still mapped or holds entries")
        buddy!.pointee.setUse(block, .allocated)
    }

    /// What page `index` is used for (its mem_desc tag).
    @inline(__always)
    static func use(of index: PageIndex) -> PageUse { memDescs![index.int].use }

    /// The order of the block page `index` is in (0 for a reserved page).
    static func order(of index: PageIndex) -> Int {
        guard let descriptor = memDescs![index.int].buddy else { return 0 }
        return Int(descriptor.pointee.order)
    }

    /// Whether page `index` is the first page of its block.
    static func isFirstPage(_ index: PageIndex) -> Bool {
        memDescs![index.int].buddy?.pointee.firstPage == index
    }

    // MARK: - Descriptors and addresses

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

    /// The switch from the static descriptor page to pages of RAM, once it has happened.
    static func logDescriptorSwitch() {
        let pool = buddy!.pointee.descriptors
        guard pool.isDynamic && !descriptorSwitchLogged else { return }
        descriptorSwitchLogged = true
        Log.info(.pmm, "buddy descriptors: the static page is used up after \(pool.takenBeforeSwitch) descriptors; from now on from pages of RAM that describe themselves")
    }

    /// What describing memory costs now: the mem_desc array, the pages of buddy descriptors
    /// and the slabs of the page_desc zone, per managed page.
    static func logDescriptorMemory(_ when: StaticString) {
        let allocator = buddy!.pointee
        let pool = allocator.descriptors
        let pageDescriptorSlabs = Zones.pageDescriptor.state.pointee.statistics.dynamicSlabs
        let dynamicBytes = UInt64(pool.dynamicPages + pageDescriptorSlabs) * pageSize
        let staticBytes = UInt64(pageCount * MemoryLayout<MemDesc>.stride)
        notePeakDescriptorPages()
        let peakBytes = staticBytes + UInt64(peakDescriptorPages) * pageSize
        defer { Log.info(.pmm, "descriptor memory at the peak so far: \(peakDescriptorPages) pages of dynamic descriptors = \(quotient: peakBytes, by: UInt64(pageCount)) B per page (\(percent: peakBytes, of: UInt64(pageCount) * pageSize) of RAM)") }
        Log.info(.pmm, "descriptor memory \(when): mem_desc \(MemoryLayout<MemDesc>.stride) B per page, \(pool.dynamicPages) pages of buddy descriptors (\(pool.inUse) in use, \(pool.freeCount) free, reserve \(pool.reserveTarget); \(pool.pagesGivenBack) pages given back so far) and \(pageDescriptorSlabs) pages of pageable-page descriptors (\(pageableDescriptors) in use, \(MemoryLayout<PageablePage>.stride) B each) = \(quotient: staticBytes + dynamicBytes, by: UInt64(pageCount)) B per page (\(percent: staticBytes + dynamicBytes, of: UInt64(pageCount) * pageSize) of RAM)")
    }

    /// The descriptor accounting and what describing memory costs now and at its peak (after
    /// every suite).
    static func logDescriptorStatistics() {
        let allocator = buddy!.pointee
        Log.info(.pmm, "buddy descriptors: \(allocator.descriptors.inUse) in use = \(allocator.freeBlockTotal) free blocks + \(allocator.allocatedBlocks) allocated; deepest chain \(allocator.deepestChain) (bound \(BuddyAllocator.chainBound)); deepest reserve draw \(allocator.descriptors.deepestReserveDraw) (bound \(ReserveBounds.buddyDescriptorBound))")
        logDescriptorMemory("now")
    }

    static func logStatistics() {
        Log.info(.pmm, "free pages \(freePages) of \(managedPages), lowest ever \(lowestFreePages)")
        logDescriptorStatistics()
        for requester in Requester.allCases {
            let s = statistics[requester]
            let listed = requester == .ordinary ? CPUPageLists.totals.allocations : 0
            Log.info(.pmm, "  \(requester.name) requests: \(s.allocations + listed) allocations, \(s.failures) failures (\(s.injectedFailures) injected, \(s.fragmentedFailures) for fragmentation), deepest reserve use \(s.deepestReserveUse) pages")
        }
        CPUPageLists.logStatistics()
        if faultInjector.isActive {
            Log.info(.pmm, "fault injection: \(faultInjector.injected) failures injected in \(faultInjector.requests) requests")
        }
    }
}
