// ZoneTests.swift - slab zone bookkeeping under seeded workloads and a failing page source.
import Testing
@testable import KernelPortable
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A host environment for zones: slabs from posix_memalign, failures by a seeded pattern.
/// Its state is global, so the suite using it is serialized.
enum HostZoneEnvironment: ZoneEnvironment {
    nonisolated(unsafe) static var canGrowNow = true
    nonisolated(unsafe) static var reserves = true
    nonisolated(unsafe) static var faults = FaultInjector()
    /// When set, every slab request fails (the machine is out of memory).
    nonisolated(unsafe) static var exhausted = false
    nonisolated(unsafe) static var slabRequests: [(Requester, Blocking)] = []
    nonisolated(unsafe) static var magazineSlabRequests = 0
    nonisolated(unsafe) static var liveSlabs = Set<Int>()
    nonisolated(unsafe) static var messages: [String] = []
    nonisolated(unsafe) static var depth = 0
    /// How deep the zone lock is held now, and what freeSlab saw when it was called: whether
    /// the lock was held, and the watched zone's count of dynamic slabs at that moment.
    nonisolated(unsafe) static var lockDepth = 0
    nonisolated(unsafe) static var watchedZone: UnsafeMutablePointer<ZoneState>? = nil
    nonisolated(unsafe) static var freesUnderLock = 0
    nonisolated(unsafe) static var dynamicSlabsAtFree: [Int] = []
    /// Allocations inside free paths, as FreePath reported them (the kernel would panic; the
    /// host records, so a test can check what was reported).
    nonisolated(unsafe) static var freePathViolations: [FreePathViolation] = []

    static func reset() {
        canGrowNow = true
        reserves = true
        faults = FaultInjector()
        exhausted = false
        slabRequests = []
        magazineSlabRequests = 0
        liveSlabs = []
        messages = []
        lockDepth = 0
        watchedZone = nil
        freesUnderLock = 0
        dynamicSlabsAtFree = []
        freePathViolations = []
        cacheRequestsAnswered = 0
        ignoreRequests = false
        FreePath.install { freePathViolations.append($0) }
        cpu = 0
        let magazineState = UnsafeMutablePointer<ZoneState>.allocate(capacity: 1)
        magazineState.initialize(to: ZoneState(name: "magazine", objectSize: Magazine.bytes, alignment: 64, slabPages: 1,
                                               reserveTarget: 0, keepEmptySlabs: 0, source: .directMap, debug: []))
        magazineState.pointee.caching = .never
        magazines = magazineState
    }

    /// Slabs the test's zones hold, not counting the magazine zone's.
    static var testSlabs: Int { liveSlabs.count - (magazines?.pointee.slabCount ?? 0) }

    static func lock() { lockDepth += 1 }
    static func unlock(_ token: Void) { lockDepth -= 1 }

    /// The CPU the host's "running thread" is on: a test moves it to play several CPUs.
    nonisolated(unsafe) static var cpu = 0
    nonisolated(unsafe) static var magazines: UnsafeMutablePointer<ZoneState>? = nil
    static func enterCPU() {}
    static func leaveCPU(_ token: Void) {}
    static var cpuIndex: Int { cpu }
    static func checkAllocation(_ zone: UnsafeMutablePointer<ZoneState>) { FreePath.checkAllocation(.zone, zone.pointee.name) }
    static var cpuCount: Int { 4 }
    /// The host plays every CPU on one thread: each other CPU answers at once. Counts the
    /// answers, and can be told to skip them (`ignoreRequests`), to show the zone notices.
    nonisolated(unsafe) static var cacheRequestsAnswered = 0
    nonisolated(unsafe) static var ignoreRequests = false
    static func askOtherCPUs(_ zone: UnsafeMutablePointer<ZoneState>, _ request: CPUCache.Request) {
        precondition(lockDepth > 0, "askOtherCPUs without the zone lock")
        for index in 0..<cpuCount where index != cpu && CPUCache.concerns(request, zone.pointee.caches + index) {
            if ignoreRequests { continue }
            CPUCache.answer(request, zone.pointee.caches + index)
            cacheRequestsAnswered += 1
        }
    }
    static var magazineZone: UnsafeMutablePointer<ZoneState>? { magazines }

