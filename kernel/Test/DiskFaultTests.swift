// DiskFaultTests.swift - swap disk errors, injected from the command line, and what the VM
// makes of them (docs/io.md, "Errors").
//
// The suite boots with `diskfault=write:3,read:10`: the third write and the tenth read that
// reach the disk since boot fail as a device error would (kernel/Drivers/Portable/
// DiskFaultPlan.swift). Nothing else does I/O before it (no memory pressure at 128 MiB), and the
// first case checks that, so the numbers land where the cases expect them:
//   - a write error leaves the page resident and dirty (nothing lost, nothing freed), the
//     error is counted, and a later pass writes it;
//   - a read error on a page-in stops the faulting thread - whose joiner learns it was killed -
//     and marks only that memory dead: another thread's memory, paged out beside it, comes
//     back intact, and every swap block is given back when both are freed.

enum DiskFaultTests {
    static var suite: TestSuite {
        TestSuite("diskfaults", memory: "128M", arguments: "diskfault=write:3,read:10", diskMiB: 16, exclusive: false, [
            TestCase("writeErrorLeavesThePageDirtyInMemoryAndALaterPassWritesIt", writeErrorLeavesThePageDirtyInMemoryAndALaterPassWritesIt),
            TestCase("readErrorStopsTheFaultingThreadAndNothingElse", readErrorStopsTheFaultingThreadAndNothingElse),
        ])
    }

    static let pages = 8

    static func writeErrorLeavesThePageDirtyInMemoryAndALaterPassWritesIt() {
        Test.expect(Disk.faults.failingWrite == 3 && Disk.faults.failingRead == 10, "booted with diskfault=write:3,read:10")
        Test.expectEqual(Disk.faults.writes + Disk.faults.reads, 0, "disk operations before this case (the fault numbers count from boot)")
        let swapBefore = SwapDevice.usedBlocks
        let bytes = UInt64(pages) * pageSize
        let address = Kmem.allocatePageable(bytes, owner: 0)!
        for page in 0..<pages { PagePattern.fill(address + UInt64(page) * pageSize, PagePattern.key(KernelOptions.seed, 7, page)) }
        let object = RaceTests.object(at: address)
        let errors = SwapDevice.writeErrors
        let freed = Pageout.evict(object)
        Test.expectEqual(freed, pages - 1, "pages written and freed when the third write fails")
        Test.expectEqual(SwapDevice.writeErrors, errors + 1, "write errors counted")
        Test.expectEqual(Disk.injectedFaults, 1, "faults injected")
        // The third page cleaned (index 2) is the one whose write failed.
        let kept = object.pointee.page(at: 2)
        Test.expect(kept != .none, "the page whose write failed is still resident")
        if kept != .none {
            let flags = PhysicalMemory.pageable(kept).pointee.flags
            Test.expect(flags.contains(.dirty), "and still dirty: its only up-to-date copy is in memory")
            Test.expect(!flags.contains(.busy), "and not left busy")
        }
        Test.expect(SwapMetadata.lookup(object, 2) == nil, "no swap block recorded for the page whose write failed")
        Test.expectEqual(Pageout.evict(object), 1, "a later pass writes it")
        Test.expectEqual(object.pointee.residentPages, 0, "every page on swap")
        var mismatches = 0
        for page in 0..<pages where PagePattern.firstMismatch(address + UInt64(page) * pageSize, PagePattern.key(KernelOptions.seed, 7, page)) != nil {
            mismatches += 1
        }
        Test.expectEqual(mismatches, 0, "pages that differ when read back from swap")
        // Reads 1...8: the read fault (the tenth) is the next case's.
        Kmem.freePageable(address, bytes)
        Test.expectEqual(SwapDevice.usedBlocks, swapBefore, "swap blocks in use after the memory is freed")
    }

    struct Worker {
        var address = VirtualAddress(0)
        var written = false
        var go = false
        var reads = 0
        var mismatches = 0
    }

    /// A thread that owns `pages` of pageable memory, fills it, waits to be told, reads it back.
    static func spawnWorker(_ worker: UnsafeMutablePointer<Worker>, _ name: StaticString, generation: UInt64) -> ThreadRef {
        let seed = KernelOptions.seed
        return Threads.spawn(name) {
            let address = Kmem.allocatePageable(UInt64(pages) * pageSize, owner: Scheduler.current.pointee.id)!
            worker.pointee.address = address
            for page in 0..<pages { PagePattern.fill(address + UInt64(page) * pageSize, PagePattern.key(seed, generation, page)) }
            withInterruptsDisabled {
                worker.pointee.written = true
                while !worker.pointee.go { Scheduler.sleep(on: UnsafeRawPointer(worker), reason: "test: wait to read") }
            }
            for page in 0..<pages {
                if PagePattern.firstMismatch(address + UInt64(page) * pageSize, PagePattern.key(seed, generation, page)) != nil {
                    worker.pointee.mismatches += 1
                }
                worker.pointee.reads += 1
            }
        }
    }

    static func readErrorStopsTheFaultingThreadAndNothingElse() {
        let swapBefore = SwapDevice.usedBlocks
        let workers = UnsafeMutablePointer<Worker>.allocate(capacity: 2)
        workers.initialize(repeating: Worker(), count: 2)
        let first = spawnWorker(workers, "reader-a", generation: 8)
        let second = spawnWorker(workers + 1, "reader-b", generation: 9)
        while !withInterruptsDisabled({ workers[0].written && workers[1].written }) { Scheduler.sleep(ticks: 1) }
        let objects = (RaceTests.object(at: workers[0].address), RaceTests.object(at: workers[1].address))
        Test.expectEqual(Pageout.evict(objects.0) + Pageout.evict(objects.1), 2 * pages, "both threads' pages written to swap")
        Test.expectEqual(Disk.faults.reads, 8, "reads so far: the first case's eight")
        let readErrors = SwapDevice.readErrors, lost = PageFault.lostPages
        // The first thread reads alone: its first page is read 9, its second read 10, which fails.
        withInterruptsDisabled {
            workers[0].go = true
            Scheduler.wakeup(UnsafeRawPointer(workers))
        }
        let firstKilled = Threads.join(first)
        Test.expect(firstKilled, "the thread whose page-in failed was stopped, and its joiner is told")
        Test.expectEqual(workers[0].reads, 1, "pages it read before the failing one")
        Test.expectEqual(workers[0].mismatches, 0, "pages it read wrong (none: it stopped instead of reading garbage)")
        Test.expectEqual(SwapDevice.readErrors, readErrors + 1, "read errors counted")
        Test.expectEqual(PageFault.lostPages, lost + 1, "pages reported lost")
        Test.expect(objects.0.pointee.dead, "its memory is marked dead")
        Test.expect(!objects.1.pointee.dead, "the other thread's memory is not")
        withInterruptsDisabled {
            workers[1].go = true
            Scheduler.wakeup(UnsafeRawPointer(workers + 1))
        }
        let secondKilled = Threads.join(second)
        Test.expect(!secondKilled, "the other thread ran to the end")
        Test.expectEqual(workers[1].reads, pages, "the other thread read every page")
        Test.expectEqual(workers[1].mismatches, 0, "pages of the other thread that came back wrong")
        Kmem.freePageable(workers[0].address, UInt64(pages) * pageSize)
        Kmem.freePageable(workers[1].address, UInt64(pages) * pageSize)
        Test.expectEqual(SwapDevice.usedBlocks, swapBefore, "swap blocks in use after both threads' memory is freed")
        workers.deallocate()
    }
}
