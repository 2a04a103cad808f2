// WritesInFlightTests.swift - page-out writes left in flight and ended by the disk's interrupt
// (kernel/VM/PageoutRequests.swift; docs/io.md, "Asynchronous page-out").
//
// The suite boots at 64 MiB on virtio-blk (and on q35 with AHCI among the device boots), where
// nothing pages out on its own, with `diskfault=write:6`: the sixth write that reaches the disk since boot fails at its completion,
// on the interrupt path. The cases clean an object's pages as the pageout thread does, leaving
// the writes in flight (`Pageout.evict(_:clustering:writing: .inFlight)`):
//   - four 16-page clusters go to the disk at once; until each write has ended its pages stay
//     resident, busy and owned by the device - even after the device is done, while the test
//     holds the completions - and each ending frees exactly its own 16 pages;
//   - a thread that touches a page in flight waits for the write and then finds the page on
//     swap with its contents, and its own store survives;
//   - a write that fails in flight leaves every page resident, dirty, unbusied and without a
//     swap block, and a later pass writes them;
//   - twice the memory free above paging_start (a balloon takes the rest), dirtied by a
//     thread, goes through the pageout thread with several writes in flight, and comes back
//     byte for byte.

enum WritesInFlightTests {
    static var suite: TestSuite {
        TestSuite("writesinflight", memory: "64M", arguments: "diskfault=write:6", diskMiB: 256, exclusive: false, [
            TestCase("fourClustersStayInFlightWithTheirPagesBusyUntilEachWriteEnds", fourClustersStayInFlightWithTheirPagesBusyUntilEachWriteEnds),
            TestCase("aFaultOnAPageInFlightWaitsForTheWriteAndKeepsItsStore", aFaultOnAPageInFlightWaitsForTheWriteAndKeepsItsStore),
            TestCase("aWriteThatFailsInFlightKeepsEveryPageDirtyAndALaterPassWritesThem", aWriteThatFailsInFlightKeepsEveryPageDirtyAndALaterPassWritesThem),
            TestCase("thePageoutThreadKeepsSeveralWritesInFlightUnderPressure", thePageoutThreadKeepsSeveralWritesInFlightUnderPressure),
        ])
    }

    /// Every write in flight fails while the next step waits for a slot
    /// (`diskfault=write:1-4`: the first four writes since boot).
    static var faultSuite: TestSuite {
        TestSuite("writesinflight-faults", memory: "64M", arguments: "diskfault=write:1-4", diskMiB: 64, exclusive: false, [
            TestCase("writesFailingWhileAStepWaitsForASlotAreSettledAndTheStepGoesOn", writesFailingWhileAStepWaitsForASlotAreSettledAndTheStepGoesOn),
        ])
    }

    static let clusterPages = Disk.maximumTransferPages

    /// Whether the boot gives the pageout thread every write slot the reserve bounds count.
    static func slotsAreThere() -> Bool {
        Test.expectEqual(PageoutRequests.slots, ReserveBounds.pageoutWritesInFlight, "write slots in flight (virtio-blk or AHCI, pageoutinflight= default)")
        return PageoutRequests.slots == ReserveBounds.pageoutWritesInFlight
    }

    /// Pages of `object` [first, first + count) that are resident, busy, owned by no thread and
    /// on no queue: pages in flight.
    static func pagesInFlight(_ object: ObjectRef, first: Int, count: Int) -> Int {
        withInterruptsDisabled {
            var found = 0
            for index in first..<first + count {
                let page = object.pointee.page(at: index)
                guard page != .none else { continue }
                let descriptor = PhysicalMemory.pageable(page)
                if descriptor.pointee.flags.contains(.busy) && descriptor.pointee.busyOwner == 0 && descriptor.pointee.queue == .none { found += 1 }
            }
            return found
        }
    }

    static func fourClustersStayInFlightWithTheirPagesBusyUntilEachWriteEnds() {
        guard slotsAreThere() else { return }
        Test.expectEqual(Disk.faults.writes, 0, "disk writes before this case (the fault number counts from boot)")
        let writes = PageoutRequests.slots
        let pages = writes * clusterPages
        let (address, object) = ClusterTests.dirtyInactivePages(31, count: pages)
        let started = PageoutRequests.statistics.started
        PageoutRequests.holdCompletions = true
        Test.expectEqual(Pageout.evict(object, clustering: true, writing: .inFlight), pages, "pages sent to the disk")
        Test.expectEqual(PageoutRequests.statistics.started - started, UInt64(writes), "writes started, one per cluster")
        Test.expectEqual(PageoutRequests.requestsInFlight, writes, "writes in flight")
        Test.expectEqual(PageoutRequests.pagesInFlight, pages, "pages in flight")
        Test.expectEqual(pagesInFlight(object, first: 0, count: pages), pages, "pages resident, busy, the device's and on no queue")
        for write in 0..<writes {
            // The device has finished (endOldestHeld waits for that) but until the write is
            // ended its pages stay the object's and busy.
            Test.expect(PageoutRequests.endOldestHeld(), "write \(write) ended")
            Test.expectEqual(pagesInFlight(object, first: 0, count: pages), pages - (write + 1) * clusterPages, "pages still in flight after \(write + 1) writes ended")
            Test.expectEqual(object.pointee.residentPages, pages - (write + 1) * clusterPages, "resident pages after \(write + 1) writes ended")
        }
        PageoutRequests.holdCompletions = false
        Test.expectEqual(PageoutRequests.requestsInFlight, 0, "writes in flight at the end")
        Test.expect(PageoutRequests.statistics.peakRequests >= writes, "at most \(PageoutRequests.statistics.peakRequests) writes were in flight at once")
        var consecutive = 0
        for index in 0..<pages {
            if let block = SwapMetadata.lookup(object, index), let first = SwapMetadata.lookup(object, index / clusterPages * clusterPages),
               block == first + UInt32(index % clusterPages) { consecutive += 1 }
        }
        Test.expectEqual(consecutive, pages, "pages on the block after the previous page's within their cluster")
        Test.expectEqual(ClusterTests.mismatches(address, 31, count: pages), 0, "pages that differ when faulted back from swap")
        Kmem.freePageable(address, UInt64(pages) * pageSize)
    }

