// PhysicalMemoryTests.swift - the page allocator: every page once, alignment, classes, faults.
//
// The suite runs at 16 MiB, 128 MiB, 1 GiB and 4 GiB (memory above 4 GiB, a PCI hole below);
// the host runner checks the logged usable memory against the loader's map independently.

enum PhysicalMemoryTests {
    static var suite: TestSuite {
        TestSuite("pmm", memory: "16M,128M,1G,4G,8G", [
            TestCase("everyFreePageIsHandedOutOnceAndComesBack", everyFreePageIsHandedOutOnceAndComesBack),
            TestCase("multiPageBlocksAreAlignedToTheirSize", multiPageBlocksAreAlignedToTheirSize),
            TestCase("eachRequesterStopsAtItsTier", eachRequesterStopsAtItsTier),
            TestCase("faultInjectionFailsExactlyTheConfiguredRequests", faultInjectionFailsExactlyTheConfiguredRequests),
            TestCase("blockingRequestRetriesThroughInjectedFailures", blockingRequestRetriesThroughInjectedFailures),
            TestCase("blockingRequestIsNotHungByInjectionOfEveryRequest", blockingRequestIsNotHungByInjectionOfEveryRequest),
            TestCase("descriptorsAreSmallAndCoverEveryUsablePage", descriptorsAreSmallAndCoverEveryUsablePage),
            TestCase("buddyDescriptorPagesDescribeThemselvesAndTheReserveIsKept", buddyDescriptorPagesDescribeThemselvesAndTheReserveIsKept),
            TestCase("blockingMultiPageRequestInFragmentedMemoryFailsInsteadOfWaitingForever", blockingMultiPageRequestInFragmentedMemoryFailsInsteadOfWaitingForever),
            TestCase("kmallocInFragmentedMemoryTakesScatteredPagesFromKmem", kmallocInFragmentedMemoryTakesScatteredPagesFromKmem),
            TestCase("descriptorPagesGoBackWhenTheirBlocksMergeAgain", descriptorPagesGoBackWhenTheirBlocksMergeAgain),
            TestCase("blockingRequestWithNoWayToWaitPanics", expectsPanic: "a blocking ordinary request for 1 pages cannot be met",
                     inFrame: "PhysicalMemory.allocate", blockingRequestWithNoWayToWaitPanics),
            TestCase("freeingAPageItsOwnerStillTypesPanics", expectsPanic: "whose use is wired, not allocated",
                     inFrame: "PhysicalMemoryTests.freeingAPageItsOwnerStillTypesPanics", freeingAPageItsOwnerStillTypesPanics),
            TestCase("pageableDescriptorsComeAndGoWithTheirPages", pageableDescriptorsComeAndGoWithTheirPages),
            TestCase("theDescriptorCheckCatchesABrokenDescriptor", theDescriptorCheckCatchesABrokenDescriptor),
            TestCase("thePageoutPathNeverTakesAPageableDescriptor", expectsPanic: "a pageable page's descriptor asked for on the pageout path",
                     inFrame: "PhysicalMemoryTests.thePageoutPathNeverTakesAPageableDescriptor", thePageoutPathNeverTakesAPageableDescriptor),
            TestCase("untypingAPageThatIsStillMappedPanics", expectsPanic: "while its owner words say it is still mapped",
                     inFrame: "PhysicalMemoryTests.untypingAPageThatIsStillMappedPanics", untypingAPageThatIsStillMappedPanics),
            TestCase("aFreedPageWaitsOnItsCPUsListAndIsTheNextHandedOut", aFreedPageWaitsOnItsCPUsListAndIsTheNextHandedOut),
            TestCase("listedPagesAreTheCentresBeforeAFloorDecides", { listedPagesAreTheCentresBeforeAFloorDecides(on: .thisCPU) }),
            TestCase("freeingAListedPageAgainPanics", expectsPanic: "(a double free",
                     inFrame: "PhysicalMemoryTests.freeingAListedPageAgainPanics", freeingAListedPageAgainPanics),
            TestCase("mappingAPageWhoseOwnerWordsMeanSomethingElsePanics", expectsPanic: "which is never mapped through a PV list",
                     inFrame: "PhysicalMemoryTests.mappingAPageWhoseOwnerWordsMeanSomethingElsePanics", mappingAPageWhoseOwnerWordsMeanSomethingElsePanics),
        ])
    }