    static func allocateSlab(for zone: StaticString, bytes: Int, source: SlabSource, _ context: AllocationContext) -> UnsafeMutableRawPointer? {
        // The magazine zone's growth (ZoneCPUCache.growMagazines) is counted apart.
        if String(describing: zone) == "magazine" { magazineSlabRequests += 1 } else { slabRequests.append((context.requester, context.blocking)) }
        if exhausted || faults.shouldFail(context.requester) { return nil }
        var memory: UnsafeMutableRawPointer? = nil
        guard posix_memalign(&memory, bytes, bytes) == 0, let slab = memory else { return nil }
        liveSlabs.insert(Int(bitPattern: slab))
        return slab
    }

    static func freeSlab(_ memory: UnsafeMutableRawPointer, bytes: Int, source: SlabSource) {
        #expect(liveSlabs.remove(Int(bitPattern: memory)) != nil, "freeSlab of memory the zone never got")
        if lockDepth > 0 { freesUnderLock += 1 }
        if let zone = watchedZone { dynamicSlabsAtFree.append(zone.pointee.statistics.dynamicSlabs) }
        free(memory)
    }

    static var canGrow: Bool { canGrowNow }
    nonisolated(unsafe) static var reservesEnabled: Bool { reserves }
    static var currentThread: UInt64 { 1 }
    static func growthDepth() -> UnsafeMutablePointer<Int> { withUnsafeMutablePointer(to: &depth) { $0 } }
    static func log(_ message: LogMessage) { messages.append(String(decoding: message.bytes, as: UTF8.self)) }
    static func fail(_ message: LogMessage) -> Never { fatalError(String(decoding: message.bytes, as: UTF8.self)) }
}

typealias HostZone = ZoneRef<HostZoneEnvironment>

func makeZone(objectSize: Int, alignment: Int = 8, slabPages: Int = 1, reserve: Int, keepEmpty: Int = 1,
              debug: ZoneDebug = []) -> HostZone {
    let state = UnsafeMutablePointer<ZoneState>.allocate(capacity: 1)
    state.initialize(to: ZoneState(name: "test", objectSize: objectSize, alignment: alignment, slabPages: slabPages,
                                   reserveTarget: reserve, keepEmptySlabs: keepEmpty, source: .directMap, debug: debug))
    return HostZone(state)
}

@Suite(.serialized) struct ZoneTests {
    init() { HostZoneEnvironment.reset() }

    @Test func geometryFitsTheSlab() {
        for size in [8, 24, 48, 64, 100, 256, 2048] {
            for debug: ZoneDebug in [[], .all] {
                let zone = makeZone(objectSize: size, alignment: 16, slabPages: size > 1000 ? 4 : 1, reserve: 0, debug: debug)
                let s = zone.state.pointee
                #expect(s.firstObjectOffset >= MemoryLayout<SlabHeader>.stride + 8 * s.bitmapWords)
                #expect(s.firstObjectOffset + s.objectsPerSlab * s.stride <= s.slabBytes)
                #expect(s.firstObjectOffset + (s.objectsPerSlab + 1) * s.stride > s.slabBytes, "no room left for one more object")
                #expect(s.stride % 16 == 0 && s.firstObjectOffset % 16 == 0)
                #expect(!debug.contains(.doubleFree) || s.bitmapWords * 64 >= s.objectsPerSlab)
            }
        }
    }

    @Test func objectsAreDistinctAlignedAndInTheirSlab() {
        let zone = makeZone(objectSize: 40, alignment: 8, reserve: 0, debug: .all)
        var seen = Set<Int>()
        var objects: [UnsafeMutableRawPointer] = []
        for _ in 0..<500 {
            let object = zone.allocate(.ordinary)!
            #expect(seen.insert(Int(bitPattern: object)).inserted)
            #expect(Int(bitPattern: object) % 8 == 0)
            #expect(zone.slabOf(object).pointee.zone == UnsafeMutableRawPointer(zone.state))
            object.initializeMemory(as: UInt8.self, repeating: 0xEE, count: 40)
            objects.append(object)
        }
        #expect(zone.validate() == nil)
        for object in objects { zone.free(object) }
        #expect(zone.inUse == 0 && zone.validate() == nil)
    }

