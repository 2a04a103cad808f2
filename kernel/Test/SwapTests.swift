// SwapTests.swift - the swap disk, paging under memory pressure, and swap running out.

enum SwapTests {
    static var deviceSuite: TestSuite {
        TestSuite("swapdevice", diskMiB: 16, [
            TestCase("diskIsFoundWithItsSize", diskIsFoundWithItsSize),
            TestCase("blocksRoundTripWithTheirChecksums", blocksRoundTripWithTheirChecksums),
            TestCase("outOfRangeBlockIsAnErrorNotACrash", outOfRangeBlockIsAnErrorNotACrash),
        ])
    }

    /// A 1 TiB disk (a sparse image on the host): the swap bitmap alone is 32 MiB, more than
    /// any physically contiguous block, so it comes from kmem; every block is addressable. On
    /// a machine where that bitmap would be more than a quarter of memory, swap covers only
    /// what a quarter of memory can map, and the kernel says so.
    static var terabyteSuite: TestSuite {
        TestSuite("swapterabyte", memory: "256M,16M", diskMiB: 1 << 20, [
            TestCase("everyBlockOfATerabyteDiskIsUsable", everyBlockOfATerabyteDiskIsUsable),
            TestCase("blocksRoundTripWithTheirChecksums", blocksRoundTripWithTheirChecksums),
            TestCase("outOfRangeBlockIsAnErrorNotACrash", outOfRangeBlockIsAnErrorNotACrash),
            TestCase("swapMetadataTableIsSizedFromTheDiskWithinAShareOfMemory", swapMetadataTableIsSizedFromTheDiskWithinAShareOfMemory),
        ])
    }

    /// One bucket per 16 swap blocks would be 2^24 buckets (128 MiB) for a terabyte: the table
    /// is capped at 1/128 of memory instead, and is a power of two.
    static func swapMetadataTableIsSizedFromTheDiskWithinAShareOfMemory() {
        let buckets = SwapMetadata.statistics.buckets
        let memory = PhysicalMemory.managedPages * pageSize
        Test.expectEqual(buckets, SwapBlockTable.bucketCount(swapBlocks: UInt64(SwapDevice.blocks), memoryBytes: memory), "hash buckets")
        Test.expect(buckets & (buckets - 1) == 0, "\(buckets) buckets: a power of two")
        Test.expect(UInt64(buckets) * 8 <= memory / SwapBlockTable.memoryFraction, "the table (\(bytes: UInt64(buckets) * 8)) within 1/128 of \(bytes: memory)")
        Test.expect(UInt64(buckets) * 8 > memory / SwapBlockTable.memoryFraction / 2, "the table (\(bytes: UInt64(buckets) * 8)) as large as the cap allows for a terabyte")
    }

    static func everyBlockOfATerabyteDiskIsUsable() {
        Test.expect(SwapDevice.isPresent, "a swap disk was found")
        let diskBlocks: UInt64 = (1 << 40) / pageSize
        let bitmapLimit = PhysicalMemory.managedPages * pageSize / 4      // bytes
        let expected = diskBlocks / 8 <= bitmapLimit ? diskBlocks : bitmapLimit * 8
        Test.expectEqual(UInt64(SwapDevice.blocks), expected, "swap blocks on a 1 TiB disk with \(PhysicalMemory.managedPages) pages of RAM")
        let buffer = Kmalloc.allocate(4096, alignment: 4096)!
        let last = SwapDevice.blocks - 1
        buffer.storeBytes(of: 0x7E7A_B17E, as: UInt64.self)
        Test.expect(SwapDevice.write(block: last, from: buffer), "write the last block")
        buffer.storeBytes(of: 0, as: UInt64.self)
        Test.expect(SwapDevice.read(block: last, into: buffer), "read the last block")
        Test.expectEqual(buffer.load(as: UInt64.self), UInt64(0x7E7A_B17E), "the last block's contents")
        Kmalloc.free(buffer)
    }

    /// At 256M the workload pushes 512 MiB through a PIO disk and checks every byte: about
    /// 5 minutes alone on 2 cores, three times that beside other boots; the timeout allows it.
    static var pagingSuite: TestSuite {
        TestSuite("paging", memory: "24M,16M,256M", diskMiB: 256, diskPerRAM: 3, timeout: 1800, exclusive: false, [
            TestCase("threadsWriteMoreThanRAMAndReadEveryPageBack", threadsWriteMoreThanRAMAndReadEveryPageBack),
            TestCase("swapIsReleasedWithTheMemory", swapIsReleasedWithTheMemory),
            TestCase("swapMetadataChainsStayShortWhilePaging", swapMetadataChainsStayShortWhilePaging),
        ])
    }

    static var fullSuite: TestSuite {
        TestSuite("swapfull", memory: TestSuite.pressureSizes, diskMiB: 8, diskMaxMiB: 64, timeout: 600, exclusive: false, [
            TestCase("workloadBiggerThanRAMAndSwapIsStoppedWithAMessage", workloadBiggerThanRAMAndSwapIsStoppedWithAMessage),
            TestCase("kernelCarriesOnAfterward", kernelCarriesOnAfterward),
        ])
    }

