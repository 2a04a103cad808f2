// ZoneTests.swift - the slab zones in the kernel: bootstrap, reserves, reclaim, kmalloc, debug.
// (Reaping under memory pressure has its own file, ReapTests.swift; its zone case runs here.)
//
// `zones` runs with the default (no debug checks); `zonedebug` runs the same cases with every
// debug check on, plus one deliberate misuse per check, each expected to panic naming the zone.

enum ZoneTests {
    static var cases: [TestCase] {
        [
            TestCase("seedZonesServedObjectsBeforeThePageAllocator", seedZonesServedObjectsBeforeThePageAllocator),
            TestCase("exhaustedZoneServesOnlyReserveUsersThenRefills", exhaustedZoneServesOnlyReserveUsersThenRefills),
            TestCase("reclaimReturnsEmptySlabsToThePageAllocator", reclaimReturnsEmptySlabsToThePageAllocator),
            TestCase("seededWorkloadNeverHandsOutAnObjectTwice", seededWorkloadNeverHandsOutAnObjectTwice),
            TestCase("freeingNeverAllocates", freeingNeverAllocates),
            TestCase("zonesTableMatchesTheTestsOwnCounts", zonesTableMatchesTheTestsOwnCounts),
            TestCase("kmallocServesEverySizeAndAlignment", kmallocServesEverySizeAndAlignment),
            TestCase("freedMultiPageSlabGivesBackEveryPage", freedMultiPageSlabGivesBackEveryPage),
            TestCase("reapUnderPressureGivesBackEmptySlabsAndKeepsTheReserve", ReapTests.reapUnderPressureGivesBackEmptySlabsAndKeepsTheReserve),
            TestCase("swiftRuntimeAllocatesFromKmalloc", swiftRuntimeAllocatesFromKmalloc),
            TestCase("zoneGrowingIntoItselfIsCaught", expectsPanic: "zone test-recursion: recursive growth",
                     inFrame: "ZoneTests.zoneGrowingIntoItselfIsCaught", zoneGrowingIntoItselfIsCaught),
            TestCase("zoneAllocateInsideAFreePathPanicsNamingTheOutermostPath",
                     expectsPanic: "allocation inside a free path: zone allocate (kmalloc-64) called inside kmem free",
                     inFrame: "ZoneTests.zoneAllocateInsideAFreePathPanicsNamingTheOutermostPath", zoneAllocateInsideAFreePathPanicsNamingTheOutermostPath),
            TestCase("mapEntryReservationInsideAFreePathPanics",
                     expectsPanic: "allocation inside a free path: a map-entry reservation called inside submap destroy",
                     inFrame: "ZoneTests.mapEntryReservationInsideAFreePathPanics", mapEntryReservationInsideAFreePathPanics),
        ]
    }

    /// Without debug checks a zone validates a freed pointer when it leaves the magazine for its
    /// slab (ZoneAllocator.free), not on the fast path: this case shows the flush catching it.
    static var suite: TestSuite {
        TestSuite("zones", cases + [
            TestCase("interiorPointerIsCaughtWhenTheMagazineIsFlushed", expectsPanic: "is not the start of an object",
                     inFrame: "ZoneTests.interiorPointerIsCaughtWhenTheMagazineIsFlushed", interiorPointerIsCaughtWhenTheMagazineIsFlushed),
        ])
    }