    @Test func ordinaryAllocationsNeverTakeTheReserve() {
        let zone = makeZone(objectSize: 64, reserve: 10)
        var held: [UnsafeMutableRawPointer] = []
        for _ in 0..<20 { held.append(zone.allocate(.ordinary)!) }
        #expect(zone.freeObjects >= 10, "refills keep the reserve full while memory is available")
        HostZoneEnvironment.exhausted = true
        while let object = zone.allocate(.ordinaryNoWait) { held.append(object) }
        #expect(zone.freeObjects == 10, "ordinary allocations stop exactly at the reserve")
        #expect(zone.statistics.reserveAllocations == 0)
        for _ in 0..<10 { held.append(zone.allocate(.system)!) }
        #expect(zone.freeObjects == 0 && zone.statistics.reserveAllocations == 10)
        #expect(zone.statistics.deepestReserveUse == 10)
        #expect(zone.allocate(.system) == nil, "an empty reserve and no memory: nil, not a wait")
        HostZoneEnvironment.exhausted = false
        zone.free(held.removeLast())
        _ = zone.allocate(.ordinaryNoWait).map { held.append($0) }
        #expect(zone.freeObjects >= 10, "the next allocation refilled the reserve")
        for object in held { zone.free(object) }
        #expect(zone.validate() == nil)
    }

    @Test func growthAsksForPagesUnderTheCallersOwnContext() {
        let zone = makeZone(objectSize: 512, reserve: 4)
        _ = zone.allocate(.ordinary)
        #expect(HostZoneEnvironment.slabRequests.count == 1)
        #expect(HostZoneEnvironment.slabRequests.first.map { $0.0 == .ordinary && $0.1 == .wait } == true, "ordinary growth: ordinary requester, may wait")
        // Ordinary allocations stop at the reserve, so only a reserve-using one can dip below
        // it and set off a refill.
        while zone.freeObjects > 4 { _ = zone.allocate(.ordinaryNoWait) }
        #expect(HostZoneEnvironment.slabRequests.count == 1, "no refill while the reserve is full")
        _ = zone.allocate(.system)
        #expect(HostZoneEnvironment.slabRequests.last.map { $0.0 == .system && $0.1 == .noWait } == true, "refill: system requester, never waits")
        #expect(zone.freeObjects >= 4)
        // Growth by a reserve-using caller happens only when the reserve is empty, and asks
        // under the caller's own context: a system caller never for the pageout tier.
        HostZoneEnvironment.slabRequests = []
        HostZoneEnvironment.exhausted = true
        while zone.allocate(.system) != nil {}
        #expect(!HostZoneEnvironment.slabRequests.isEmpty)
        #expect(HostZoneEnvironment.slabRequests.allSatisfy { $0.0 == .system && $0.1 == .noWait }, "system growth: system requester, never waits")
        HostZoneEnvironment.slabRequests = []
        #expect(zone.allocate(.pageout) == nil)
        #expect(HostZoneEnvironment.slabRequests.allSatisfy { $0.0 == .pageout && $0.1 == .noWait }, "pageout growth: pageout requester, never waits")
        #expect(!HostZoneEnvironment.slabRequests.isEmpty)
    }

