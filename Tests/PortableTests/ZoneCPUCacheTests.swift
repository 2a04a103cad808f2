// ZoneCPUCacheTests.swift - the zones' CPU layer (kernel/Mem/Portable/ZoneCPUCache.swift) on
// the host: magazines arriving on the free path, each CPU's own magazines, the depot, the
// reserve kept central, frees without a magazine, and the depot's working-set trim. An
// extension of ZoneTests, so that it runs serialized with the other users of the host
// zone environment's globals.

import Testing
@testable import KernelPortable

extension ZoneTests {
    /// The CPU layer (ZoneCPUCache.swift): magazines arrive on the free path, serve pairs,
    /// and a reclaim pass drains them with every slab.
    @Test func cpuMagazinesServePairsAndReclaimEmptiesThem() {
        let zone = makeZone(objectSize: 64, reserve: 0, keepEmpty: 0)
        #expect(zone.state.pointee.caching == .enabled, "no debug checks: the zone has a CPU layer")
        let first = zone.allocate(.ordinary)!
        #expect(zone.state.pointee.caches[0].loaded == nil, "allocation never takes a magazine")
        #expect(HostZoneEnvironment.magazines!.pointee.freeObjects > 0, "the ordinary allocation grew the magazine zone for the next free")
        zone.free(first)
        #expect(zone.state.pointee.caches[0].loaded?.pointee.count == 1, "the free took a magazine and parked the object in it")
        #expect(zone.allocate(.ordinary) == first, "the pair was served by the CPU's magazine")
        zone.free(first)
        #expect(zone.validate() == nil)
        var held: [UnsafeMutableRawPointer] = []
        for _ in 0..<300 { held.append(zone.allocate(.ordinary)!) }
        #expect(zone.validate() == nil)
        for object in held { zone.free(object) }
        #expect(zone.state.pointee.depotFull.count > 0, "full magazines went to the depot")
        #expect(zone.inUse == 0 && zone.statistics.allocations == zone.statistics.frees)
        #expect(zone.validate() == nil)
        let released = zone.reclaim()
        #expect(released > 0)
        #expect(zone.cachedObjects == 0 && zone.state.pointee.depotFull.count == 0 && zone.state.pointee.slabCount == 0,
                "reclaim drained the CPU layer and released every slab")
        #expect(HostZoneEnvironment.testSlabs == 0)
    }

    @Test func eachCPUKeepsItsOwnMagazinesAndTheDepotMovesThem() {
        let zone = makeZone(objectSize: 64, reserve: 0, keepEmpty: 0)
        var held: [UnsafeMutableRawPointer] = []
        for _ in 0..<200 { held.append(zone.allocate(.ordinary)!) }
        for object in held { zone.free(object) }        // on cpu 0
        let parked = zone.cachedObjects
        #expect(parked > 0 && zone.state.pointee.depotFull.count > 0)
        let onCPU0 = zone.state.pointee.caches[0].objects
        HostZoneEnvironment.cpu = 1
        let other = zone.allocate(.ordinary)!
        #expect(zone.state.pointee.caches[1].loaded == nil, "cpu 1 has no magazine until it frees")
        zone.free(other)
        let exchangesBefore = zone.statistics.depotExchanges
        for _ in 0..<40 { _ = zone.allocate(.ordinary)! }
        #expect(zone.statistics.depotExchanges > exchangesBefore, "cpu 1 took a full magazine from the depot")
        #expect(zone.state.pointee.caches[0].objects == onCPU0, "cpu 0's magazines are untouched")
        #expect(zone.validate() == nil)
        HostZoneEnvironment.cpu = 0
    }

    /// A CPU's slot has no lock: another CPU that needs its magazines (a validation, a drain)
    /// asks the owner to hand them over, and a validation gives them back as they were.
    @Test func otherCPUsHandTheirMagazinesOverForValidationAndDrains() {
        let zone = makeZone(objectSize: 64, reserve: 0, keepEmpty: 0)
        HostZoneEnvironment.cpu = 1
        var held: [UnsafeMutableRawPointer] = []
        for _ in 0..<50 { held.append(zone.allocate(.ordinary)!) }
        for object in held { zone.free(object) }
        let onCPU1 = zone.state.pointee.caches[1].objects
        let loaded = zone.state.pointee.caches[1].loaded
        #expect(onCPU1 > 0 && loaded != nil)
        HostZoneEnvironment.cpu = 0
        #expect(zone.validate() == nil)
        #expect(HostZoneEnvironment.cacheRequestsAnswered == 2, "cpu 1 handed its magazines over, then took them back")
        #expect(zone.state.pointee.caches[1].loaded == loaded && zone.state.pointee.caches[1].objects == onCPU1,
                "a validation leaves cpu 1's magazines as they were")
        #expect(zone.state.pointee.caches[1].handedLoaded == nil && zone.state.pointee.caches[1].handedPrevious == nil)
        _ = zone.reclaim()
        #expect(HostZoneEnvironment.cacheRequestsAnswered == 3, "the drain asked cpu 1 once")
        #expect(zone.state.pointee.caches[1].loaded == nil && zone.state.pointee.caches[1].previous == nil && zone.cachedObjects == 0,
                "the drain emptied cpu 1's slot")
        #expect(zone.inUse == 0 && zone.validate() == nil)
        // A slot with nothing in it is not asked.
        #expect(zone.validate() == nil)
        #expect(HostZoneEnvironment.cacheRequestsAnswered == 3)
    }

    /// The reserve is the centre's: no CPU magazine is filled below the line, and while the
    /// centre is short every free goes back to it, not to a magazine.
    @Test func theReserveStaysCentral() {
        let zone = makeZone(objectSize: 64, reserve: 10, keepEmpty: 0)
        let warm = zone.allocate(.ordinary)!
        zone.free(warm)                                  // cpu 0 now has a magazine
        HostZoneEnvironment.exhausted = true
        var held: [UnsafeMutableRawPointer] = []
        while let object = zone.allocate(.ordinaryNoWait) { held.append(object) }
        #expect(zone.freeObjects == 10 && zone.cachedObjects == 0, "ordinary callers took everything above the line, magazines included")
        #expect(zone.statistics.reserveAllocations == 0 && zone.statistics.lowestFree == 10)
        for _ in 0..<3 { held.append(zone.allocate(.system)!) }
        #expect(zone.freeObjects == 7 && zone.state.pointee.centralShort)
        for _ in 0..<3 { zone.free(held.removeLast()) }
        #expect(zone.freeObjects == 10 && zone.cachedObjects == 0, "frees while the centre was short refilled the centre")
        #expect(!zone.state.pointee.centralShort)
        zone.free(held.removeLast())
        #expect(zone.freeObjects == 10 && zone.cachedObjects == 1, "at the line, frees go to the CPU again")
        let again = zone.allocate(.ordinaryNoWait)!
        #expect(zone.freeObjects == 10, "an object from a magazine is nobody's reserve")
        held.append(again)
        #expect(zone.allocate(.ordinaryNoWait) == nil)
        for object in held { zone.free(object) }
        #expect(zone.validate() == nil)
    }

    /// Magazines come from their zone on the free path without growing it: with none free, a
    /// free goes to its slab and asks the page allocator for nothing.
    @Test func aFreeWithoutAMagazineGoesToItsSlab() {
        let zone = makeZone(objectSize: 64, reserve: 0, keepEmpty: 0)
        var held: [UnsafeMutableRawPointer] = []
        for _ in 0..<20 { held.append(zone.allocate(.system)!) }     // system: no magazine growth
        #expect(HostZoneEnvironment.magazines!.pointee.slabCount == 0)
        let requests = HostZoneEnvironment.slabRequests.count + HostZoneEnvironment.magazineSlabRequests
        for object in held { zone.free(object) }
        #expect(HostZoneEnvironment.slabRequests.count + HostZoneEnvironment.magazineSlabRequests == requests, "freeing asked for no memory")
        #expect(zone.cachedObjects == 0 && zone.freeObjects == zone.state.pointee.objectsPerSlab)
        #expect(HostZoneEnvironment.freePathViolations.isEmpty)
        #expect(zone.validate() == nil)
    }

    /// The depot follows the working set: magazines no CPU took since the last trim go back.
    @Test func theDepotIsTrimmedToItsWorkingSet() {
        let zone = makeZone(objectSize: 64, reserve: 0, keepEmpty: 0)
        var held: [UnsafeMutableRawPointer] = []
        for _ in 0..<400 { held.append(zone.allocate(.ordinary)!) }
        for object in held { zone.free(object) }
        let full = zone.state.pointee.depotFull.count
        #expect(full >= 8)
        zone.trimDepotToWorkingSet()                      // sets the interval's starting point
        #expect(zone.state.pointee.depotFull.count == full, "the first trim of an interval keeps what was used")
        for _ in 0..<Magazine.capacity * 4 { held.append(zone.allocate(.ordinary)!) }
        #expect(zone.state.pointee.depotFull.count < full, "the CPU took full magazines from the depot")
        zone.trimDepotToWorkingSet()
        #expect(zone.state.pointee.depotFull.count == 0, "every magazine that sat in the depot all interval was given back")
        #expect(zone.statistics.magazinesReturned > 0)
        #expect(zone.validate() == nil)
    }
}