    static var debugSuite: TestSuite {
        TestSuite("zonedebug", arguments: "zonedebug=all", cases + [
            TestCase("debugChecksAreOn", debugChecksAreOn),
            TestCase("writeAfterFreeIsCaught", expectsPanic: "zone test-uaf: write after free",
                     inFrame: "ZoneTests.writeAfterFreeIsCaught", writeAfterFreeIsCaught),
            TestCase("writePastTheEndIsCaught", expectsPanic: "zone test-overrun: write past the end of object",
                     inFrame: "ZoneTests.writePastTheEndIsCaught", writePastTheEndIsCaught),
            TestCase("doubleFreeIsCaught", expectsPanic: "zone test-double: double free of object",
                     inFrame: "ZoneTests.doubleFreeIsCaught", doubleFreeIsCaught),
            TestCase("corruptFreeListIsCaughtByTheConsistencyCheck", expectsPanic: "zone test-check: consistency check failed",
                     inFrame: "ZoneTests.corruptFreeListIsCaughtByTheConsistencyCheck", corruptFreeListIsCaughtByTheConsistencyCheck),
            TestCase("foreignPointerFreeIsCaughtAtOnce", expectsPanic: "which is not in one of its slabs",
                     inFrame: "ZoneTests.foreignPointerFreeIsCaughtAtOnce", foreignPointerFreeIsCaughtAtOnce),
            TestCase("interiorPointerFreeIsCaughtAtOnce", expectsPanic: "is not the start of an object",
                     inFrame: "ZoneTests.interiorPointerFreeIsCaughtAtOnce", interiorPointerFreeIsCaughtAtOnce),
            TestCase("buddyDescriptorWrittenAfterItWasGivenBackIsCaught", expectsPanic: "buddy descriptors: a descriptor was written after it was given back",
                     buddyDescriptorWrittenAfterItWasGivenBackIsCaught),
            TestCase("buddyDescriptorGivenBackTwiceIsCaught", expectsPanic: "buddy descriptors: a descriptor given back twice",
                     buddyDescriptorGivenBackTwiceIsCaught),
        ])
    }

    /// zonedebug=poison covers the buddy-descriptor pool: a descriptor given back by a merge
    /// and then written through a stale pointer is caught when the pool hands it out again.
    @inline(never)
    static func buddyDescriptorWrittenAfterItWasGivenBackIsCaught() {
        let buddy = PhysicalMemory.buddy!
        Test.expect(buddy.pointee.descriptors.poisonsFreeDescriptors, "zonedebug=poison poisons the descriptor pool")
        withInterruptsDisabled {
            let stale = buddy.pointee.descriptors.freeList!
            stale.pointee.order = 3                      // a write through a stale pointer
            _ = buddy.pointee.descriptors.take(.aboveReserve)
        }
        Test.fail("the disturbed poison went unnoticed")
    }

    /// Giving back a descriptor that is already in the pool stops the kernel (zonedebug's
    /// doublefree or poison).
    @inline(never)
    static func buddyDescriptorGivenBackTwiceIsCaught() {
        let buddy = PhysicalMemory.buddy!
        withInterruptsDisabled {
            let pooled = buddy.pointee.descriptors.freeList!
            buddy.pointee.descriptors.give(pooled)
        }
        Test.fail("a descriptor given back twice went unnoticed")
    }

    static func seedZonesServedObjectsBeforeThePageAllocator() {
        for zone in [Zones.pvEntry, Zones.mapEntry] {
            let stats = zone.statistics
            Test.expect(stats.allocationsBeforePageAllocator >= 1, "zone \(zone.name) served objects before the page allocator existed")
            Test.expectEqual(stats.staticSlabs, 2, "static slabs of \(zone.name)")
        }
        Test.expectEqual(Zones.swapBlock.statistics.staticSlabs, 0, "swblock has no static slabs")
        Test.expect(Zones.pvEntry.freeObjects >= ReserveBounds.pvEntryReserve, "pv_entry reserve is full")
        Test.expect(Zones.mapEntry.freeObjects >= ReserveBounds.mapEntryReserve, "map_entry reserve is full")
    }