    /// Dillon's situation in miniature: steps that keep what they draw (swblocks) must not
    /// spend the reserve while growing would have worked; they draw it only while it would not.
    @Test func growFirstZoneDrawsItsReserveOnlyWhenGrowingFails() {
        for order in [ReserveOrder.drawFirst, .growFirstForPageout] {
            HostZoneEnvironment.reset()
            let zone = makeZone(objectSize: 512, reserve: 6)
            zone.state.pointee.reserveOrder = order
            var held: [UnsafeMutableRawPointer] = [zone.allocate(.ordinary)!]
            while zone.freeObjects > 6 { held.append(zone.allocate(.ordinaryNoWait)!) }
            #expect(zone.freeObjects == 6)
            HostZoneEnvironment.slabRequests = []
            // Memory is there: a grow-first zone grows for the pageout requester and keeps
            // its reserve whole; a draw-first zone draws.
            held.append(zone.allocate(.pageout)!)
            if order == .growFirstForPageout {
                #expect(zone.statistics.reserveAllocations == 0 && zone.freeObjects >= 6, "grew instead of drawing")
                #expect(HostZoneEnvironment.slabRequests.first.map { $0.0 == .pageout } == true, "grew under the pageout context")
            } else {
                #expect(zone.statistics.reserveAllocations == 1, "drew the reserve first")
            }
            // No memory: both draw the reserve, once growing has failed, down to empty.
            while zone.freeObjects > 6 { held.append(zone.allocate(.ordinaryNoWait)!) }
            HostZoneEnvironment.exhausted = true
            let before = zone.statistics.reserveAllocations
            HostZoneEnvironment.slabRequests = []
            while let object = zone.allocate(.pageout) { held.append(object) }
            #expect(zone.freeObjects == 0)
            #expect(zone.statistics.reserveAllocations - before == 6, "the whole reserve carried the pageout requester")
            let pageoutGrowths = HostZoneEnvironment.slabRequests.filter { $0.0 == .pageout }.count
            #expect(pageoutGrowths == (order == .growFirstForPageout ? 7 : 1), "a growth tried before each draw, and at the end")
            HostZoneEnvironment.exhausted = false
            for object in held { zone.free(object) }
            #expect(zone.validate() == nil)
        }
    }

    @Test func reservesOffMeansNoPrivilege() {
        HostZoneEnvironment.reserves = false
        let zone = makeZone(objectSize: 64, reserve: 10)
        _ = zone.allocate(.ordinary)
        HostZoneEnvironment.exhausted = true
        var count = 0
        while zone.allocate(.system) != nil { count += 1 }
        #expect(zone.freeObjects == 0, "with reserves off everything can be taken by anyone")
        #expect(zone.statistics.reserveAllocations == 0)
        // The zone passes the caller's context on unchanged; switching off the page tiers is
        // the page allocator's business (PhysicalMemory.requesterTiersEnabled).
        #expect(HostZoneEnvironment.slabRequests.allSatisfy { $0.0 != .pageout }, "no growth beyond the callers' own contexts")
    }

    @Test func staticSlabsServeBeforeThePageAllocatorExists() {
        HostZoneEnvironment.canGrowNow = false
        let zone = makeZone(objectSize: 48, reserve: 4)
        let perSlab = zone.state.pointee.objectsPerSlab
        for _ in 0..<2 {
            var memory: UnsafeMutableRawPointer? = nil
            _ = posix_memalign(&memory, 4096, 4096)
            zone.addStaticSlab(memory!)
        }
        var ordinary = 0
        while zone.allocate(.ordinaryNoWait) != nil { ordinary += 1 }
        #expect(ordinary == 2 * perSlab - 4)
        var fromReserve = 0
        while zone.allocate(.system) != nil { fromReserve += 1 }
        #expect(fromReserve == 4)
        #expect(zone.statistics.allocationsBeforePageAllocator == UInt64(2 * perSlab))
        #expect(HostZoneEnvironment.slabRequests.isEmpty, "nothing asked the page allocator")
        HostZoneEnvironment.canGrowNow = true
        _ = zone.allocate(.ordinary)
        #expect(zone.statistics.dynamicSlabs > 0)
        #expect(HostZoneEnvironment.messages.contains { $0.contains("2 static slabs in use") && $0.contains("taking dynamic slabs from now on") })
    }

