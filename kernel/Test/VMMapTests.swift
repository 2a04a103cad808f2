// VMMapTests.swift - kernel_map, submaps, kmem, map-entry reservation, in the kernel.
//
// `vmmap` runs the cases plainly; `vmmapcheck` runs them with mapcheck=on, so the full
// validator runs after every map operation they make.

enum VMMapTests {
    static var cases: [TestCase] {
        [
            TestCase("kernelMapWasBuiltFromStaticSlabs", kernelMapWasBuiltFromStaticSlabs),
            TestCase("kmemAllocationsHoldTheirData", kmemAllocationsHoldTheirData),
            TestCase("freePartOfTheMiddleSplitsTheEntryWithOneReservedFirst", freePartOfTheMiddleSplitsTheEntryWithOneReservedFirst),
            TestCase("kmemFreeOfWholeAllocationsAndEdgesReservesNoEntry", kmemFreeOfWholeAllocationsAndEdgesReservesNoEntry),
            TestCase("fullSubmapFailsCleanlyAndNamesItself", fullSubmapFailsCleanlyAndNamesItself),
            TestCase("kernelMapInsertSucceedsFromTheReserveThenRefills", kernelMapInsertSucceedsFromTheReserveThenRefills),
            TestCase("pageableMemoryHasNoPagesUntilTouched", pageableMemoryHasNoPagesUntilTouched),
            TestCase("pageableObjectOf8GiBWorks", pageableObjectOf8GiBWorks),
            TestCase("seededKmemWorkloadKeepsTheMapValid", seededKmemWorkloadKeepsTheMapValid),
            TestCase("freeingWhatWasNeverAllocatedIsCaught", expectsPanic: "not all of it is allocated there",
                     inFrame: "VMMapTests.freeingWhatWasNeverAllocatedIsCaught", freeingWhatWasNeverAllocatedIsCaught),
            TestCase("kmemFreeOfTheMiddleIsRefused", expectsPanic: "would split an allocation in two",
                     inFrame: "VMMapTests.kmemFreeOfTheMiddleIsRefused", kmemFreeOfTheMiddleIsRefused),
        ]
    }

    static var suite: TestSuite { TestSuite("vmmap", cases) }
    static var checkedSuite: TestSuite { TestSuite("vmmapcheck", arguments: "mapcheck=on lockorder=on", cases + [
        TestCase("validatorIsOn", { Test.expect(VMMaps.validateAfterEveryOperation, "mapcheck=on reached the maps") }),
    ]) }

    static func expectValid(_ map: MapRef, line: UInt = #line) {
        if let problem = VMMaps.validate(map) { Test.fail("map \(map.pointee.map.name) invalid: \(message: problem)", line: line) }
    }

    static func kernelMapWasBuiltFromStaticSlabs() {
        Test.expect(Zones.mapEntry.statistics.allocationsBeforePageAllocator >= 3, "map entries served before the page allocator existed")
        for submap in [KernelMaps.kmem, KernelMaps.pageable, KernelMaps.pager] {
            let entry = KernelMaps.kernelMap.pointee.map.lookup(submap.pointee.map.start)
            Test.expect(entry != nil && entry!.pointee.kind == .submap, "kernel_map has the \(submap.pointee.map.name) submap entry")
        }
        expectValid(KernelMaps.kernelMap)
    }

    static func kmemAllocationsHoldTheirData() {
        let freeBefore = PhysicalMemory.freePages
        let mappedBefore = KernelMaps.kmem.pointee.map.mappedBytes
        var ranges: [(VirtualAddress, UInt64)] = []
        ranges.reserveCapacity(8)
        let sizes: [UInt64] = [4096, 3 * 4096, 64 * 1024, 200 * 1024, 5000]
        for (number, size) in sizes.enumerated() {
            guard let address = Kmem.allocate(size) else {
                Test.fail("kmem_alloc(\(size)) failed")
                continue
            }
            for offset in stride(from: UInt64(0), to: size, by: 512) {
                pointer(at: address + offset).storeBytes(of: UInt64(number) << 32 | offset, as: UInt64.self)
            }
            ranges.append((address, size))
        }
        for (number, (address, size)) in ranges.enumerated() {
            var bad = 0
            for offset in stride(from: UInt64(0), to: size, by: 512) where pointer(at: address + offset).load(as: UInt64.self) != UInt64(number) << 32 | offset {
                bad += 1
            }
            Test.expectEqual(bad, 0, "words of allocation \(number) that read back wrong")
        }
        for (address, size) in ranges { Kmem.free(address, size) }
        Test.expectEqual(KernelMaps.kmem.pointee.map.mappedBytes, mappedBefore, "kmem bytes mapped after freeing")
        // Page tables made for the allocations are freed with them; the map's stock and the
        // array above may hold a few pages of zone slabs.
        Test.expect(freeBefore - PhysicalMemory.freePages <= 2, "free pages came back (\(freeBefore - PhysicalMemory.freePages) short)")
        expectValid(KernelMaps.kmem)
    }