    /// The pmm suite again, with fault injection set from the command line.
    static var faultSuite: TestSuite {
        TestSuite("pmmfaults", arguments: "pagefail=every:3:ordinary", [
            TestCase("commandLineFaultInjectionFailsEveryThirdOrdinaryRequest", commandLineFaultInjectionFailsEveryThirdOrdinaryRequest),
        ])
    }

    /// A bitmap over page indices, from the kernel heap.
    struct PageBitmap {
        let words: UnsafeMutablePointer<UInt64>
        let count: Int

        init(pages: Int) {
            count = (pages + 63) / 64
            words = UnsafeMutablePointer<UInt64>.allocate(capacity: count)
            words.initialize(repeating: 0, count: count)
        }

        func release() { words.deallocate() }

        /// Sets the bit; false when it was already set.
        func insert(_ index: PageIndex) -> Bool {
            let word = index.int / 64, bit = UInt64(1) << UInt64(index.int % 64)
            if words[word] & bit != 0 { return false }
            words[word] |= bit
            return true
        }

        func remove(_ index: PageIndex) {
            words[index.int / 64] &= ~(UInt64(1) << UInt64(index.int % 64))
        }

        /// Clears and returns the lowest set bit; nil when none is set.
        func removeFirst() -> PageIndex? {
            for word in 0..<count where words[word] != 0 {
                let index = PageIndex(word * 64 + words[word].trailingZeroBitCount)
                remove(index)
                return index
            }
            return nil
        }

        func forEach(_ body: (PageIndex) -> Void) {
            for word in 0..<count where words[word] != 0 {
                for bit in 0..<64 where words[word] & (UInt64(1) << UInt64(bit)) != 0 {
                    body(PageIndex(word * 64 + bit))
                }
            }
        }
    }

    static func everyFreePageIsHandedOutOnceAndComesBack() {
        // The bitmap comes from kmalloc: take it before counting.
        let taken = PageBitmap(pages: PhysicalMemory.pageCount)
        let before = PhysicalMemory.freePages
        let descriptorPagesBefore = PhysicalMemory.buddy!.pointee.descriptors.dynamicPages
        var count: UInt64 = 0
        var duplicates = 0
        // Every page, those below free_min too: deliberate draws (ReserveDraw.swift).
        ReserveDraws.deliberately {
            while let page = PhysicalMemory.allocate(order: 0, .pageout) {
                if !taken.insert(page) { duplicates += 1 }
                count += 1
            }
        }
        // Every allocated page holds a buddy descriptor, so the pool grew on the way: those
        // pages (which describe themselves) are the only ones not handed out.
        let buddy = PhysicalMemory.buddy!
        let descriptorPages = UInt64(buddy.pointee.descriptors.dynamicPages - descriptorPagesBefore)
        Test.expect(descriptorPages > 0, "the descriptor pool grew while every page was taken")
        Test.expectEqual(count + descriptorPages, before, "pages handed out, and pages taken for descriptors")
        Test.expectEqual(duplicates, 0, "pages handed out twice")
        Test.expectEqual(PhysicalMemory.freePages, UInt64(0), "free pages when everything is taken")
        Test.expectEqual(buddy.pointee.descriptors.inUse, buddy.pointee.freeBlockTotal + buddy.pointee.allocatedBlocks,
                         "descriptors in use = free blocks + allocated blocks")
        let inUseBeforeFreeing = buddy.pointee.descriptors.inUse
        taken.forEach { PhysicalMemory.free($0) }
        Test.expectEqual(PhysicalMemory.freePages, before - descriptorPages, "free pages after freeing everything")
        Test.expect(buddy.pointee.descriptors.inUse < inUseBeforeFreeing, "freeing gave descriptors back (merges)")
        taken.release()
        Test.expect(buddy.pointee.isConsistent(), "buddy invariants hold")
        Test.diagnostic("\(count) pages allocated and freed; \(descriptorPages) pages became buddy descriptors")
    }

