// AllocationContextTests.swift - one allocation context, carried from the top of each path to
// the page allocator: a system request never takes a page below free_min however deep its
// chain goes, and an ordinary fault waits as an ordinary caller.
//
// Each case sets the free-page count to the boundary it is about and watches the one
// allocation that would cross it. Pages are drained and given back by the case itself.

enum AllocationContextTests {
    static var suite: TestSuite {
        // Not exclusive: the fault case needs a second thread to sleep; the other cases hold
        // preemption off themselves while they drain memory.
        TestSuite("context", exclusive: false, [
            TestCase("pageTablesForASystemMappingStopAtFreeMin", pageTablesForASystemMappingStopAtFreeMin),
            TestCase("swapBlockRefillAtFreeMinFailsInsteadOfDippingBelow", swapBlockRefillAtFreeMinFailsInsteadOfDippingBelow),
            TestCase("ordinaryFaultWaitsAsAnOrdinaryCaller", ordinaryFaultWaitsAsAnOrdinaryCaller),
            TestCase("anOrdinaryReservationLeavesTheStockToPrivilegedCallers", anOrdinaryReservationLeavesTheStockToPrivilegedCallers),
        ])
    }

    typealias PageBitmap = PhysicalMemoryTests.PageBitmap

    /// Gives back `count` pages of `taken` (any), so that exactly that many more are free.
    static func giveBack(_ count: Int, of taken: PageBitmap) {
        var left = count
        taken.forEach { page in
            guard left > 0 else { return }
            taken.remove(page)
            PhysicalMemory.free(page)
            left -= 1
        }
    }

    static func releaseAll(_ taken: PageBitmap) {
        taken.forEach { PhysicalMemory.free($0) }
        taken.release()
    }

    /// A fresh address in the pmap tests' window needs new page tables; at free_min a system
    /// request may not have them, the pageout path may.
    static func pageTablesForASystemMappingStopAtFreeMin() {
        let page = PhysicalMemory.allocate(order: 0, .ordinary)!
        let address = KernelLayout.pmapTestWindowBase + 0x2340_0000
        let taken = PageBitmap(pages: PhysicalMemory.pageCount)
        Preemption.disable()
        _ = PhysicalMemoryTests.drain(.system, into: taken)
        let free = PhysicalMemory.freePages
        let pageoutAllocations = PhysicalMemory.statistics[.pageout].allocations
        let entered = Pmap.enter(address, page: page, protection: .readWrite, .system)
        let freeAfterSystem = PhysicalMemory.freePages
        let enteredByPageout = Pmap.enter(address, page: page, protection: .readWrite, .pageout)
        Pmap.remove(address, pages: 1)
        Preemption.enable()
        Test.expectEqual(free, PhysicalMemory.thresholds.freeMin, "system requests drained memory down to free_min")
        Test.expect(!entered, "a system mapping needing page tables at free_min is refused")
        Test.expectEqual(freeAfterSystem, free, "the refused mapping kept no page")
        Test.expect(enteredByPageout, "the pageout path may take the pages below free_min for its tables")
        Test.expect(PhysicalMemory.statistics[.pageout].allocations > pageoutAllocations, "and its tables came from the pageout tier")
        releaseAll(taken)
        PhysicalMemory.free(page)
    }

