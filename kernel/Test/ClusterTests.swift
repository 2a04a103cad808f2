// ClusterTests.swift - clustered page-out: several dirty pages written in one disk request
// (kernel/VM/Pageout.swift, `clean` and `gatherFollowers`; docs/io.md, "Clustered page-out").
//
// The suite boots at 128 MiB, where nothing pages out on its own, with `diskfault=write:2`:
// the second write that reaches the disk since boot fails. The cases put an object's pages on
// the inactive queue and clean them as a pass would (`Pageout.evict(_:clustering:)`):
//   - 16 dirty pages go out in one request, to consecutive blocks, and come back byte for byte;
//   - the failing write is a cluster's: every page of it stays resident, dirty and unbusied with
//     no swap block, and a later pass writes them all;
//   - pageoutcluster=1 (the second suite) writes one page per request: the mechanism is what
//     makes the difference.

enum ClusterTests {
    static var suite: TestSuite {
        TestSuite("clusters", memory: "128M", arguments: "diskfault=write:2", diskMiB: 16, exclusive: false, [
            TestCase("sixteenDirtyPagesGoOutInOneRequestAndComeBack", sixteenDirtyPagesGoOutInOneRequestAndComeBack),
            TestCase("aFailedClusterWriteKeepsEveryPageDirtyAndALaterPassWritesThem", aFailedClusterWriteKeepsEveryPageDirtyAndALaterPassWritesThem),
        ])
    }

    static var unclusteredSuite: TestSuite {
        TestSuite("clusters-off", memory: "128M", arguments: "pageoutcluster=1", diskMiB: 16, exclusive: false, [
            TestCase("withClusteringOffEveryPageIsARequest", withClusteringOffEveryPageIsARequest),
        ])
    }

    static let pages = 16

    /// Dirty pages of a fresh pageable allocation, filled with a seeded pattern and moved to the
    /// inactive queue in index order with their accessed bits cleared, as deactivation would
    /// leave them.
    static func dirtyInactivePages(_ id: UInt64, count pages: Int = pages) -> (address: VirtualAddress, object: ObjectRef) {
        let address = Kmem.allocatePageable(UInt64(pages) * pageSize, owner: 0)!
        for page in 0..<pages { PagePattern.fill(address + UInt64(page) * pageSize, PagePattern.key(KernelOptions.seed, id, page)) }
        let object = RaceTests.object(at: address)
        withInterruptsDisabled {
            for index in 0..<pages {
                let page = object.pointee.page(at: index)
                if page != .none {
                    _ = Pmap.testAndClearReferenced(page)
                    PageQueues.move(page, to: .inactive)
                }
            }
        }
        return (address, object)
    }

    /// Pages of `object` [0, count) as a failed write must leave them: resident, dirty, not
    /// busy, on the inactive queue and without a swap block.
    static func keptAfterAFailedWrite(_ object: ObjectRef, count pages: Int = pages) -> Int {
        withInterruptsDisabled {
            var kept = 0
            for index in 0..<pages {
                let page = object.pointee.page(at: index)
                guard page != .none, SwapMetadata.lookup(object, index) == nil else { continue }
                let descriptor = PhysicalMemory.pageable(page)
                if descriptor.pointee.flags.contains(.dirty) && !descriptor.pointee.flags.contains(.busy) && descriptor.pointee.queue == .inactive {
                    kept += 1
                }
            }
            return kept
        }
    }

    static func mismatches(_ address: VirtualAddress, _ id: UInt64, count pages: Int = pages) -> Int {
        var count = 0
        for page in 0..<pages where PagePattern.firstMismatch(address + UInt64(page) * pageSize, PagePattern.key(KernelOptions.seed, id, page)) != nil {
            count += 1
        }
        return count
    }

    static func sixteenDirtyPagesGoOutInOneRequestAndComeBack() {
        Test.expectEqual(Disk.faults.writes, 0, "disk writes before this case (the fault number counts from boot)")
        let (address, object) = dirtyInactivePages(21)
        let requests = SwapDevice.writeRequests, written = SwapDevice.pagesWritten
        Test.expectEqual(Pageout.evict(object, clustering: true), pages, "pages written and freed")
        Test.expectEqual(SwapDevice.writeRequests - requests, 1, "disk requests for the 16 pages")
        Test.expectEqual(SwapDevice.pagesWritten - written, UInt64(pages), "pages the request wrote")
        let first = SwapMetadata.lookup(object, 0)
        var consecutive = 0
        for index in 0..<pages where first != nil && SwapMetadata.lookup(object, index) == first! + UInt32(index) { consecutive += 1 }
        Test.expectEqual(consecutive, pages, "pages on the block after the previous page's")
        Test.expectEqual(mismatches(address, 21), 0, "pages that differ when faulted back from swap")
        Kmem.freePageable(address, UInt64(pages) * pageSize)
    }

    static func aFailedClusterWriteKeepsEveryPageDirtyAndALaterPassWritesThem() {
        Test.expectEqual(Disk.faults.writes, 1, "disk writes before this case: the next one fails")
        let swapBefore = SwapDevice.usedBlocks
        let (address, object) = dirtyInactivePages(22)
        let errors = SwapDevice.writeErrors
        Test.expectEqual(Pageout.evict(object, clustering: true, stoppingAtAFailure: true), 0, "pages freed when the cluster's write fails")
        Test.expectEqual(SwapDevice.writeErrors, errors + 1, "one write error: one request held them all")
        Test.expectEqual(SwapDevice.usedBlocks, swapBefore, "no swap block kept for a page whose write failed")
        Test.expectEqual(keptAfterAFailedWrite(object, count: pages), pages, "pages resident, dirty, not busy, inactive and without a swap block")
        Test.expectEqual(Pageout.evict(object, clustering: true), pages, "a later pass writes them all")
        Test.expectEqual(object.pointee.residentPages, 0, "every page on swap")
        Test.expectEqual(mismatches(address, 22), 0, "pages that differ when faulted back from swap")
        Kmem.freePageable(address, UInt64(pages) * pageSize)
        Test.expectEqual(SwapDevice.usedBlocks, swapBefore, "swap blocks in use after the memory is freed")
    }

    static func withClusteringOffEveryPageIsARequest() {
        Test.expectEqual(Pageout.clusterLimit, 1, "pageoutcluster=1 was applied")
        let (address, object) = dirtyInactivePages(23)
        let requests = SwapDevice.writeRequests
        Test.expectEqual(Pageout.evict(object, clustering: true), pages, "pages written and freed")
        Test.expectEqual(SwapDevice.writeRequests - requests, UInt64(pages), "disk requests: one per page")
        Test.expectEqual(mismatches(address, 23), 0, "pages that differ when faulted back from swap")
        Kmem.freePageable(address, UInt64(pages) * pageSize)
    }
}