    static func multiPageBlocksAreAlignedToTheirSize() {
        var blocks: [(PageIndex, Int)] = []
        // Random orders up to 7 (512 KiB), then the largest order once: fits even in 16 MiB.
        for round in 0..<41 {
            let order = round == 40 ? BuddyAllocator.maxOrder : Test.random.next(below: 8)
            guard let block = PhysicalMemory.allocate(order: order, .ordinaryNoWait) else { continue }
            let address = PhysicalMemory.physicalAddress(of: block).rawValue
            Test.expect(address % (pageSize << UInt64(order)) == 0, "round \(round): order-\(order) block at \(hex: address) is misaligned")
            // The block is really contiguous: its last page is the descriptor `2^order - 1` further on.
            let last = PhysicalMemory.physicalAddress(of: PageIndex(block.int + (1 << order) - 1)).rawValue
            Test.expectEqual(last, address + (pageSize << UInt64(order)) - pageSize, "last page of the block")
            blocks.append((block, order))
        }
        Test.expect(blocks.count > 20, "most requests were met")
        for (block, order) in blocks { PhysicalMemory.free(block, order: order) }
        Test.expect(PhysicalMemory.buddy!.pointee.isConsistent(), "buddy invariants hold")
    }

    /// Takes pages of `requester` until refused at its floor; returns how many. A request the
    /// floor allows is still refused when its split needs buddy descriptors and a page of them
    /// would go below the floor: then the pool grows by a page (as a test may, whatever the
    /// floors say) and the draining goes on, so that the count ends at the floor exactly.
    /// Seen at 4284M, seed 191: the system drain stopped at free_min + 1.
    static func drain(_ requester: Requester, into taken: PageBitmap) -> UInt64 {
        var count: UInt64 = 0
        let floor = PhysicalMemory.thresholds.floor(for: Reserves.tier(requester))
        while true {
            while let page = PhysicalMemory.allocate(order: 0, AllocationContext(requester, .noWait)) {
                _ = taken.insert(page)
                count += 1
            }
            guard PhysicalMemory.freePages > floor && PhysicalMemory.growDescriptorPool() else { return count }
        }
    }

    /// The free count and the descriptor pool's pages before a case takes pages. Every page
    /// taken holds a buddy descriptor, and the pages the pool grows by meanwhile stay in it
    /// until the pageout thread reaps them.
    struct FreeCountBefore {
        let free = PhysicalMemory.freePages
        let descriptorPages = PhysicalMemory.buddy!.pointee.descriptors.dynamicPages

        /// Checks that every page is back but those the pool grew by; returns how many those are.
        func expectAllBack() -> UInt64 {
            let grown = UInt64(PhysicalMemory.buddy!.pointee.descriptors.dynamicPages - descriptorPages)
            Test.expectEqual(PhysicalMemory.freePages, free - grown, "all pages back but those the descriptor pool grew by")
            return grown
        }
    }

    static func eachRequesterStopsAtItsTier() {
        let t = PhysicalMemory.thresholds
        let taken = PageBitmap(pages: PhysicalMemory.pageCount)
        let before = FreeCountBefore()
        _ = drain(.ordinary, into: taken)
        Test.expectEqual(PhysicalMemory.freePages, t.freeReserved, "ordinary allocations stop at free_reserved")
        _ = drain(.system, into: taken)
        Test.expectEqual(PhysicalMemory.freePages, t.freeMin, "system allocations stop at free_min")
        Test.expect(PhysicalMemory.allocate(order: 0, .ordinaryNoWait) == nil, "ordinary refused below free_reserved")
        let deepest = PhysicalMemory.statistics[.pageout].deepestReserveUse
        _ = ReserveDraws.deliberately { drain(.pageout, into: taken) }
        Test.expectEqual(PhysicalMemory.freePages, UInt64(0), "pageout allocations may take everything")
        Test.expectEqual(PhysicalMemory.statistics[.pageout].deepestReserveUse, deepest, "deliberate draws below free_min are not recorded")
        taken.forEach { PhysicalMemory.free($0) }
        let descriptorPages = before.expectAllBack()
        taken.release()
        Test.diagnostic("free_min \(t.freeMin), free_reserved \(t.freeReserved); the descriptor pool grew by \(descriptorPages) pages")
    }