    /// The runner gives this suite a 16 MiB disk; `test=all` may give any disk of at least
    /// that (TestPrerequisites.swift), so the size is checked against what the drive reports.
    static func diskIsFoundWithItsSize() {
        Test.expect(SwapDevice.isPresent, "a swap disk was found")
        Test.expect(Disk.sectors >= 16 * 1024 * 1024 / 512, "the drive reports at least 16 MiB: \(Disk.sectors) sectors")
        let blocks = min(Disk.sectors / 8, SwapDevice.maximumBlocks)
        Test.expectEqual(UInt64(SwapDevice.blocks), blocks, "swap blocks on a disk of \(Disk.sectors) sectors")
    }

    static func checksum(_ memory: UnsafeMutableRawPointer) -> UInt64 {
        var sum: UInt64 = 0x5A5A
        for word in 0..<512 { sum = (sum ^ memory.load(fromByteOffset: word * 8, as: UInt64.self)) &* 0x100_0000_01B3 }
        return sum
    }

    static func blocksRoundTripWithTheirChecksums() {
        let buffer = Kmalloc.allocate(4096, alignment: 4096)!
        var sums: [UInt64] = []
        let blocks = 64
        for block in 0..<blocks {
            for word in 0..<512 { buffer.storeBytes(of: Test.random.next(), toByteOffset: word * 8, as: UInt64.self) }
            sums.append(checksum(buffer))
            Test.expect(SwapDevice.write(block: UInt32(block * 37 % Int(SwapDevice.blocks)), from: buffer), "write block \(block)")
        }
        var bad = 0
        for block in 0..<blocks {
            buffer.initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
            Test.expect(SwapDevice.read(block: UInt32(block * 37 % Int(SwapDevice.blocks)), into: buffer), "read block \(block)")
            if checksum(buffer) != sums[block] { bad += 1 }
        }
        Test.expectEqual(bad, 0, "blocks whose checksum differs after the round trip")
        Kmalloc.free(buffer)
    }

    static func outOfRangeBlockIsAnErrorNotACrash() {
        let buffer = Kmalloc.allocate(4096, alignment: 4096)!
        let errors = SwapDevice.writeErrors + SwapDevice.readErrors
        Test.expect(!SwapDevice.write(block: SwapDevice.blocks, from: buffer), "writing one block past the end fails")
        Test.expect(!SwapDevice.read(block: UInt32.max - 1, into: buffer), "reading far past the end fails")
        Test.expectEqual(SwapDevice.writeErrors + SwapDevice.readErrors, errors + 2, "errors counted")
        Test.expect(Disk.read(Disk.sectors - 1, 2, into: buffer) != nil, "the driver refuses a range across the end")
        Test.expect(SwapDevice.read(block: 0, into: buffer), "the disk still works afterwards")
        Kmalloc.free(buffer)
    }

    // MARK: - Paging

    struct Region {
        var address = VirtualAddress(0)
        var pages = 0
        var seed: UInt64 = 0
        var mismatches = 0
    }

    /// Writes every byte of every page of the region (kernel/Test/PagePattern.swift), then
    /// reads every page back and counts the pages that differ, naming the first few.
    static func exercise(_ region: UnsafeMutablePointer<Region>) {
        let r = region.pointee
        for page in 0..<r.pages {
            PagePattern.fill(r.address + UInt64(page) * pageSize, PagePattern.key(r.seed, 0, page))
        }
        for page in 0..<r.pages {
            let base = r.address + UInt64(page) * pageSize
            if let word = PagePattern.firstMismatch(base, PagePattern.key(r.seed, 0, page)) {
                if region.pointee.mismatches < 4 { Log.error(.test, "page \(page) at \(address: base) came back different from word \(word) on") }
                region.pointee.mismatches += 1
            }
        }
    }

    static func threadsWriteMoreThanRAMAndReadEveryPageBack() {
        let workers = 3
        // Sized from the machine: twice RAM, so that most pages go through swap, but at most
        // three quarters of the swap disk - a page holds at most one swap block, so swap never
        // fills (that is swapfull's subject) and no worker is stopped.
        let ram = Int(PhysicalMemory.managedPages)
        let totalPages = min(2 * ram, Int(SwapDevice.blocks) * 3 / 4)
        guard totalPages >= ram + ram / 4 else {
            Test.fail("the swap disk (\(SwapDevice.blocks) blocks) is too small to page \(ram + ram / 4) pages through \(ram) pages of RAM")
            return
        }
        let perWorker = totalPages / workers
        let regions = UnsafeMutablePointer<Region>.allocate(capacity: workers)
        let outBefore = SwapDevice.pagesWritten, inBefore = SwapDevice.pagesRead
        var threads: [ThreadRef] = []
        for index in 0..<workers {
            let region = regions + index
            region.initialize(to: Region(address: VirtualAddress(0), pages: perWorker, seed: KernelOptions.seed &+ UInt64(index), mismatches: 0))
            threads.append(Threads.spawn("worker") {
                region.pointee.address = Kmem.allocatePageable(UInt64(perWorker) * pageSize, owner: Scheduler.current.pointee.id)!
                exercise(region)
            })
        }
        for thread in threads { Test.expect(!Threads.join(thread), "worker was not stopped") }
        var mismatches = 0
        for index in 0..<workers { mismatches += regions[index].mismatches }
        Test.expectEqual(mismatches, 0, "pages that came back different")
        let out = SwapDevice.pagesWritten - outBefore, back = SwapDevice.pagesRead - inBefore
        Test.expect(out > 0 && back > 0, "pages went to swap and came back")
        Test.diagnostic("seed \(KernelOptions.seed): \(workers) threads wrote \(workers * perWorker) pages (\(bytes: UInt64(workers * perWorker) * pageSize)) into \(PhysicalMemory.managedPages) pages of RAM; \(out) pages swapped out, \(back) swapped in")
        Pageout.logStatistics()
        for index in 0..<workers { Kmem.freePageable(regions[index].address, UInt64(perWorker) * pageSize) }
        regions.deallocate()
    }