    /// The swblock zone refills through kmem: a slab's pages, its map entry, its PV entries and
    /// perhaps page tables, all under the refill's system context. With one page above
    /// free_min, the refill gets the slab's first page, then needs a page table: it must fail
    /// there - not take the table from the pages below free_min, which are the pageout path's.
    static func swapBlockRefillAtFreeMinFailsInsteadOfDippingBelow() {
        let zone = Zones.swapBlock
        let slabBytes = UInt64(zone.state.pointee.slabBytes)
        let kmem = KernelMaps.kmem
        Preemption.disable()
        // Steer kmem's next slab-sized slot into a 2 MiB region that has no page table yet,
        // by reserving (address space only) the slots before it.
        var reserved: [VirtualAddress] = []
        var slot: VirtualAddress? = nil
        for _ in 0..<20_000 {
            kmem.pointee.lock.lock()
            slot = kmem.pointee.map.findSpace(size: slabBytes, alignment: slabBytes)
            kmem.pointee.lock.unlock()
            guard let candidate = slot, Pmap.leafEntry(candidate) != nil else { break }
            guard let range = Kmem.reserveRange(kmem, pageSize, .ordinary) else { break }
            reserved.append(range)
        }
        Test.expect(slot != nil && Pmap.leafEntry(slot!) == nil, "found a kmem slot whose page table does not exist (\(reserved.count) pages reserved to get there)")

        // Room for every swblock taken below, before memory is drained.
        var held: [UnsafeMutableRawPointer] = []
        held.reserveCapacity(zone.freeObjects + 1)
        let taken = PageBitmap(pages: PhysicalMemory.pageCount)
        _ = PhysicalMemoryTests.drain(.system, into: taken)
        giveBack(1, of: taken)
        let t = PhysicalMemory.thresholds
        let free = PhysicalMemory.freePages
        let failedRefills = zone.statistics.failedRefills
        let pageoutAllocations = PhysicalMemory.statistics[.pageout].allocations
        let shortages = Pmap.statistics.enterShortages
        let slabs = zone.statistics.dynamicSlabs
        PhysicalMemory.lowestFreePages = free
        // Take swblocks until the zone drops below its reserve: the allocation that does so
        // starts the refill. As a system caller, which draws the reserve at once: the pageout
        // requester would first grow the zone from the pages below free_min
        // (ReserveOrder.growFirstForPageout), and no refill would be needed.
        while zone.freeObjects >= zone.state.pointee.reserveTarget, let object = zone.allocate(.system) {
            held.append(object)
        }
        let lowest = PhysicalMemory.lowestFreePages
        let freeAfter = PhysicalMemory.freePages
        for object in held { zone.free(object) }
        releaseAll(taken)
        for range in reserved { Kmem.free(range, pageSize, in: kmem) }
        Preemption.enable()

        Test.expectEqual(free, t.freeMin + 1, "free pages before the refill")
        Test.expect(zone.statistics.failedRefills > failedRefills, "the refill failed")
        Test.expectEqual(zone.statistics.dynamicSlabs, slabs, "no slab was added")
        Test.expect(Pmap.statistics.enterShortages > shortages, "it failed at the page table of its first page, as planned")
        Test.expectEqual(PhysicalMemory.statistics[.pageout].allocations, pageoutAllocations, "pages taken from the pageout tier by the refill")
        Test.expect(lowest >= t.freeMin, "free pages never went below free_min (lowest \(lowest), free_min \(t.freeMin))")
        Test.expectEqual(freeAfter, free, "the failed refill gave back everything it took")
    }

    /// A page of pageable memory that is resident but unmapped, with its page table gone, is
    /// touched while free pages are below free_min: mapping it again needs a page table the
    /// faulting thread's tier cannot have. It must sleep in vm_wait as the ordinary caller it
    /// is - until free pages are above free_reserved - rather than return from the wait at once
    /// (a pageout-tier wait is satisfied by any free page) and spin.
    static func ordinaryFaultWaitsAsAnOrdinaryCaller() {
        let shared = ThreadTests.makeShared()
        let channel = UnsafeRawPointer(shared)
        // Four MiB of pageable memory: a 2 MiB-aligned page inside it has a page table of its own.
        let range = Kmem.allocatePageable(4 << 20)!
        let address = range.roundedUp(to: largePageSize)
        pointer(at: address).storeBytes(of: 0x5EED_F00D, as: UInt64.self)     // zero-fill fault: resident
        Pmap.remove(address, pages: 1)                                          // unmapped; table freed
        Test.expect(Pmap.leafEntry(address) == nil, "the page's page table is gone")
        let remaps = PageFault.remaps
        let pagesRead = SwapDevice.pagesRead
        // The toucher is made first: once memory is drained, even a thread's stack is out of reach.
        let toucher = Threads.spawn("toucher") {
            withInterruptsDisabled { while !shared.pointee.stop { Scheduler.sleep(on: channel, reason: "test") } }
            shared.pointee.spins = pointer(at: address).load(as: UInt64.self)
            shared.pointee.flag = true
        }
        let taken = PageBitmap(pages: PhysicalMemory.pageCount)
        Preemption.disable()
        // Setup, not a path's need: deliberate draws (kernel/Mem/Portable/ReserveDraw.swift).
        _ = ReserveDraws.deliberately { PhysicalMemoryTests.drain(.pageout, into: taken) }
        giveBack(Int(PhysicalMemory.thresholds.freeMin / 2), of: taken)      // below free_min, above zero
        Preemption.enable()
        withInterruptsDisabled {
            shared.pointee.stop = true
            Scheduler.wakeup(channel)
        }
        Scheduler.sleep(ticks: 5)
        let state = toucher.pointee.state
        let waitsFor = toucher.pointee.wait.requester
        Test.expect(state == .sleeping && ThreadTests.sameText(toucher.pointee.wait.reason, "vm_wait"),
                    "the faulting thread sleeps in vm_wait (state \(state.name), reason '\(toucher.pointee.wait.reason)')")
        Test.expect(waitsFor == .ordinary, "it waits as an ordinary requester (\(waitsFor?.name ?? "none"))")
        Test.expect(!shared.pointee.flag, "it has not got its page yet")
        releaseAll(taken)
        Threads.join(toucher)
        Test.expect(shared.pointee.flag, "once memory came back the fault completed")
        Test.expectEqual(shared.pointee.spins, UInt64(0x5EED_F00D), "the page kept its contents")
        // Without swap the page stays resident and the fault maps it again. With a swap disk
        // (test=all on a machine with one) the pageout thread may have written it out while
        // memory was short, and the fault read it back instead.
        if SwapDevice.isPresent {
            Test.expect(PageFault.remaps > remaps || SwapDevice.pagesRead > pagesRead, "the fault mapped the page again or read it back")
        } else {
            Test.expect(PageFault.remaps > remaps, "the fault mapped the resident page again")
        }
        Kmem.freePageable(range, 4 << 20)
        shared.deallocate()
    }