    static func faultInjectionFailsExactlyTheConfiguredRequests() {
        let saved = PhysicalMemory.faultInjector
        defer { PhysicalMemory.faultInjector = saved }
        var held: [PageIndex] = []
        held.reserveCapacity(128)
        PhysicalMemory.faultInjector = FaultInjector(pattern: .everyNth(5), onlyRequester: .system, seed: KernelOptions.seed)
        var systemFailures = 0
        var ordinaryFailures = 0
        for _ in 0..<50 {
            if let page = PhysicalMemory.allocate(order: 0, .system) { held.append(page) } else { systemFailures += 1 }
            if let page = PhysicalMemory.allocate(order: 0, .ordinaryNoWait) { held.append(page) } else { ordinaryFailures += 1 }
        }
        Test.expectEqual(systemFailures, 10, "system requests failed (every 5th)")
        Test.expectEqual(ordinaryFailures, 0, "ordinary requests failed (not injected)")
        Test.expectEqual(PhysicalMemory.faultInjector.injected, UInt64(10), "injected failures counted")
        for page in held { PhysicalMemory.free(page) }
    }

    static func blockingRequestIsNotHungByInjectionOfEveryRequest() {
        let saved = PhysicalMemory.faultInjector
        defer { PhysicalMemory.faultInjector = saved }
        PhysicalMemory.faultInjector = FaultInjector(pattern: .everyNth(1), onlyRequester: .ordinary, seed: KernelOptions.seed)
        let page = PhysicalMemory.allocate(order: 0, .ordinary)
        Test.expect(page != nil, "a blocking request gets through after the bounded number of injected retries")
        Test.expectEqual(PhysicalMemory.faultInjector.injected, UInt64(PhysicalMemory.maximumInjectedRetries), "injected failures")
        if let page = page { PhysicalMemory.free(page) }
    }

    static func blockingRequestRetriesThroughInjectedFailures() {
        let saved = PhysicalMemory.faultInjector
        defer { PhysicalMemory.faultInjector = saved }
        var held: [PageIndex] = []
        held.reserveCapacity(16)
        PhysicalMemory.faultInjector = FaultInjector(pattern: .everyNth(2), onlyRequester: nil, seed: KernelOptions.seed)
        for _ in 0..<10 { held.append(PhysicalMemory.allocate(order: 0, .ordinary)!) }
        Test.expectEqual(held.count, 10, "every blocking request was met")
        // Requests 2, 4, 6, ... fail: the first allocation takes one request, each later one two.
        Test.expectEqual(PhysicalMemory.faultInjector.injected, UInt64(9), "injected failures retried")
        for page in held { PhysicalMemory.free(page) }
    }

