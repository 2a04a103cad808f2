// MemoryDescriptorTests.swift - the pmm suite's cases about memory descriptors: the buddy
// descriptors (their pages describe themselves, their reserve is kept, they go back when blocks
// merge, they are small and cover every usable page) and the pageable pages' descriptors (they
// come and go with their pages, the checker catches a broken one, the pageout path never takes
// one, and the owner words guard untyping and mapping). docs/memory-descriptors.md. The suite
// itself is declared in PhysicalMemoryTests.swift.

extension PhysicalMemoryTests {
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
}