    /// A hole in the middle of an allocation needs a second entry: freePart reserves it
    /// (an allocation, before the free path), and the free path itself allocates nothing -
    /// which the FreePath assertion in every allocator would panic on.
    static func freePartOfTheMiddleSplitsTheEntryWithOneReservedFirst() {
        let map = KernelMaps.kmem
        guard let address = Kmem.allocate(8 * pageSize) else { return Test.fail("kmem_alloc failed") }
        for page in 0..<8 { pointer(at: address + UInt64(page) * pageSize).storeBytes(of: UInt64(page), as: UInt64.self) }
        let entriesBefore = map.pointee.map.count
        let freeBefore = PhysicalMemory.freePages
        Test.expect(Kmem.freePart(address + 3 * pageSize, 2 * pageSize, .ordinary), "an ordinary freePart got its entry")
        Test.expectEqual(map.pointee.map.count, entriesBefore + 1, "entries after splitting one")
        Test.expectEqual(PhysicalMemory.freePages - freeBefore, UInt64(2), "pages freed")
        Test.expect(Pmap.extract(address + 3 * pageSize) == nil && Pmap.extract(address + 4 * pageSize) == nil, "the middle is unmapped")
        for page in [0, 1, 2, 5, 6, 7] {
            Test.expectEqual(pointer(at: address + UInt64(page) * pageSize).load(as: UInt64.self), UInt64(page), "page \(page) kept its data")
        }
        Kmem.free(address, 3 * pageSize)
        Kmem.free(address + 5 * pageSize, 3 * pageSize)
        Test.expectEqual(map.pointee.map.count, entriesBefore - 1, "entries after freeing both pieces")
        expectValid(map)
    }

    /// kmem_free of whole allocations, fronts and backs: no entry is reserved, not even from the
    /// map's stock (emptied here, so a reservation would have to reach the zone), and the
    /// map_entry zone sees no allocation.
    static func kmemFreeOfWholeAllocationsAndEdgesReservesNoEntry() {
        let map = KernelMaps.kmem
        guard let first = Kmem.allocate(4 * pageSize), let second = Kmem.allocate(4 * pageSize) else {
            return Test.fail("kmem_alloc failed")
        }
        VMMaps.flushStock(map)
        let entriesBefore = map.pointee.map.count
        let zoneAllocationsBefore = Zones.mapEntry.statistics.allocations
        Kmem.free(first, pageSize)                        // the front
        Kmem.free(first + 3 * pageSize, pageSize)         // the back
        Kmem.free(first + pageSize, 2 * pageSize)         // what is left: all of it
        Kmem.free(second, 4 * pageSize)                   // a whole allocation
        Test.expectEqual(Zones.mapEntry.statistics.allocations, zoneAllocationsBefore, "map entries allocated by kmem_free")
        Test.expectEqual(map.pointee.stock.count, min(2, map.pointee.stockTarget), "the removed entries refilled the stock")
        Test.expectEqual(map.pointee.map.count, entriesBefore - 2, "entries after freeing both allocations")
        expectValid(map)
    }

    /// A kmem_free strictly inside an allocation would need a map entry: it panics instead.
    @inline(never)
    static func kmemFreeOfTheMiddleIsRefused() {
        guard let address = Kmem.allocate(4 * pageSize) else { return Test.fail("kmem_alloc failed") }
        Kmem.free(address + pageSize, pageSize)
        Test.fail("a kmem_free that splits an allocation was not refused")
    }