    static func buddyDescriptorPagesDescribeThemselvesAndTheReserveIsKept() {
        // Enough single pages that the pool must grow - each holds a descriptor while it is
        // allocated, and at most the free blocks there are now bring their own: more than
        // free descriptors + free blocks - or as many as an ordinary request may take.
        let buddy = PhysicalMemory.buddy!
        // The pages are held in a PageHold, not an array: that would be a kmalloc of up to a
        // megabyte, one contiguous block, which after the earlier cases (whose descriptor
        // pages now sit all over memory) a 1-4 GiB machine may not have.
        let count = buddy.pointee.descriptors.freeCount + buddy.pointee.freeBlockTotal + 1
        var held = PageHold()
        let pagesBefore = buddy.pointee.descriptors.dynamicPages
        while held.pages < count, let page = PhysicalMemory.allocate(order: 0, .ordinaryNoWait) { held.keep(page) }
        let taken = held.pages
        let pool = buddy.pointee.descriptors
        Test.expect(pool.dynamicPages > pagesBefore || taken < count,
                    "the pool grew: \(pool.dynamicPages) pages, \(pagesBefore) before, \(taken) pages taken")
        Test.expect(pool.dynamicPages > 0, "the static page was used up (at boot, or here)")
        Test.expect(pool.freeCount >= pool.reserveTarget, "an ordinary request left the reserve whole: \(pool.freeCount) free, reserve \(pool.reserveTarget)")
        Test.expectEqual(pool.reserveTarget, ReserveBounds.buddyDescriptorReserve, "the reserve is the derived one")
        // Every page of descriptors is tagged .slab and its descriptor lives inside it.
        var descriptorPages = 0
        for index in 0..<PhysicalMemory.pageCount {
            let page = PageIndex(index)
            guard PhysicalMemory.use(of: page) == .slab, let own = buddy.pointee.descriptor(of: page),
                  own.pointee.flags.contains(.descriptorPage) else { continue }
            descriptorPages += 1
            let memory = PhysicalMemory.pointer(to: page)
            let inside = UnsafeMutableRawPointer(own) > memory && UnsafeMutableRawPointer(own) < memory + Int(pageSize)
            Test.expect(inside && own.pointee.firstPage == page && own.pointee.order == 0,
                        "descriptor page \(hex: PhysicalMemory.physicalAddress(of: page).rawValue) describes itself")
        }
        Test.expectEqual(descriptorPages, pool.dynamicPages, "pages of descriptors found by their mem_desc")
        Test.expect(buddy.pointee.deepestChain >= 2 && buddy.pointee.deepestChain <= BuddyAllocator.chainBound,
                    "deepest chain \(buddy.pointee.deepestChain), bound \(BuddyAllocator.chainBound)")
        held.release()
        Test.expect(buddy.pointee.isConsistent(), "every page's mem_desc agrees with its block's descriptor")
    }

    /// Fragments all of memory: takes every free page, then gives back those at odd indices.
    /// A page's order-0 buddy is its even/odd neighbour, so no block of two or more pages is
    /// free afterwards, while half of memory is. Returns the pages still held (the even ones).
    static func fragmentAllOfMemory() -> PageHold {
        var held = PageHold()
        _ = ReserveDraws.deliberately { () -> Int in
            for requester in [Requester.ordinary, .system, .pageout] {
                held.takeAll(AllocationContext(requester, .noWait))
            }
            return 0
        }
        held.release(where: { $0.int % 2 == 1 })
        return held
    }

    static func unfragment(_ held: PageHold) {
        var held = held
        held.release()
        Test.expect(PhysicalMemory.buddy!.pointee.isConsistent(), "buddy invariants hold")
    }

    /// Waiting frees pages, not blocks: with half of memory free in single pages, a blocking
    /// request for two contiguous pages used to find "enough pages free" in vm_wait, return at
    /// once and retry for ever (test=all hung so in its stress suite). It now waits a bounded
    /// number of times for pageout to complete a block, then fails with a message.
    static func blockingMultiPageRequestInFragmentedMemoryFailsInsteadOfWaitingForever() {
        let held = fragmentAllOfMemory()
        let free = PhysicalMemory.freePages
        let before = PhysicalMemory.statistics[.ordinary].fragmentedFailures
        Test.expect(free > PhysicalMemory.thresholds.pagingTarget, "half of memory is free: \(free) pages")
        // The suite runs with preemption off (exclusive); this request must be able to sleep.
        Preemption.enable()
        let block = PhysicalMemory.allocate(order: 1, .ordinary)
        Preemption.disable()
        Test.expect(block == nil, "no block of two pages in fragmented memory")
        Test.expectEqual(PhysicalMemory.statistics[.ordinary].fragmentedFailures, before + 1, "the failure is counted as fragmentation")
        if let block { PhysicalMemory.free(block, order: 1) }
        Test.expect(PhysicalMemory.allocate(order: 0, .ordinary).map { page in PhysicalMemory.free(page); return true } ?? false,
                    "single pages are still had at once")
        unfragment(held)
    }