    static func swapIsReleasedWithTheMemory() {
        Test.expectEqual(SwapDevice.usedBlocks, UInt32(0), "swap blocks in use once every pageable range is freed")
        Test.expectEqual(SwapMetadata.swapBlocksInUse, 0, "swblocks in use")
        Test.expectEqual(MemoryObjects.live, 0, "memory objects alive")
        Test.expectEqual(Zones.swapBlock.inUse, 0, "swblock zone objects in use")
    }

    /// After the paging test (the same boot): the swblock hash table was sized from the disk,
    /// carried at most one swblock per bucket, and no chain was ever longer than 8 - with a
    /// uniform hash at load <= 1 the longest chain of a few thousand swblocks is ~5. (The fixed
    /// table of 1024 buckets this replaced would average 256 a chain paging 2x 8 GiB of RAM.)
    static func swapMetadataChainsStayShortWhilePaging() {
        let s = SwapMetadata.statistics
        let expected = SwapBlockTable.bucketCount(swapBlocks: UInt64(SwapDevice.blocks), memoryBytes: PhysicalMemory.managedPages * pageSize)
        Test.expectEqual(s.buckets, expected, "hash buckets for \(SwapDevice.blocks) swap blocks")
        Test.expect(s.peakSwapBlocks > 0 && s.lookups > 0, "the paging test used swap metadata")
        Test.expect(s.peakSwapBlocks <= s.buckets, "load: at most \(s.peakSwapBlocks) swblocks in \(s.buckets) buckets")
        Test.expect(s.longestChain <= 8, "longest chain \(s.longestChain) (at most 8) with at most \(s.peakSwapBlocks) swblocks in \(s.buckets) buckets")
        Test.expect(s.probes < 2 * s.lookups, "lookups looked at \(quotient: s.probes, by: s.lookups) swblocks each on average (fewer than 2)")
        Test.expect(withInterruptsDisabled { SwapMetadata.table!.isConsistent() }, "every swblock in its bucket, counted")
        Test.diagnostic("swap metadata: at most \(s.peakSwapBlocks) swblocks in \(s.buckets) buckets, longest chain \(s.longestChain), \(quotient: s.probes, by: s.lookups) probes per lookup")
    }

    // MARK: - Swap full

    static func workloadBiggerThanRAMAndSwapIsStoppedWithAMessage() {
        let pages = (Int(PhysicalMemory.managedPages) + Int(SwapDevice.blocks)) * 3 / 2
        let region = UnsafeMutablePointer<Region>.allocate(capacity: 1)
        region.initialize(to: Region(address: VirtualAddress(0), pages: pages, seed: KernelOptions.seed, mismatches: 0))
        let killsBefore = Pageout.statistics.oomKills
        let worker = Threads.spawn("hog") {
            region.pointee.address = Kmem.allocatePageable(UInt64(pages) * pageSize, owner: Scheduler.current.pointee.id)!
            exercise(region)
        }
        let killed = Threads.join(worker)
        Test.expect(killed, "the worker was stopped by the out-of-memory policy")
        Test.expectEqual(Pageout.statistics.oomKills, killsBefore + 1, "threads stopped")
        Test.expect(Pageout.statistics.swapFullEvents > 0, "the pageout thread reported swap full")
        Kmem.freePageable(region.pointee.address, UInt64(pages) * pageSize)
        Test.expectEqual(SwapDevice.usedBlocks, UInt32(0), "swap released")
        region.deallocate()
    }

    static func kernelCarriesOnAfterward() {
        let region = UnsafeMutablePointer<Region>.allocate(capacity: 1)
        region.initialize(to: Region(address: VirtualAddress(0), pages: 256, seed: 7, mismatches: 0))
        region.pointee.address = Kmem.allocatePageable(256 * pageSize, owner: Scheduler.current.pointee.id)!
        exercise(region)
        Test.expectEqual(region.pointee.mismatches, 0, "pages that came back different")
        Kmem.freePageable(region.pointee.address, 256 * pageSize)
        region.deallocate()
    }
}