    static func fullSubmapFailsCleanlyAndNamesItself() {
        guard let submap = VMMaps.createSubmap("test-small", in: KernelMaps.kernelMap, size: 64 * 1024) else {
            return Test.fail("could not create a test submap")
        }
        var addresses: [VirtualAddress] = []
        addresses.reserveCapacity(8)
        while let address = Kmem.allocate(16 * 1024, in: submap) { addresses.append(address) }
        Test.expectEqual(addresses.count, 4, "16 KiB allocations in a 64 KiB submap")
        Test.expectEqual(submap.pointee.exhaustionFailures, UInt64(1), "refusals counted on the submap")
        expectValid(submap)
        for address in addresses { Kmem.free(address, 16 * 1024, in: submap) }
        Test.expectEqual(submap.pointee.map.count, 0, "submap empty again")
        VMMaps.destroySubmap(submap)
        expectValid(KernelMaps.kernelMap)
    }

    static func kernelMapInsertSucceedsFromTheReserveThenRefills() {
        // The recursion FreeBSD fixed in 2020: inserting into kernel_map needs a map entry; a
        // map-entry zone that must grow needs kernel memory. Our map_entry zone grows from the
        // direct map, and its reserve serves VM internals when it cannot grow at all.
        guard let submap = VMMaps.createSubmap("test-reserve", in: KernelMaps.kernelMap, size: 1 << 20) else {
            return Test.fail("could not create a test submap")
        }
        submap.pointee.stockTarget = 0
        VMMaps.flushStock(submap)
        let zone = Zones.mapEntry
        let reserve = zone.state.pointee.reserveTarget
        var held: [UnsafeMutableRawPointer] = []
        held.reserveCapacity(4096)
        while zone.freeObjects > reserve { held.append(zone.allocate(.ordinaryNoWait)!) }
        Test.expectEqual(zone.freeObjects, reserve, "no free map entries besides the reserve")
        let failedRefills = zone.statistics.failedRefills
        let saved = PhysicalMemory.faultInjector
        // Memory is gone for every requester but the pageout path.
        PhysicalMemory.faultInjector = FaultInjector(pattern: .everyNth(1), classes: [RequesterSet(.ordinary), RequesterSet(.system)], seed: 1)
        Test.expect(zone.allocate(.ordinaryNoWait) == nil, "an ordinary caller gets nothing: it may not take the reserve and the zone cannot grow")
        Test.expectEqual(zone.freeObjects, reserve, "the reserve is untouched")
        let address = Kmem.allocate(pageSize, in: submap, .pageout)
        PhysicalMemory.faultInjector = saved
        Test.expect(address != nil, "a pageout-context kmem_alloc succeeds with the map-entry zone at its reserve")
        Test.expect(zone.freeObjects < reserve, "its entry came from the reserve (\(zone.freeObjects) of \(reserve) left)")
        Test.expect(zone.statistics.failedRefills > failedRefills, "the refill was tried and failed while system pages failed")
        let lowest = zone.statistics.lowestFree
        Zones.refillAll()
        Test.expect(zone.freeObjects >= reserve, "the reserve is refilled afterwards (\(zone.freeObjects) free)")
        Test.diagnostic("map_entry reserve: target \(reserve), lowest level reached \(lowest), deepest use \(zone.statistics.deepestReserveUse)")
        if let address = address { Kmem.free(address, pageSize, in: submap) }
        for object in held { zone.free(object) }
        VMMaps.destroySubmap(submap)
    }

    static func pageableMemoryHasNoPagesUntilTouched() {
        let liveBefore = MemoryObjects.live
        guard let address = Kmem.allocatePageable(1 << 20) else { return Test.fail("kmem_alloc_pageable failed") }
        let entry = KernelMaps.pageable.pointee.map.lookup(address)
        Test.expect(entry != nil && entry!.pointee.kind == .anonymous, "an anonymous entry covers the range")
        if let object = entry?.pointee.object?.assumingMemoryBound(to: MemoryObject.self) {
            Test.expectEqual(object.pointee.pageCount, 256, "object pages")
            Test.expectEqual(object.pointee.residentPages, 0, "resident pages before any touch")
        }
        Test.expect(Pmap.extract(address) == nil && Pmap.extract(address + (1 << 20) - pageSize) == nil, "nothing mapped")
        Test.expectEqual(MemoryObjects.live, liveBefore + 1, "objects alive")
        // A partial free splits the entry; both pieces share the object until both are gone.
        Test.expect(Kmem.freePart(address + 64 * pageSize, 64 * pageSize, in: KernelMaps.pageable, .ordinary), "freePart got its entry")
        Test.expectEqual(MemoryObjects.live, liveBefore + 1, "the object outlives a partial free")
        Kmem.freePageable(address, 64 * pageSize)
        Kmem.freePageable(address + 128 * pageSize, 128 * pageSize)
        Test.expectEqual(MemoryObjects.live, liveBefore, "objects alive after freeing everything")
        expectValid(KernelMaps.pageable)
    }