    /// kmalloc of several pages is virtually contiguous when no block is free (kvmalloc):
    /// the request is met from kmem, the memory is usable, and kfree gives it back.
    static func kmallocInFragmentedMemoryTakesScatteredPagesFromKmem() {
        let held = fragmentAllOfMemory()
        let fallbacks = Kmalloc.fragmentedFallbacks
        let kmemBytes = Kmalloc.kmemBytesInUse
        let bytes = 6 * Int(pageSize)
        let memory = Kmalloc.allocate(bytes)
        Test.expect(memory != nil, "kmalloc(\(bytes)) is met in fragmented memory")
        if let memory {
            Test.expect(!KernelLayout.isDirectMapped(VirtualAddress(memory)), "from kmem, not the direct map")
            Test.expectEqual(Kmalloc.fragmentedFallbacks, fallbacks + 1, "counted as a fallback")
            let words = memory.bindMemory(to: UInt64.self, capacity: bytes / 8)
            for index in 0..<(bytes / 8) { words[index] = UInt64(index) &* 0x9e37_79b9_7f4a_7c15 }
            var intact = true
            for index in 0..<(bytes / 8) where words[index] != UInt64(index) &* 0x9e37_79b9_7f4a_7c15 { intact = false }
            Test.expect(intact, "every word of the \(bytes) bytes holds what was written")
            Kmalloc.free(memory)
            Test.expectEqual(Kmalloc.kmemBytesInUse, kmemBytes, "kfree gave the kmem pages back")
        }
        unfragment(held)
    }

    /// Fragmenting all of memory describes every page with a descriptor of its own, and the
    /// pool grows by hundreds of pages spread through memory. Once the blocks merge again
    /// those pages describe free blocks at most, which can move; the pageout thread's reaping
    /// moves them and gives the pages back - all but what the pool keeps - and the free lists
    /// hold large blocks again.
    static func descriptorPagesGoBackWhenTheirBlocksMergeAgain() {
        let buddy = PhysicalMemory.buddy!
        let held = fragmentAllOfMemory()
        let peak = buddy.pointee.descriptors.dynamicPages
        Test.expect(peak > 0, "fragmenting memory grew the descriptor pool: \(peak) pages")
        unfragment(held)
        let movable = buddy.pointee.descriptors.movablePages
        Test.expect(movable > 0, "pages of descriptors describe no allocated block once the blocks merged: \(movable) of \(peak)")
        let givenBackBefore = buddy.pointee.descriptors.pagesGivenBack
        let freeBefore = PhysicalMemory.freePages
        let reaped = Pageout.reapZones()
        let pool = buddy.pointee.descriptors
        let givenBack = pool.pagesGivenBack - givenBackBefore
        Test.diagnostic("descriptor pages: \(peak) at the peak, \(movable) movable after the merge, \(givenBack) given back by the reap; \(pool.dynamicPages) left, \(pool.freeCount) descriptors free (reserve \(pool.reserveTarget))")
        Test.expect(givenBack > 0 && reaped >= UInt64(givenBack), "the reap gave back \(givenBack) descriptor pages and counted \(reaped) pages")
        Test.expect(PhysicalMemory.freePages >= freeBefore + UInt64(givenBack), "free pages rose by the pages given back")
        // All that could go went: every page left describes an allocated block, or the pool is
        // down to what it keeps (its reserve and a page's worth).
        let keep = pool.reserveTarget + BuddyDescriptorPool.descriptorsPerPage
        Test.expect(pool.movablePages == 0 || pool.freeCount < keep + BuddyDescriptorPool.descriptorsPerPage,
                    "\(pool.movablePages) movable pages left with \(pool.freeCount) descriptors free (keeps \(keep))")
        Test.expect(pool.freeCount >= pool.reserveTarget, "the reserve is whole: \(pool.freeCount) free, reserve \(pool.reserveTarget)")
        Test.expect(buddy.pointee.isConsistent(), "every page's mem_desc agrees with its block's descriptor")
        // The descriptor pages had split memory: with them gone, a large block is free again.
        let order = min(PageOrder.largest, 8)
        let block = PhysicalMemory.allocate(order: order, .ordinaryNoWait)
        Test.expect(block != nil, "a block of \(1 << order) pages is free after the reap")
        if let block { PhysicalMemory.free(block, order: order) }
    }