    /// The pager map's stock, topped up by pageout steps from the map_entry reserve, is not
    /// for ordinary callers: with the zone at its reserve line an ordinary reservation fails
    /// (or would wait) instead of taking a stocked entry that the next pageout step would
    /// have to replace from the reserve (VMMaps.reserve; docs/reserves.md, section 3).
    static func anOrdinaryReservationLeavesTheStockToPrivilegedCallers() {
        let map = KernelMaps.pager
        let zone = Zones.mapEntry
        Preemption.disable()
        // The stock full, as a pageout step leaves it.
        if var spares = VMMaps.reserve(map, 1, .pageout) { VMMaps.release(map, &spares) }
        let stocked = map.pointee.stock.count
        // No page for the zone to grow from, and the zone taken down to its reserve line by
        // ordinary allocations, linked through their first words.
        let taken = PageBitmap(pages: PhysicalMemory.pageCount)
        _ = PhysicalMemoryTests.drain(.ordinary, into: taken)
        var held: UnsafeMutableRawPointer? = nil
        while let object = zone.allocate(.ordinaryNoWait) {
            object.storeBytes(of: held, as: UnsafeMutableRawPointer?.self)
            held = object
        }
        let lineReached = zone.freeObjects == zone.state.pointee.reserveTarget
        let ordinary = VMMaps.reserve(map, 1, .ordinaryNoWait)
        let stockAfterOrdinary = map.pointee.stock.count
        if var spares = ordinary { VMMaps.release(map, &spares) }
        let privileged = VMMaps.reserve(map, 1, .pageout, topUpStock: false)
        let stockAfterPrivileged = map.pointee.stock.count
        let freeAfterPrivileged = zone.freeObjects
        if var spares = privileged { VMMaps.release(map, &spares) }
        while let object = held {
            held = object.load(as: UnsafeMutableRawPointer?.self)
            zone.free(object)
        }
        releaseAll(taken)
        Preemption.enable()
        Test.expect(stocked == map.pointee.stockTarget && stocked > 0, "the pager map's stock was full (\(stocked) of \(map.pointee.stockTarget))")
        Test.expect(lineReached, "ordinary allocations took the map_entry zone down to its reserve line")
        Test.expect(ordinary == nil, "an ordinary reservation took a stocked entry with the zone at its reserve line")
        Test.expectEqual(stockAfterOrdinary, stocked, "the stock after the ordinary reservation")
        Test.expect(privileged != nil, "the pageout step's reservation was refused")
        Test.expectEqual(stockAfterPrivileged, stocked - 1, "the pageout step's entry came from the stock")
        Test.expectEqual(freeAfterPrivileged, zone.state.pointee.reserveTarget, "and it left the zone's reserve untouched")
    }
}