    @Test func aSlabMovesEmptyPartialFullPartialAndBackToEmptyOnlyByReclaim() {
        // A debug check on: no magazine, so every free reaches its slab.
        let zone = makeZone(objectSize: 256, reserve: 0, keepEmpty: 8, debug: .doubleFree)
        let perSlab = zone.state.pointee.objectsPerSlab
        var held = [zone.allocate(.ordinary)!]
        let slab = zone.slabOf(held[0])
        #expect(slab.pointee.list == .partial, "one object in use: partial")
        #expect(zone.state.pointee[list: .partial].head == slab && zone.state.pointee[list: .partial].count == 1)
        while held.count < perSlab { held.append(zone.allocate(.ordinary)!) }
        #expect(held.allSatisfy { zone.slabOf($0) == slab }, "the slab filled before another was taken")
        #expect(slab.pointee.list == .full, "every object in use: full")
        #expect(zone.state.pointee[list: .full].count == 1 && zone.state.pointee[list: .partial].count == 0)
        zone.free(held.removeLast())
        #expect(slab.pointee.list == .partial, "a full slab that frees one object is partial")
        for object in held { zone.free(object) }
        #expect(slab.pointee.list == .partial, "the last free leaves the slab on the partial list")
        #expect(zone.validate() == nil)
        #expect(zone.reclaim() == 0, "keepEmpty 8: nothing released")
        #expect(slab.pointee.list == .empty, "reclaim moves the unused slab to the empty list")
        #expect(zone.state.pointee[list: .empty].head == slab && zone.state.pointee[list: .partial].count == 0)
        #expect(zone.validate() == nil)
    }

    @Test func reclaimReturnsEmptyDynamicSlabsOnly() {
        let zone = makeZone(objectSize: 256, reserve: 0, keepEmpty: 1)
        var memory: UnsafeMutableRawPointer? = nil
        _ = posix_memalign(&memory, 4096, 4096)
        zone.addStaticSlab(memory!)
        var held: [UnsafeMutableRawPointer] = []
        for _ in 0..<100 { held.append(zone.allocate(.ordinary)!) }
        let dynamic = zone.statistics.dynamicSlabs
        #expect(dynamic > 3)
        for object in held { zone.free(object) }
        // One empty slab is kept; the static one counts, and it can never be released.
        let released = zone.reclaim()
        #expect(released == dynamic, "every empty dynamic slab released")
        #expect(zone.statistics.staticSlabs == 1 && zone.state.pointee.empty.count == 1)
        #expect(HostZoneEnvironment.testSlabs == 0)
        _ = zone.allocate(.ordinary)
        #expect(zone.statistics.dynamicSlabs == 0, "the static slab serves again first")
        #expect(zone.validate() == nil)
    }

    @Test func reclaimKeepsTheReserve() {
        let zone = makeZone(objectSize: 256, reserve: 40, keepEmpty: 0)
        let held = (0..<60).map { _ in zone.allocate(.ordinary)! }
        for object in held { zone.free(object) }
        zone.reclaim()
        #expect(zone.freeObjects >= 40)
    }