    /// What the toucher thread saw.
    struct Touch {
        var address = VirtualAddress(0)
        var mismatches = 0
        var done = false
    }

    static func aFaultOnAPageInFlightWaitsForTheWriteAndKeepsItsStore() {
        guard slotsAreThere() else { return }
        let (address, object) = ClusterTests.dirtyInactivePages(32, count: clusterPages)
        PageoutRequests.holdCompletions = true
        Test.expectEqual(Pageout.evict(object, clustering: true, writing: .inFlight), clusterPages, "pages sent to the disk in one write")
        let touched = 5
        let touch = UnsafeMutablePointer<Touch>.allocate(capacity: 1)
        touch.initialize(to: Touch(address: address + UInt64(touched) * pageSize))
        let seed = KernelOptions.seed
        let thread = Threads.spawn("toucher") {
            // Reads the page (a fault: it is unmapped and busy), then stores a new pattern.
            if PagePattern.firstMismatch(touch.pointee.address, PagePattern.key(seed, 32, touched)) != nil { touch.pointee.mismatches += 1 }
            PagePattern.fill(touch.pointee.address, PagePattern.key(seed, 33, touched))
            withInterruptsDisabled { touch.pointee.done = true }
        }
        // The toucher must be asleep on the busy page before the write ends.
        var waited = 0
        while waited < 200 && !withInterruptsDisabled({ thread.pointee.state == .sleeping && thread.pointee.wait.channel == UnsafeRawPointer(PhysicalMemory.pageable(object.pointee.page(at: touched))) }) {
            Scheduler.sleep(ticks: 1)
            waited += 1
        }
        Test.expect(withInterruptsDisabled { !touch.pointee.done }, "the toucher did not get past a page in flight")
        Test.expectEqual(pagesInFlight(object, first: 0, count: clusterPages), clusterPages, "pages in flight while the toucher waits")
        Test.expect(PageoutRequests.endOldestHeld(), "the write ended")
        PageoutRequests.holdCompletions = false
        Test.expect(!Threads.join(thread), "the toucher ran to the end")
        Test.expectEqual(touch.pointee.mismatches, 0, "the toucher read the page's contents from swap")
        var differing = 0
        for page in 0..<clusterPages {
            let key = PagePattern.key(KernelOptions.seed, page == touched ? 33 : 32, page)
            if PagePattern.firstMismatch(address + UInt64(page) * pageSize, key) != nil { differing += 1 }
        }
        Test.expectEqual(differing, 0, "pages that differ from what was last stored (the toucher's store included)")
        touch.deallocate()
        Kmem.freePageable(address, UInt64(clusterPages) * pageSize)
    }

    static func aWriteThatFailsInFlightKeepsEveryPageDirtyAndALaterPassWritesThem() {
        guard slotsAreThere() else { return }
        Test.expectEqual(Disk.faults.writes, 5, "disk writes before this case: the next one fails")
        let swapBefore = SwapDevice.usedBlocks
        let (address, object) = ClusterTests.dirtyInactivePages(34, count: clusterPages)
        let errors = SwapDevice.writeErrors, failed = PageoutRequests.statistics.failed
        Test.expectEqual(Pageout.evict(object, clustering: true, writing: .inFlight), clusterPages, "pages sent to the disk in one write")
        // The failure comes back through the interrupt; the waiting thread settles it.
        PageoutRequests.waitForAll()
        Test.expectEqual(PageoutRequests.statistics.failed, failed + 1, "writes that failed in flight")
        Test.expectEqual(SwapDevice.writeErrors, errors + 1, "write errors reported")
        Test.expectEqual(SwapDevice.usedBlocks, swapBefore, "no swap block kept for a page whose write failed")
        Test.expectEqual(ClusterTests.keptAfterAFailedWrite(object, count: clusterPages), clusterPages,
                         "pages resident, dirty, not busy, inactive and without a swap block")
        Test.expectEqual(Pageout.evict(object, clustering: true, writing: .inFlight), clusterPages, "a later pass sends them again")
        PageoutRequests.waitForAll()
        Test.expectEqual(object.pointee.residentPages, 0, "every page on swap")
        Test.expectEqual(ClusterTests.mismatches(address, 34, count: clusterPages), 0, "pages that differ when faulted back from swap")
        Kmem.freePageable(address, UInt64(clusterPages) * pageSize)
        Test.expectEqual(SwapDevice.usedBlocks, swapBefore, "swap blocks in use after the memory is freed")
    }

