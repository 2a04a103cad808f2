// ReapTests.swift - the pageout thread reaping the zones: empty slabs come back as free pages
// when memory is short, and each zone keeps its reserve.
//
// Two cases, in two suites:
//   zones  (preemption off) a test zone with 4-page slabs is emptied, memory is drained below
//          paging_target and the pageout thread's reap entry point is called: exactly the
//          empty slabs beyond the reserve and keepEmpty come back, every page of each with its
//          descriptor reset (a stale .slab tail would send a later kfree to a dead slab), and
//          the reserve still serves with no page to be had;
//   stress (after the workloads) memory is drained and the pageout thread itself must reap
//          within its interval; afterwards a reclaim of every zone finds nothing left to give
//          back - the ~210 pages of pv_entry, map_entry and kmalloc slabs a stress run leaves
//          empty are free pages again.

enum ReapTests {
    typealias PageBitmap = PhysicalMemoryTests.PageBitmap

    static func reapUnderPressureGivesBackEmptySlabsAndKeepsTheReserve() {
        let reserve = 40
        let keepEmpty = 1
        let zone = Zones.create("test-reap", objectSize: 512, slabPages: 4, reserve: reserve, keepEmpty: keepEmpty)
        let perSlab = zone.state.pointee.objectsPerSlab
        let pagesPerSlab = zone.state.pointee.slabBytes / Int(pageSize)
        let objects = perSlab * 24
        var held: [UnsafeMutableRawPointer] = []
        held.reserveCapacity(objects)
        // Made before memory is drained: the bitmaps come from kmalloc.
        let slabHeads = PageBitmap(pages: PhysicalMemory.pageCount)
        let taken = PageBitmap(pages: PhysicalMemory.pageCount)
        for _ in 0..<objects { held.append(zone.allocate(.ordinary)!) }
        for object in held {
            let header = UnsafeMutableRawPointer(zone.slabOf(object))
            _ = slabHeads.insert(PhysicalMemory.index(of: PhysicalWindow.physicalAddress(of: header))!)
        }
        for object in held { zone.free(object) }
        held.removeAll(keepingCapacity: true)
        let slabs = zone.state.pointee.slabCount
        // What a reclaim keeps: enough whole empty slabs for the reserve, and keepEmpty at least.
        let kept = max(keepEmpty, (reserve + perSlab - 1) / perSlab)

        _ = PhysicalMemoryTests.drain(.ordinary, into: taken)
        Test.expect(Pageout.isNeeded, "memory is short: \(PhysicalMemory.freePages) free pages, paging_target \(PhysicalMemory.thresholds.pagingTarget)")
        let freeBefore = PhysicalMemory.freePages
        let releasedBefore = zone.statistics.slabsReleased
        let reapedBefore = Pageout.statistics.reapedPages
        let reaped = Pageout.reapZones()
        let released = Int(zone.statistics.slabsReleased - releasedBefore)

        Test.expectEqual(released, slabs - kept, "empty slabs of \(slabs) given back (reserve \(reserve), \(perSlab) objects a slab, keepEmpty \(keepEmpty))")
        Test.expectEqual(zone.state.pointee.slabCount, kept, "slabs the zone kept")
        Test.expect(PhysicalMemory.freePages >= freeBefore + UInt64(released * pagesPerSlab),
                    "free pages rose from \(freeBefore) by at least the released slabs' \(released * pagesPerSlab) pages (now \(PhysicalMemory.freePages))")
        Test.expectEqual(Pageout.statistics.reapedPages - reapedBefore, reaped, "reaped pages counted by pageout")
        Test.expect(reaped >= UInt64(released * pagesPerSlab), "pageout counted \(reaped) pages, at least the test zone's")

        // Every page of a released slab went back untyped; every page of a kept one is still
        // the slab's. A slab half typed is the multi-page descriptor bug.
        var releasedSlabs = 0
        slabHeads.forEach { head in
            let memory = PhysicalMemory.pointer(to: head)
            var slabPages = 0, clearPages = 0
            for number in 0..<pagesPerSlab {
                let index = PageIndex(head.int + number)
                let header = PhysicalMemory.slabHeader(of: index)
                if header == memory { slabPages += 1 }
                if PhysicalMemory.use(of: index) != .slab && header == nil { clearPages += 1 }
            }
            if clearPages == pagesPerSlab { releasedSlabs += 1 }
            Test.expect(slabPages == pagesPerSlab || clearPages == pagesPerSlab,
                        "slab at \(hex: PhysicalMemory.physicalAddress(of: head).rawValue): \(slabPages) pages still the slab's, \(clearPages) given back")
        }
        Test.expectEqual(releasedSlabs, released, "slabs whose every page was given back")

        // The reserve is intact: with no page to be had at all, a reserve-using caller still
        // gets reserveTarget objects.
        Test.expect(zone.freeObjects >= reserve, "\(zone.freeObjects) free objects, reserve \(reserve)")
        let saved = PhysicalMemory.faultInjector
        PhysicalMemory.faultInjector = FaultInjector(pattern: .everyNth(1), onlyRequester: nil, seed: KernelOptions.seed)
        while held.count < objects, let object = zone.allocate(.system) { held.append(object) }
        PhysicalMemory.faultInjector = saved
        Test.expect(held.count >= reserve, "a system caller got \(held.count) objects with no page to be had, reserve \(reserve)")
        for object in held { zone.free(object) }
        AllocationContextTests.releaseAll(taken)
        slabHeads.release()
        Zones.destroy(zone)
        Test.diagnostic("\(released) slabs of \(pagesPerSlab) pages released, \(kept) kept; all zones gave back \(reaped) pages")
    }