    static func exhaustedZoneServesOnlyReserveUsersThenRefills() {
        let zone = Zones.pvEntry
        let reserve = zone.state.pointee.reserveTarget
        let saved = PhysicalMemory.faultInjector
        let refillsBefore = zone.statistics.refills, failedBefore = zone.statistics.failedRefills
        let deepestBefore = zone.statistics.deepestReserveUse
        var held: [UnsafeMutableRawPointer] = []
        held.reserveCapacity(4096)   // the test itself must not need pages while they fail
        PhysicalMemory.faultInjector = FaultInjector(pattern: .everyNth(1), onlyRequester: nil, seed: KernelOptions.seed)
        while let object = zone.allocate(.ordinaryNoWait) { held.append(object) }
        Test.expectEqual(zone.freeObjects, reserve, "free objects once ordinary allocations are refused")
        // Emptying the reserve is this test's purpose, not a path's need: deliberate draws,
        // neither checked against the bound nor recorded (ReserveDraw.swift).
        ReserveDraws.deliberately {
            for number in 0..<reserve {
                guard let object = zone.allocate(.system) else {
                    Test.fail("system allocation \(number) of \(reserve) failed")
                    break
                }
                held.append(object)
            }
            Test.expectEqual(zone.freeObjects, 0, "free objects after the reserve is used")
            Test.expect(zone.allocate(.system) == nil, "an empty reserve with no pages gives nil, without waiting")
        }
        Test.expect(zone.statistics.failedRefills > failedBefore, "refills were tried and failed")
        PhysicalMemory.faultInjector = saved
        zone.refill()
        Test.expect(zone.freeObjects >= reserve, "the zone refilled to its target once pages came back (\(zone.freeObjects) free)")
        Test.expect(zone.statistics.refills > refillsBefore, "refill counted")
        for object in held { zone.free(object) }
        zone.reclaim()
        Test.diagnostic("held \(held.count) pv entries; deepest reserve use \(zone.statistics.deepestReserveUse)")
        Test.expectEqual(zone.statistics.deepestReserveUse, deepestBefore, "deliberate draws are not recorded")
    }

    static func reclaimReturnsEmptySlabsToThePageAllocator() {
        let zone = Zones.create("test-reclaim", objectSize: 256, slabPages: 1, reserve: 0, keepEmpty: 0)
        var held: [UnsafeMutableRawPointer] = []
        held.reserveCapacity(1500)
        let freeBefore = PhysicalMemory.freePages
        // Splitting blocks for the slabs may grow the buddy-descriptor pool by a page, which
        // the pool keeps (it gives pages back only when reclaimed as a whole): count it apart.
        let descriptorPagesBefore = PhysicalMemory.buddy!.pointee.descriptors.dynamicPages
        for _ in 0..<1500 { held.append(zone.allocate(.ordinary)!) }
        let slabs = zone.state.pointee.slabCount
        let descriptorPages = UInt64(PhysicalMemory.buddy!.pointee.descriptors.dynamicPages - descriptorPagesBefore)
        Test.expectEqual(freeBefore - PhysicalMemory.freePages - descriptorPages, UInt64(slabs), "pages taken by the slabs (and \(descriptorPages) by buddy descriptors)")
        for object in held { zone.free(object) }
        let released = zone.reclaim()
        Test.expectEqual(released, slabs, "empty slabs released")
        Test.expectEqual(PhysicalMemory.freePages, freeBefore - descriptorPages, "free pages after reclaim")
        held = []
        Zones.destroy(zone)
    }

