// ReserveBoundTests.swift - the tight reserve bounds, shown tight.
//
// One pageout step that does not have to grow a zone takes exactly one swblock, one map
// entry (the pager window) and one PV entry (the window's mapping) from the reserves, and no
// page (the pager's page tables are pinned at boot). Each case prepares a dirty page the way
// the pageout thread takes one, drains every free page so that no zone can grow, leaves each
// zone exactly N free objects, and runs the page-out: at the bound it must write the page;
// with one zone one below, it must fail with that zone's shortage - the failure the reserve
// protects against (with nothing else able to free memory, that is the deadlock).

enum ReserveBoundTests {
    static var suite: TestSuite {
        TestSuite("reservebound", diskMiB: 8, [
            TestCase("pageOutSucceedsWithEveryReserveAtItsBound", { expect(swapBlocks: 1, mapEntries: 1, pvEntries: 1, result: .written) }),
            TestCase("pageOutFailsWithTheSwblockReserveOneBelow", { expect(swapBlocks: 0, mapEntries: 1, pvEntries: 1, result: .noMetadata) }),
            TestCase("pageOutFailsWithTheMapEntryReserveOneBelow", { expect(swapBlocks: 1, mapEntries: 0, pvEntries: 1, result: .noWindow) }),
            TestCase("pageOutFailsWithThePVEntryReserveOneBelow", { expect(swapBlocks: 1, mapEntries: 1, pvEntries: 0, result: .noWindow) }),
        ])
    }

    static func expect(swapBlocks: Int, mapEntries: Int, pvEntries: Int, result expected: PageOutResult) {
        // A dirty page of a fresh object, taken off its queue and marked busy as the pageout
        // thread does before it writes a page.
        guard let address = Kmem.allocatePageable(pageSize) else { return Test.fail("kmem_alloc_pageable failed") }
        pointer(at: address).storeBytes(of: 0x5EED_0000 | KernelOptions.seed, as: UInt64.self)
        let page = PhysicalMemory.index(of: Pmap.extract(address)!)!
        let descriptor = PhysicalMemory.page(page)
        let object = descriptor.pointee.object!.assumingMemoryBound(to: MemoryObject.self)
        withInterruptsDisabled {
            PageQueues.claim(page)
            Pmap.removeAll(page)
        }
        // The pager map's spare entries would hide the map_entry reserve: none for now.
        let pager = KernelMaps.pager
        let stockTarget = pager.pointee.stockTarget
        pager.pointee.stockTarget = 0
        VMMaps.flushStock(pager)

        // Enough free objects in each zone first (growing while pages exist), then no pages.
        var heldObjects: [(KernelZone, UnsafeMutableRawPointer)] = []
        heldObjects.reserveCapacity(1024)
        var heldPages: [PageIndex] = []
        heldPages.reserveCapacity(Int(PhysicalMemory.managedPages))
        let zones: [(KernelZone, Int)] = [(Zones.swapBlock, swapBlocks), (Zones.mapEntry, mapEntries), (Zones.pvEntry, pvEntries)]
        for (zone, wanted) in zones where zone.freeObjects < wanted {
            let object = zone.allocate(.ordinary)!
            zone.free(object)
        }
        while let taken = PhysicalMemory.allocate(order: 0, .pageout) { heldPages.append(taken) }
        // Emptying the reserves down to `wanted` is this test's setup, not a path's need: the
        // deepest-draw statistics (checked against the bounds by qemu/harness/zonecheck.py)
        // are put back afterwards.
        let deepestBefore = zones.map { $0.0.statistics.deepestReserveUse }
        for (zone, wanted) in zones {
            while zone.freeObjects > wanted, let object = zone.allocate(.system) { heldObjects.append((zone, object)) }
            Test.expectEqual(zone.freeObjects, wanted, "free objects left in \(zone.name)")
        }

        let result = SwapPager.pageOut(page, object, 0)
        Test.expect(result == expected, "the page-out ended '\(result.name)', expected '\(expected.name)'")

        // Put everything back.
        for (zone, object) in heldObjects { zone.free(object) }
        for (index, (zone, _)) in zones.enumerated() { zone.state.pointee.statistics.deepestReserveUse = deepestBefore[index] }
        for taken in heldPages { PhysicalMemory.free(taken) }
        pager.pointee.stockTarget = stockTarget
        PageQueues.release(page, to: .active)
        Kmem.freePageable(address, pageSize)
        Zones.refillAll()
    }
}