    /// Run after the stress workloads, whose pv_entry, map_entry and kmalloc slabs are now
    /// empty. Not exclusive: the pageout thread must do the reaping itself.
    static func pageoutGivesBackTheSlabsTheWorkloadsLeftEmpty() {
        let taken = PageBitmap(pages: PhysicalMemory.pageCount)
        let reapsBefore = Pageout.statistics.reaps
        let reapedBefore = Pageout.statistics.reapedPages
        // Draining wakes the pageout thread (an allocation below paging_start does); it reaps
        // at once if its interval has passed, else when it has.
        _ = PhysicalMemoryTests.drain(.ordinary, into: taken)
        let deadline = Timer.ticks + Pageout.reapInterval + 2 * Timer.hertz
        while Pageout.statistics.reaps == reapsBefore && Timer.ticks < deadline { Scheduler.sleep(ticks: 1) }
        let reaps = Pageout.statistics.reaps - reapsBefore
        let reaped = Pageout.statistics.reapedPages - reapedBefore
        Test.expect(reaps > 0, "the pageout thread reaped the zones while memory was short")

        // What it left: a reclaim of every zone now gives back only what emptied since.
        Preemption.disable()
        var left = 0
        Zones.forEach { zone in
            let slabs = zone.reclaim()
            if slabs > 0 {
                Test.diagnostic("zone \(zone.name): \(slabs) empty slabs beyond its reserve and keepEmpty were left")
                left += slabs * zone.state.pointee.slabBytes / Int(pageSize)
            }
        }
        Preemption.enable()
        AllocationContextTests.releaseAll(taken)
        Test.expectEqual(left, 0, "pages of empty slabs left in the zones once the pageout thread had reaped")
        if Zones.reservesEnabled {
            for zone in [Zones.pvEntry, Zones.mapEntry, Zones.swapBlock] {
                Test.expect(zone.freeObjects >= zone.state.pointee.reserveTarget,
                            "zone \(zone.name): \(zone.freeObjects) free objects, reserve \(zone.state.pointee.reserveTarget)")
            }
        }
        Test.diagnostic("pageout reaped \(reaped) pages in \(reaps) reaps after the workloads; \(Pageout.statistics.reapedPages) pages in \(Pageout.statistics.reaps) reaps in all")
    }
}