    static func descriptorsAreSmallAndCoverEveryUsablePage() {
        Test.expectEqual(MemoryLayout<MemDesc>.stride, 8, "a page's static descriptor is the 8-byte mem_desc word")
        Test.expect(MemoryLayout<PageablePage>.stride <= 48 && MemoryLayout<BuddyDescriptor>.stride <= 24,
                    "a pageable page's descriptor is at most 48 bytes, a buddy descriptor at most 24")
        var pages = 0
        for range in MemoryBootstrap.map!.usable {
            let first = PhysicalMemory.index(of: range.start)
            let last = PhysicalMemory.index(of: range.end - pageSize)
            Test.expect(first != nil && last != nil, "range \(hex: range.start) has descriptors")
            if let first = first, let last = last {
                Test.expectEqual(last.int - first.int + 1, Int(range.pageCount), "descriptors in range \(hex: range.start)")
                Test.expectEqual(PhysicalMemory.physicalAddress(of: last).rawValue, (range.end - pageSize).rawValue, "last page address")
            }
            pages += Int(range.pageCount)
        }
        Test.expectEqual(pages, PhysicalMemory.pageCount, "descriptors for all usable pages and no more")
        Test.expect(PhysicalMemory.index(of: PhysicalAddress(0)) == nil, "page 0 has no descriptor")
    }

    /// Early boot has no threads, so nothing to wait for: a blocking request that cannot be
    /// met must stop the kernel saying why. (After boot the same request waits; see ThreadTests.)
    @inline(never)
    static func blockingRequestWithNoWayToWaitPanics() {
        VMWait.isAvailable = false
        let taken = PageBitmap(pages: PhysicalMemory.pageCount)
        _ = drain(.ordinary, into: taken)
        _ = PhysicalMemory.allocate(order: 0, .ordinary)
        Test.fail("the blocking request returned")
    }

    @inline(never)
    static func freeingAPageItsOwnerStillTypesPanics() {
        let page = PhysicalMemory.allocate(order: 0, .ordinary)!
        PhysicalMemory.setUse(page, .wired)
        PhysicalMemory.free(page)       // kmem would give it back (clearUse) first
        Test.fail("the free of a page still typed wired returned")
    }

    /// Pageable pages get their descriptor when the fault brings them in and lose it when
    /// they leave their object: every .anonymous page's word points to a PageablePage that
    /// names the page, its object and index, and the page_desc zone's objects are exactly the
    /// pages resident.
    static func pageableDescriptorsComeAndGoWithTheirPages() {
        let pages = 64
        let bytes = UInt64(pages) * pageSize
        let before = PhysicalMemory.pageableDescriptors
        let zoneBefore = Zones.pageDescriptor.inUse
        guard let address = Kmem.allocatePageable(bytes) else { return Test.fail("kmem_alloc_pageable failed") }
        for number in 0..<pages {
            pointer(at: address + UInt64(number) * pageSize).storeBytes(of: UInt64(number) &+ KernelOptions.seed, as: UInt64.self)
        }
        Test.expectEqual(PhysicalMemory.pageableDescriptors - before, pages, "a descriptor for every page faulted in")
        Test.expectEqual(Zones.pageDescriptor.inUse - zoneBefore, pages, "each from the page_desc zone")
        var named = 0
        withInterruptsDisabled {
            for number in 0..<pages {
                guard let frame = Pmap.extract(address + UInt64(number) * pageSize), let page = PhysicalMemory.index(of: frame) else { continue }
                guard PhysicalMemory.use(of: page) == .anonymous else { continue }
                let descriptor = PhysicalMemory.pageable(page)
                let word = PhysicalMemory.memDescs![page.int]
                if descriptor.pointee.page == page && descriptor.pointee.offset == UInt32(number)
                    && word.descriptor == UnsafeMutableRawPointer(descriptor) && word.buddy == descriptor.pointee.buddy
                    && PhysicalMemory.mappings(of: page).count == 1 {
                    named += 1
                }
            }
        }
        Test.expectEqual(named, pages, "pages whose word points to a descriptor naming the page, its index and its one mapping")
        Test.expectEqual(PhysicalMemory.checkDescriptors(), 0, "the descriptor check finds nothing wrong")
        Kmem.freePageable(address, bytes)
        Test.expectEqual(PhysicalMemory.pageableDescriptors, before, "every descriptor given back with its page")
        Test.expectEqual(Zones.pageDescriptor.inUse, zoneBefore, "the page_desc zone holds no more than before")
        Test.expectEqual(PhysicalMemory.checkDescriptors(), 0, "and the check still passes")
    }