    /// Four clusters in flight, their completions held; the fifth step needs a slot, so the
    /// oldest write ends - failed - while the step waits. The step must settle it (pages back,
    /// slots freed) and take that slot, not sleep to the timeout: a failed slot is not free
    /// until settled, and settling cannot run inside the interrupts-off wait.
    static func writesFailingWhileAStepWaitsForASlotAreSettledAndTheStepGoesOn() {
        guard slotsAreThere() else { return }
        Test.expectEqual(Disk.faults.writes, 0, "disk writes before this case (writes 1 to 4 fail)")
        let failing = PageoutRequests.slots
        let pages = (failing + 1) * clusterPages
        let (address, object) = ClusterTests.dirtyInactivePages(36, count: pages)
        let before = PageoutRequests.statistics
        PageoutRequests.holdCompletions = true
        Test.expectEqual(Pageout.evict(object, clustering: true, writing: .inFlight), pages, "pages sent to the disk, in \(failing + 1) writes")
        while PageoutRequests.endOldestHeld() {}
        PageoutRequests.holdCompletions = false
        PageoutRequests.waitForAll()
        let after = PageoutRequests.statistics
        Test.expectEqual(after.started - before.started, UInt64(failing + 1), "writes started: the fifth took a settled slot")
        Test.expectEqual(after.failed - before.failed, UInt64(failing), "writes that failed in flight")
        Test.expectEqual(after.written - before.written, 1, "writes that ended written")
        Test.expectEqual(ClusterTests.keptAfterAFailedWrite(object, count: failing * clusterPages), failing * clusterPages,
                         "pages of the failed writes resident, dirty, not busy, inactive and without a swap block")
        Test.expectEqual(object.pointee.residentPages, failing * clusterPages, "resident pages: all but the written cluster's")
        Test.expectEqual(Pageout.evict(object, clustering: true, writing: .inFlight), failing * clusterPages, "a later pass sends the rest")
        PageoutRequests.waitForAll()
        Test.expectEqual(object.pointee.residentPages, 0, "every page on swap")
        Test.expectEqual(ClusterTests.mismatches(address, 36, count: pages), 0, "pages that differ when faulted back from swap")
        Kmem.freePageable(address, UInt64(pages) * pageSize)
    }

    /// A thread dirties twice the memory free above paging_start, page by page with a seeded
    /// pattern, and reads it all back: the pageout thread must have had several writes in
    /// flight at once. A balloon leaves 2,048 pageable pages above paging_target (fewer on a
    /// small machine) whatever the machine's size, so that the workload fits on the suite's
    /// disk; the pageout thread wakes only below paging_start, so the workload counts from
    /// there (at 3G that gap alone is 3,094 pages).
    static func thePageoutThreadKeepsSeveralWritesInFlightUnderPressure() {
        guard slotsAreThere() else { return }
        var balloon = Balloon()
        balloon.inflate(leavingPageable: 2048)
        defer { balloon.deflate() }
        let start = PhysicalMemory.thresholds.pagingStart
        let pages = 2 * Int(PhysicalMemory.freePages > start ? PhysicalMemory.freePages - start : 0)
        let swapPages = Int(SwapDevice.blocks - SwapDevice.usedBlocks)
        // Reading it back pages out what was read before: every page may be written once.
        guard pages > 0 && pages < swapPages else {
            return Test.fail("the workload (\(pages) pages, twice what is free above paging_start) does not fit on swap (\(swapPages) free blocks)")
        }
        PageoutRequests.statistics.peakRequests = 0
        let before = PageoutRequests.statistics
        let address = Kmem.allocatePageable(UInt64(pages) * pageSize, owner: 0)!
        for page in 0..<pages { PagePattern.fill(address + UInt64(page) * pageSize, PagePattern.key(KernelOptions.seed, 35, page)) }
        var differing = 0
        for page in 0..<pages where PagePattern.firstMismatch(address + UInt64(page) * pageSize, PagePattern.key(KernelOptions.seed, 35, page)) != nil {
            differing += 1
        }
        Kmem.freePageable(address, UInt64(pages) * pageSize)
        let after = PageoutRequests.statistics
        Test.diagnostic("\(pages) pages dirtied; \(after.started - before.started) writes started, \(after.pagesWritten - before.pagesWritten) pages written in flight, at most \(after.peakRequests) writes at once, \(after.slotWaits - before.slotWaits) waits for a slot")
        Test.expectEqual(differing, 0, "pages that differ when read back")
        Test.expect(after.started - before.started > 0, "the pageout thread left writes in flight")
        Test.expect(after.peakRequests >= 2, "writes in flight at once: at most \(after.peakRequests)")
    }
}
