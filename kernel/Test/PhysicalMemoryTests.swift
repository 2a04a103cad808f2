// PhysicalMemoryTests.swift - the page allocator: every page once, alignment, classes, faults.
//
// The suite runs at 16 MiB, 128 MiB, 1 GiB and 4 GiB (memory above 4 GiB, a PCI hole below);
// the host runner checks the logged usable memory against the loader's map independently.
// Its cases about memory descriptors are in MemoryDescriptorTests.swift.

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