    static func seededWorkloadNeverHandsOutAnObjectTwice() {
        let zone = Zones.create("test-workload", objectSize: 72, slabPages: 1, reserve: 12)
        let capacity = 3000
        let live = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: capacity)
        var count = 0
        for step in 0..<20000 {
            if count < capacity && (count == 0 || Test.random.next(below: 100) < 52) {
                let object = zone.allocate(Test.random.next(below: 10) == 0 ? .system : .ordinary)!
                // Mark the object with its owner's slot; a duplicate would overwrite another's mark.
                object.storeBytes(of: UInt64(count), as: UInt64.self)
                object.storeBytes(of: ~UInt64(count), toByteOffset: 64, as: UInt64.self)
                live[count] = object
                count += 1
            } else {
                let index = Test.random.next(below: count)
                let object = live[index]
                if object.load(as: UInt64.self) != UInt64(index) || object.load(fromByteOffset: 64, as: UInt64.self) != ~UInt64(index) {
                    Test.fail("step \(step): object \(hex: UInt64(UInt(bitPattern: object))) was overwritten: handed out twice?")
                }
                zone.free(object)
                count -= 1
                if index != count {
                    live[index] = live[count]
                    live[index].storeBytes(of: UInt64(index), as: UInt64.self)
                    live[index].storeBytes(of: ~UInt64(index), toByteOffset: 64, as: UInt64.self)
                }
            }
        }
        Test.expect(zone.validate() == nil, "zone consistent after the workload")
        for index in 0..<count { zone.free(live[index]) }
        live.deallocate()
        Test.expectEqual(zone.inUse, 0, "objects in use at the end")
        Test.diagnostic("seed \(KernelOptions.seed): 20000 steps, \(zone.statistics.allocations) allocations")
        Zones.destroy(zone)
    }

    /// Zone free and reclaim under a workload: any allocation inside them panics (the
    /// assertion in every allocator; the expected-panic cases below show it fires).
    /// A kmalloc inside page free inside kmem free: the check fires at zone allocate, before
    /// anything is taken, and names the outermost free path (kmem free).
    @inline(never)
    static func zoneAllocateInsideAFreePathPanicsNamingTheOutermostPath() {
        FreePath.enter(.kmemFree)
        FreePath.enter(.pageFree)
        let object = Kmalloc.zones![Kmalloc.classIndex(for: 64)!].allocate(.system)
        FreePath.leave()
        FreePath.leave()
        Test.fail("an allocation inside a free path was not caught (got \(hex: UInt64(UInt(bitPattern: object))))")
    }

    /// A map-entry reservation inside a free path panics even when the map's stock could serve
    /// it: taking from the stock would leave the next free path without its entry.
    @inline(never)
    static func mapEntryReservationInsideAFreePathPanics() {
        let map = KernelMaps.kmem
        Test.expect(map.pointee.stock.count > 0, "the kmem map has a stocked entry to serve the reservation")
        FreePath.enter(.submapDestroy)
        let taken = VMMaps.reserve(map, 1, .system)
        FreePath.leave()
        if var spares = taken { VMMaps.release(map, &spares) }
        Test.fail("a map-entry reservation inside a free path was not caught")
    }

    static func freeingNeverAllocates() {
        let zone = Zones.create("test-freepath", objectSize: 128, slabPages: 1, reserve: 8)
        var held: [UnsafeMutableRawPointer] = []
        held.reserveCapacity(500)
        for _ in 0..<500 { held.append(zone.allocate(.ordinary)!) }
        for object in held { zone.free(object) }
        let pagesBefore = PhysicalMemory.freePages
        zone.reclaim(keepEmpty: 0)
        Test.expect(PhysicalMemory.freePages > pagesBefore, "reclaim gave slabs back (it ran its free loop)")
        Test.expectEqual(FreePath.currentDepth, 0, "free path depth after returning")
        held = []
        Zones.destroy(zone)
    }

    static func zonesTableMatchesTheTestsOwnCounts() {
        let zone = Zones.create("test-table", objectSize: 40, slabPages: 1, reserve: 0)
        var held: [UnsafeMutableRawPointer] = []
        for _ in 0..<100 { held.append(zone.allocate(.ordinary)!) }
        for _ in 0..<37 { zone.free(held.removeLast()) }
        let stats = zone.statistics
        Test.expectEqual(stats.allocations, UInt64(100), "allocations")
        Test.expectEqual(stats.frees, UInt64(37), "frees")
        Test.expectEqual(zone.inUse, 63, "in use")
        let perSlab = zone.state.pointee.objectsPerSlab
        let slabs = (100 + perSlab - 1) / perSlab
        Test.expectEqual(stats.dynamicSlabs, slabs, "slabs")
        // Free for the zone: the centre's objects and those parked in the CPUs' magazines.
        Test.expectEqual(zone.freeObjects + zone.cachedObjects, slabs * perSlab - 63, "free objects, the centre's and the CPUs'")
        Test.expect(zone.cachedObjects > 0 || zone.state.pointee.caching == .never, "the frees were parked in this CPU's magazines (a zone with debug checks has none)")
        // The table printed at the end of the suite shows this zone; the runner checks each
        // row adds up (in-use + free + cached = slabs x objects per slab).
        Zones.printTable()
        for object in held { zone.free(object) }
        Zones.destroy(zone)
    }

    static func kmallocServesEverySizeAndAlignment() {
        let sizes = [1, 8, 16, 17, 40, 100, 255, 256, 1000, 2048, 2049, 4096, 5000, 40000]
        var blocks: [(UnsafeMutableRawPointer, Int)] = []
        blocks.reserveCapacity(64)
        let largeBefore = Kmalloc.largePagesInUse
        for (number, size) in sizes.enumerated() {
            for alignment in [16, 64, 4096] {
                guard let block = Kmalloc.allocate(size, alignment: alignment) else {
                    Test.fail("kmalloc(\(size), alignment \(alignment)) failed")
                    continue
                }
                Test.expect(UInt(bitPattern: block) % UInt(alignment) == 0, "kmalloc(\(size)) aligned to \(alignment)")
                block.initializeMemory(as: UInt8.self, repeating: UInt8(truncatingIfNeeded: number), count: size)
                blocks.append((block, size))
            }
        }
        for (number, (block, size)) in blocks.enumerated() {
            let expected = UInt8(truncatingIfNeeded: number / 3)
            let bytes = block.assumingMemoryBound(to: UInt8.self)
            Test.expect(bytes[0] == expected && bytes[size - 1] == expected, "block \(number) intact")
            Kmalloc.free(block)
        }
        Test.expectEqual(Kmalloc.largePagesInUse, largeBefore, "large kmalloc pages in use after freeing")
        // Beyond the largest buddy block, kmalloc takes virtually contiguous pages from kmem.
        let kmemBefore = Kmalloc.kmemBytesInUse
        if let big = Kmalloc.allocate(8 << 20, alignment: 16, .ordinaryNoWait) {
            Test.expect(!KernelLayout.isDirectMapped(VirtualAddress(big)), "8 MiB comes from kmem, not the direct map")
            big.storeBytes(of: 0xB16, as: UInt64.self)
            big.storeBytes(of: 0xB16, toByteOffset: (8 << 20) - 8, as: UInt64.self)
            Test.expectEqual(Kmalloc.kmemBytesInUse, kmemBefore + (8 << 20), "kmem bytes in kmalloc's hands")
            Kmalloc.free(big)
        } else {
            Test.fail("an 8 MiB kmalloc failed with \(PhysicalMemory.freePages) pages free")
        }
        Test.expectEqual(Kmalloc.kmemBytesInUse, kmemBefore, "kmem bytes after kfree")
        Test.expect(Kmalloc.allocate(1 << 40, alignment: 16, .ordinaryNoWait) == nil, "1 TiB is more than kmem holds: refused, not a trap")
    }

    static func freedMultiPageSlabGivesBackEveryPage() {
        // Every page of a 4-page slab says .slab and names the slab (kfree finds the zone from
        // any of them); once the slab is freed none may: a stale tail would send the kfree of
        // whatever reuses that page to a dead slab.
        let zone = Zones.create("test-slabuse", objectSize: 512, slabPages: 4, reserve: 0, keepEmpty: 0)
        let object = zone.allocate(.ordinary)!
        let slabBytes = UInt64(zone.state.pointee.slabBytes)
        let head = PhysicalMemory.index(of: PhysicalWindow.physicalAddress(of: object).roundedDown(to: slabBytes))!
        let memory = PhysicalMemory.pointer(to: head)
        let pages = Int(slabBytes / pageSize)
        Test.expectEqual(pages, 4, "pages in the slab")
        for number in 0..<pages {
            let page = PageIndex(head.int + number)
            Test.expect(PhysicalMemory.use(of: page) == .slab && PhysicalMemory.slabHeader(of: page) == memory,
                        "page \(number) of the slab is \(PhysicalMemory.use(of: page).name) and names its slab")
        }
        zone.free(object)
        Zones.destroy(zone)
        for number in 0..<pages {
            let page = PageIndex(head.int + number)
            Test.expect(PhysicalMemory.use(of: page) != .slab && PhysicalMemory.slabHeader(of: page) == nil,
                        "page \(number) of the freed slab is \(PhysicalMemory.use(of: page).name), no longer the slab's")
        }
        Test.expect(PhysicalMemory.buddy!.pointee.isConsistent(), "buddy invariants hold")
    }

    static func swiftRuntimeAllocatesFromKmalloc() {
        var values: [UInt64] = []
        for value in 0..<64 { values.append(UInt64(value)) }
        let address = values.withUnsafeBufferPointer { VirtualAddress($0.baseAddress!) }
        Test.expect(KernelLayout.isDirectMapped(address), "a Swift array's storage at \(hex: address) comes from kmalloc (direct map)")
        Test.expectEqual(values.reduce(0, +), UInt64(63 * 64 / 2), "array contents")
    }

    @inline(never)
    static func zoneGrowingIntoItselfIsCaught() {
        let zone = Zones.create("test-recursion", objectSize: 64, slabPages: 1, reserve: 0)
        // This thread is (as far as the zone can tell) in the middle of growing it, and asks it
        // for an object that needs another slab: the recursion the map_entry zone would have
        // if its slabs needed map entries.
        zone.state.pointee.growingThread = KernelZoneEnvironment.currentThread
        _ = zone.allocate(.ordinary)
        Test.fail("the recursive growth was not caught")
    }

    static func debugChecksAreOn() {
        Test.expect(Zones.debug == .all, "zonedebug=all reached the zones")
        Test.expect(Zones.pvEntry.state.pointee.debug == .all, "pv_entry has every check on")
        Zones.checkAll()
    }

    @inline(never)
    static func writeAfterFreeIsCaught() {
        let zone = Zones.create("test-uaf", objectSize: 64, slabPages: 1, reserve: 0)
        let object = zone.allocate(.ordinary)!
        zone.free(object)
        object.storeBytes(of: 0xBAD, toByteOffset: 32, as: UInt64.self)   // the bug
        _ = zone.allocate(.ordinary)                                                   // the same object comes back
        Test.fail("the write after free was not caught")
    }

    @inline(never)
    static func writePastTheEndIsCaught() {
        let zone = Zones.create("test-overrun", objectSize: 64, slabPages: 1, reserve: 0)
        let object = zone.allocate(.ordinary)!
        object.storeBytes(of: 0, toByteOffset: 64, as: UInt8.self)            // one byte too far
        zone.free(object)
        Test.fail("the write past the end was not caught")
    }

    @inline(never)
    static func doubleFreeIsCaught() {
        let zone = Zones.create("test-double", objectSize: 64, slabPages: 1, reserve: 0)
        let object = zone.allocate(.ordinary)!
        zone.free(object)
        zone.free(object)
        Test.fail("the double free was not caught")
    }

    @inline(never)
    static func corruptFreeListIsCaughtByTheConsistencyCheck() {
        let zone = Zones.create("test-check", objectSize: 64, slabPages: 1, reserve: 0, debug: [.doubleFree])
        let a = zone.allocate(.ordinary)!, b = zone.allocate(.ordinary)!
        zone.free(a)
        // Mark the free object allocated in its slab's bitmap: the lists and the bitmap disagree.
        let slab = zone.slabOf(b)
        let bitmap = (UnsafeMutableRawPointer(slab) + MemoryLayout<SlabHeader>.stride).assumingMemoryBound(to: UInt64.self)
        bitmap[0] |= 1
        zone.check()
        Test.fail("the inconsistency was not caught")
    }

    /// zonedebug=check (no magazine): a pointer into another zone's slab is refused by the free itself.
    @inline(never)
    static func foreignPointerFreeIsCaughtAtOnce() {
        let zone = Zones.create("test-foreign", objectSize: 64, slabPages: 1, reserve: 0, debug: [.check])
        let other = Zones.create("test-other", objectSize: 64, slabPages: 1, reserve: 0, debug: [.check])
        let object = other.allocate(.ordinary)!
        zone.free(object)                                                  // the bug: the wrong zone
        Test.fail("the free of another zone's object was not caught")
    }

    /// zonedebug=check (no magazine): a pointer into the middle of an object is refused by the free itself.
    @inline(never)
    static func interiorPointerFreeIsCaughtAtOnce() {
        let zone = Zones.create("test-interior", objectSize: 64, slabPages: 1, reserve: 0, debug: [.check])
        let object = zone.allocate(.ordinary)!
        zone.free(object + 8)                                              // the bug: not the object's start
        Test.fail("the free of an interior pointer was not caught")
    }

    /// No debug checks: the magazine takes the interior pointer unexamined, and the flush (here
    /// a reclaim pass; also a full magazine) validates it and stops the kernel.
    @inline(never)
    static func interiorPointerIsCaughtWhenTheMagazineIsFlushed() {
        let zone = Zones.create("test-flush", objectSize: 64, slabPages: 1, reserve: 0)
        let object = zone.allocate(.ordinary)!
        zone.free(object + 8)                                              // the bug: accepted into the magazine
        zone.reclaim()
        Test.fail("the interior pointer was not caught when the magazine was flushed")
    }
}