    /// An object whose page-slot array (4 bytes a page: 8 MiB) is larger than any physically
    /// contiguous block: kmalloc takes it from kmem. Its first and last pages work like any.
    static func pageableObjectOf8GiBWorks() {
        let bytes: UInt64 = 8 << 30
        let liveBefore = MemoryObjects.live, kmemBefore = Kmalloc.kmemBytesInUse
        guard let address = Kmem.allocatePageable(bytes) else { return Test.fail("kmem_alloc_pageable of 8 GiB failed") }
        Test.expect(Kmalloc.kmemBytesInUse >= kmemBefore + 8 << 20, "its slot array came from kmem")
        let last = address + bytes - pageSize
        pointer(at: address).storeBytes(of: 0xF1257, as: UInt64.self)
        pointer(at: last).storeBytes(of: 0x1A57, toByteOffset: Int(pageSize) - 8, as: UInt64.self)
        Test.expectEqual(pointer(at: address).load(as: UInt64.self), UInt64(0xF1257), "first page")
        Test.expectEqual(pointer(at: last).load(fromByteOffset: Int(pageSize) - 8, as: UInt64.self), UInt64(0x1A57), "last page")
        Kmem.freePageable(address, bytes)
        Test.expectEqual(MemoryObjects.live, liveBefore, "objects alive after freeing it")
        Test.expectEqual(Kmalloc.kmemBytesInUse, kmemBefore, "the slot array went back to kmem")
    }

    @inline(never)
    static func freeingWhatWasNeverAllocatedIsCaught() {
        guard let address = Kmem.allocate(4 * pageSize) else { return Test.fail("kmem_alloc failed") }
        Kmem.free(address, 8 * pageSize)   // four pages too many
        Test.fail("freeing past the allocation was not caught")
    }

    static func seededKmemWorkloadKeepsTheMapValid() {
        guard let submap = VMMaps.createSubmap("test-workload", in: KernelMaps.kernelMap, size: 64 << 20) else {
            return Test.fail("could not create a test submap")
        }
        var live: [(VirtualAddress, UInt64)] = []
        live.reserveCapacity(512)
        let freeBefore = PhysicalMemory.freePages
        for _ in 0..<600 {
            let roll = Test.random.next(below: 100)
            if live.count < 400 && (roll < 50 || live.isEmpty) {
                let pages = UInt64(1 + Test.random.next(below: 12))
                if let address = Kmem.allocate(pages * pageSize, in: submap) { live.append((address, pages)) }
            } else {
                let index = Test.random.next(below: live.count)
                let (address, pages) = live[index]
                // Free a random piece: the front, the back or the middle (a split).
                let first = UInt64(Test.random.next(below: Int(pages)))
                let count = UInt64(1 + Test.random.next(below: Int(pages - first)))
                guard Kmem.freePart(address + first * pageSize, count * pageSize, in: submap, .ordinary) else {
                    return Test.fail("an ordinary freePart could not reserve its map entry")
                }
                live.remove(at: index)
                if first > 0 { live.append((address, first)) }
                if first + count < pages { live.append((address + (first + count) * pageSize, pages - first - count)) }
            }
        }
        expectValid(submap)
        for (address, pages) in live { Kmem.free(address, pages * pageSize, in: submap) }
        Test.expectEqual(submap.pointee.map.count, 0, "entries left")
        // What the workload left behind is zone slabs (PV and map entries) kept for reuse.
        Zones.pvEntry.reclaim()
        Zones.mapEntry.reclaim()
        Test.expect(PhysicalMemory.freePages + 2 >= freeBefore, "pages came back (\(freeBefore - min(freeBefore, PhysicalMemory.freePages)) short)")
        Test.diagnostic("seed \(KernelOptions.seed): \(submap.pointee.operations) map operations")
        VMMaps.destroySubmap(submap)
    }
}