    /// The validator can fail: a PV count that disagrees with its list, and a pageable
    /// descriptor count that disagrees with the pages, each found, then put back.
    static func theDescriptorCheckCatchesABrokenDescriptor() {
        let page = PhysicalMemory.allocate(order: 0, .ordinary)!
        let address = KernelLayout.pmapTestWindowBase + 0x40_0000
        Test.expect(Pmap.enter(address, page: page, protection: .readWrite, .system), "a page mapped")
        Test.expectEqual(PhysicalMemory.checkDescriptors(), 0, "the check passes before the damage")
        let block = PhysicalMemory.memDescs![page.int].buddy!
        withInterruptsDisabled { block.pointee.ownerWords.second += 1 }
        Test.expect(PhysicalMemory.checkDescriptors() > 0, "a PV count one more than the list is caught")
        withInterruptsDisabled { block.pointee.ownerWords.second -= 1 }
        withInterruptsDisabled { PhysicalMemory.pageableDescriptors += 1 }
        Test.expect(PhysicalMemory.checkDescriptors() > 0, "a descriptor count that is not the pageable pages is caught")
        withInterruptsDisabled { PhysicalMemory.pageableDescriptors -= 1 }
        Test.expectEqual(PhysicalMemory.checkDescriptors(), 0, "and with both put back it passes")
        Pmap.removeAll(page)
        PhysicalMemory.free(page)
    }

    static func thePageoutPathNeverTakesAPageableDescriptor() {
        let page = PhysicalMemory.allocate(order: 0, .ordinary)!
        _ = PhysicalMemory.allocatePageableDescriptor(for: page, .pageout)
        Test.fail("the pageout path was given a pageable page's descriptor")
    }

    static func untypingAPageThatIsStillMappedPanics() {
        let page = PhysicalMemory.allocate(order: 0, .ordinary)!
        PhysicalMemory.setUse(page, .wired)
        Test.expect(Pmap.enter(KernelLayout.pmapTestWindowBase + 0x41_0000, page: page, protection: .readWrite, .system), "a wired page mapped")
        PhysicalMemory.clearUse(page, .wired)       // kmem would unmap it first
        Test.fail("a mapped page was given back untyped")
    }

    static func mappingAPageWhoseOwnerWordsMeanSomethingElsePanics() {
        // A page table's owner words are its entry count: a PV list there would corrupt it.
        let page = PhysicalMemory.allocate(order: 0, .ordinary)!
        PhysicalMemory.setUse(page, .pageTable)
        _ = Pmap.enter(KernelLayout.pmapTestWindowBase + 0x42_0000, page: page, protection: .readWrite, .system)
        Test.fail("a page table was mapped through a PV list")
    }

    static func commandLineFaultInjectionFailsEveryThirdOrdinaryRequest() {
        Test.expect(PhysicalMemory.faultInjector.pattern == .everyNth(3), "pagefail=every:3:ordinary was applied")
        var held: [PageIndex] = []
        held.reserveCapacity(64)   // no kmalloc growth (which takes pages) inside the measured loop
        let before = PhysicalMemory.faultInjector.injected
        var failures = 0
        for _ in 0..<30 {
            if let page = PhysicalMemory.allocate(order: 0, .ordinaryNoWait) { held.append(page) } else { failures += 1 }
        }
        let system = PhysicalMemory.allocate(order: 0, .system)
        Test.expect(system != nil, "system requests are not injected")
        if let system = system { held.append(system) }
        Test.expectEqual(PhysicalMemory.faultInjector.injected - before, UInt64(failures), "every failure was an injected one")
        Test.expect(failures == 10, "10 of 30 ordinary requests failed, got \(failures)")
        for page in held { PhysicalMemory.free(page) }
        PhysicalMemory.logStatistics()
    }
}