    /// The reaping pass of the pageout thread, on one zone: three slabs keep one object each,
    /// every other slab is empty. Reclaim must release the empty ones down to what the reserve
    /// (after the partial slabs' free objects) and keepEmpty need, leave the partial slabs and
    /// their objects alone, and free the slabs in a second loop: with the zone lock dropped,
    /// and only after the first loop settled every count.
    @Test(arguments: [40, 60, 120])
    func reclaimCollectsUnderTheLockThenFreesOutsideIt(reserve: Int) {
        let keep = 1
        let zone = makeZone(objectSize: 256, reserve: reserve, keepEmpty: keep)
        let perSlab = zone.state.pointee.objectsPerSlab
        let held = (0..<(perSlab * 12)).map { _ in zone.allocate(.ordinary)! }
        var bySlab: [Int: [UnsafeMutableRawPointer]] = [:]
        for object in held { bySlab[Int(bitPattern: zone.slabOf(object)), default: []].append(object) }
        let partialSlabs = bySlab.keys.sorted().prefix(3)
        var survivors: [UnsafeMutableRawPointer] = []
        for (slab, objects) in bySlab {
            let keepsOne = partialSlabs.contains(slab)
            for (number, object) in objects.enumerated() {
                if keepsOne && number == 0 {
                    object.initializeMemory(as: UInt8.self, repeating: 0xA5, count: 256)
                    survivors.append(object)
                } else {
                    zone.free(object)
                }
            }
        }
        let slabsBefore = zone.state.pointee.slabCount
        let partialFree = 3 * (perSlab - 1)
        let emptiesForReserve = (max(0, reserve - partialFree) + perSlab - 1) / perSlab
        let expectedEmpty = max(keep, emptiesForReserve)

        HostZoneEnvironment.watchedZone = zone.state
        let released = zone.reclaim()
        HostZoneEnvironment.watchedZone = nil

        #expect(released == slabsBefore - 3 - expectedEmpty, "reserve \(reserve): every empty slab but \(expectedEmpty) released")
        #expect(zone.state.pointee.empty.count == expectedEmpty && zone.state.pointee.partial.count == 3)
        #expect(zone.freeObjects >= reserve, "the reserve is still there")
        #expect(zone.freeObjects - perSlab < reserve || zone.state.pointee.empty.count == keep, "and nothing beyond what was to be kept")
        for object in survivors {
            #expect(zone.slabOf(object).pointee.list == .partial, "a partly used slab stays in the zone")
            #expect(UnsafeRawBufferPointer(start: object, count: 256).allSatisfy { $0 == 0xA5 }, "its object is untouched")
        }
        #expect(HostZoneEnvironment.testSlabs == zone.state.pointee.slabCount)
        #expect(HostZoneEnvironment.freesUnderLock == 0, "no slab freed with the zone lock held")
        #expect(HostZoneEnvironment.dynamicSlabsAtFree == Array(repeating: zone.statistics.dynamicSlabs, count: released),
                "every count was settled (loop 1) before the first slab was freed (loop 2)")
        #expect(zone.validate() == nil)
        for object in survivors { zone.free(object) }
    }

    @Test func consistencyCheckSeesWritesAfterFreeAndPastTheEnd() {
        let zone = makeZone(objectSize: 32, reserve: 0, debug: [.poison, .redZone, .doubleFree])
        let a = zone.allocate(.ordinary)!, b = zone.allocate(.ordinary)!
        zone.free(a)
        #expect(zone.validate() == nil)
        a.storeBytes(of: 0x41, toByteOffset: 20, as: UInt8.self)
        #expect(zone.validate().map { String(decoding: $0.bytes, as: UTF8.self).contains("write after free") } == true)
        a.storeBytes(of: ZoneDebug.poisonByte, toByteOffset: 20, as: UInt8.self)
        (b + 32).storeBytes(of: 0, as: UInt8.self)
        #expect(zone.validate().map { String(decoding: $0.bytes, as: UTF8.self).contains("write past the end") } == true)
    }

    @Test func debugOptionsParse() {
        #expect(withByteString("poison,redzone") { ZoneDebug.parse($0) } == [.poison, .redZone])
        #expect(withByteString("all") { ZoneDebug.parse($0) } == .all)
        #expect(withByteString("none") { ZoneDebug.parse($0) } == [])
        #expect(withByteString("poison,bogus") { ZoneDebug.parse($0) } == nil)
    }

    @Test(arguments: [UInt64(1), 7, 99, 2026, 31337])
    func seededWorkloadAgainstModel(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        let sizes = [24, 48, 100, 256, 1000]
        let size = sizes[random.next(below: sizes.count)]
        let reserve = random.next(below: 30)
        // Odd seeds with every debug check, even ones with none (and so with the magazine).
        let zone = makeZone(objectSize: size, alignment: 8, slabPages: size > 500 ? 2 : 1, reserve: reserve,
                            keepEmpty: random.next(below: 3), debug: seed % 2 == 1 ? .all : [])
        HostZoneEnvironment.faults = FaultInjector(pattern: .perMille(300), onlyRequester: nil, seed: seed)
        var live: [UnsafeMutableRawPointer] = []
        var liveSet = Set<Int>()
        for step in 0..<4000 {
            // The "thread" moves between four CPUs, each with its own magazines.
            HostZoneEnvironment.cpu = random.next(below: 4)
            let roll = random.next(below: 100)
            if roll < 55 || live.isEmpty {
                let context: AllocationContext = roll < 10 ? .system : (roll < 30 ? .ordinaryNoWait : .ordinary)
                let freeBefore = zone.freeObjects
                let reserveBefore = zone.statistics.reserveAllocations
                if let object = zone.allocate(context) {
                    #expect(liveSet.insert(Int(bitPattern: object)).inserted, "seed \(seed) step \(step): handed out twice")
                    object.initializeMemory(as: UInt8.self, repeating: UInt8(step & 0xFF), count: size)
                    live.append(object)
                    if !context.mayUseZoneReserves {
                        #expect(freeBefore > reserve || zone.statistics.grows > 0, "seed \(seed) step \(step)")
                        #expect(zone.statistics.reserveAllocations == reserveBefore, "seed \(seed) step \(step): ordinary allocation took the reserve")
                    }
                }
            } else {
                let index = random.next(below: live.count)
                let object = live.remove(at: index)
                liveSet.remove(Int(bitPattern: object))
                zone.free(object)
            }
            #expect(zone.inUse == live.count, "seed \(seed) step \(step)")
            if step % 200 == 0 {
                #expect(zone.validate() == nil, "seed \(seed) step \(step)")
                if random.next(below: 4) == 0 { zone.reclaim() }
            }
        }
        // With memory available again, one allocation refills the reserve completely.
        HostZoneEnvironment.faults = FaultInjector()
        if let object = zone.allocate(.ordinary) { live.append(object) }
        #expect(zone.freeObjects >= reserve, "seed \(seed): reserve refilled once refills can succeed")
        for object in live { zone.free(object) }
        zone.reclaim(keepEmpty: 0)
        #expect(zone.validate() == nil)
        #expect(zone.inUse == 0)
        #expect(HostZoneEnvironment.testSlabs == zone.statistics.dynamicSlabs)
        #expect(zone.freeObjects < reserve + zone.state.pointee.objectsPerSlab, "seed \(seed): reclaim keeps no more than the reserve needs")
    }

    // MARK: - FreePath (in this suite: its state is global, like the environment's)
    // The zone's free paths name themselves, and an allocation attempt inside any free path is
    // reported - before the zone tries anything - with the outermost path.
    @Test func freeAndReclaimAllocateNothing() {
        let zone = makeZone(objectSize: 128, reserve: 8, keepEmpty: 0)
        let held = (0..<500).map { _ in zone.allocate(.ordinary)! }
        for object in held { zone.free(object) }
        #expect(zone.reclaim() > 0, "reclaim released slabs (it ran its free loop)")
        #expect(HostZoneEnvironment.freePathViolations.isEmpty)
        #expect(FreePath.currentDepth == 0 && FreePath.currentPath == .none)
    }

    @Test func anAllocationInsideAFreePathIsReportedWithTheOutermostPath() {
        let zone = makeZone(objectSize: 64, reserve: 0)
        FreePath.enter(.kmemFree)
        FreePath.enter(.pageFree)
        #expect(FreePath.currentPath == .kmemFree, "the outermost path is kept")
        HostZoneEnvironment.exhausted = true   // the attempt fails: it is reported all the same
        let object = zone.allocate(.ordinaryNoWait)
        FreePath.leave()
        #expect(FreePath.currentPath == .kmemFree, "leaving the inner path keeps the outer one")
        FreePath.leave()
        #expect(object == nil)
        #expect(FreePath.currentPath == .none && FreePath.currentDepth == 0)
        let seen = HostZoneEnvironment.freePathViolations
        #expect(seen.count == 1)
        #expect(seen.first?.path == .kmemFree && seen.first?.allocator == .zone)
        #expect(HostZoneEnvironment.slabRequests.isEmpty == false, "the zone went on to try, after the check")
    }

    @Test func allocationsOutsideFreePathsAreNotReported() {
        let zone = makeZone(objectSize: 64, reserve: 0)
        FreePath.enter(.zoneFree)
        FreePath.leave()
        _ = zone.allocate(.ordinary)
        #expect(HostZoneEnvironment.freePathViolations.isEmpty)
    }
}
