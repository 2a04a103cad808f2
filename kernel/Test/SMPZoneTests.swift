// SMPZoneTests.swift - the smp suite's cases for the zones' per-CPU layer: objects a reserve
// user drew and another CPU frees go back to the centre, where the next reserve user looks,
// not into the freeing CPU's magazines (kernel/Mem/Portable/ZoneCPUCache.swift, "Where the
// reserve is"); and magazines taken from CPUs that keep working (ZoneCacheRequests.swift).
// Registered in SMPTests.cases.
//
// Without that rule the pageout thread on one CPU could find a zone's reserve empty while its
// objects sit in another CPU's magazine: the host tests prove the rule on the model, this case
// proves it on the kernel's zones with real CPUs. It runs at every CPU count the smp suite
// boots; at one CPU the "other CPU" is the boot CPU itself, and the central count still tells.

import Synchronization

extension SMPTests {
    static let centralTestFreer = Atomic<Int>(-1)
    /// How many reserve objects the freer is to free; -1 until they are drawn.
    static let centralTestDrawn = Atomic<Int>(-1)

    static func reserveFreedOnAnotherCPUGoesBackToTheCentre() {
        let reserve = 8
        let zone = Zones.create("test-central", objectSize: 64, slabPages: 1, reserve: reserve, keepEmpty: 0)
        var held: [UnsafeMutableRawPointer] = []
        held.reserveCapacity(512)    // the case itself must not need pages while they fail
        let drawn = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: reserve)

        // A slab or two, the reserve filled; then ordinary allocations until the zone refuses
        // them (no page can come), then the reserve drawn on purpose, on this CPU: the centre
        // is empty and short of its line.
        // Another CPU (the last one online) will free what is drawn: its thread is made first,
        // while pages can still be had, and waits for the word.
        let target = SMP.areasUsed - 1
        centralTestFreer.store(-1, ordering: .relaxed)
        centralTestDrawn.store(-1, ordering: .relaxed)
        let freer = Threads.spawn("reserve freer", affinity: .only(target)) {
            var drew = centralTestDrawn.load(ordering: .acquiring)
            while drew < 0 {
                Scheduler.sleep(ticks: 1)
                drew = centralTestDrawn.load(ordering: .acquiring)
            }
            for index in 0..<drew { zone.free(drawn[index]) }
            centralTestFreer.store(PerCPU.this.pointee.index, ordering: .releasing)
        }

        for _ in 0..<2 * reserve { held.append(zone.allocate(.ordinary)!) }
        // No page can come until the check below: the pageout thread, woken by the failures,
        // tops every zone's reserve up (Zones.refillAll) and would give this one a new slab -
        // seen once at 41M with 4 CPUs (63 central objects, the 8 freed in CPU 3's magazines).
        let saved = PhysicalMemory.faultInjector
        PhysicalMemory.faultInjector = FaultInjector(pattern: .everyNth(1), onlyRequester: nil, seed: KernelOptions.seed)
        while let object = zone.allocate(.ordinaryNoWait) { held.append(object) }
        let drew = drawReserve(of: zone, count: reserve, into: drawn)
        Test.expectEqual(drew, reserve, "reserve objects drawn")
        Test.expectEqual(zone.freeObjects, 0, "central free objects once the reserve is drawn")
        Test.expect(zone.state.pointee.centralShort, "the centre is short of its reserve")

        centralTestDrawn.store(drew, ordering: .releasing)
        Threads.join(freer)
        let central = zone.freeObjects
        let short = zone.state.pointee.centralShort
        PhysicalMemory.faultInjector = saved
        Test.expectEqual(centralTestFreer.load(ordering: .acquiring), target, "the CPU that freed the reserve")
        Test.diagnostic("\(drew) reserve objects freed on CPU \(target); central free objects \(central), cached on CPUs \(zone.cachedObjects)")
        Test.expectEqual(central, reserve, "central free objects after the other CPU's frees (not in its magazines)")
        Test.expect(!short, "the centre is back at its line")

        // And this CPU's next reserve user finds them, with no page to be had.
        PhysicalMemory.faultInjector = FaultInjector(pattern: .everyNth(1), onlyRequester: nil, seed: KernelOptions.seed)
        let redrawn = drawReserve(of: zone, count: reserve, into: drawn)
        PhysicalMemory.faultInjector = saved
        Test.expectEqual(redrawn, reserve, "reserve objects the boot CPU drew again")
        for index in 0..<redrawn { zone.free(drawn[index]) }
        for object in held { zone.free(object) }
        zone.check()
        drawn.deallocate()
        held = []
        Zones.destroy(zone)
    }

    static let handoverMismatches = Atomic<Int>(0)
    static let handoverWorkersDone = Atomic<Int>(0)

    /// A zone's CPU slots have no lock (ZoneCPUCache.swift, "Locks"; ZoneCacheRequests.swift):
    /// while a thread on every other CPU allocates and frees as fast as it can, the boot CPU
    /// validates the zone and drains every CPU's magazines, over and over. Each object carries
    /// its holder's stamp from allocation to free, so an object handed to two holders at once
    /// - a drain emptying a magazine its owner was popping - shows as a stamp overwritten, or
    /// as a zone whose counts no longer add up.
    static func magazinesHandedOverWhileTheirCPUsWork() {
        let zone = Zones.create("test-handover", objectSize: 64, slabPages: 1, reserve: 0, keepEmpty: 0)
        let workers = max(1, SMP.areasUsed - 1)
        let rounds = 3_000
        handoverMismatches.store(0, ordering: .relaxed)
        handoverWorkersDone.store(0, ordering: .relaxed)
        var answeredBefore: UInt64 = 0
        for index in 0..<SMP.areasUsed { answeredBefore &+= PerCPU.area(index).pointee.cacheRequestsAnswered }
        var threads: [ThreadRef] = []
        for worker in 0..<workers {
            // One worker per AP; at one CPU the worker shares the boot CPU with the checks.
            let cpu = SMP.areasUsed > 1 ? worker + 1 : 0
            threads.append(Threads.spawn("handover worker", affinity: .only(cpu)) {
                var random = SeededRandom(seed: KernelOptions.seed &+ UInt64(cpu))
                let held = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: 64)
                var count = 0
                var serial: UInt64 = 0
                func release() {
                    count -= 1
                    let object = held[count]
                    let stamp = object.load(fromByteOffset: 8, as: UInt64.self)
                    if stamp != object.load(fromByteOffset: 56, as: UInt64.self) || stamp >> 48 != UInt64(cpu + 1) {
                        handoverMismatches.wrappingAdd(1, ordering: .relaxed)
                    }
                    zone.free(object)
                }
                for _ in 0..<rounds {
                    let target = Int(random.next(below: 64))
                    while count < target {
                        let object = zone.allocate(.ordinary)!
                        serial &+= 1
                        let stamp = UInt64(cpu + 1) << 48 | serial
                        object.storeBytes(of: stamp, toByteOffset: 8, as: UInt64.self)
                        object.storeBytes(of: stamp, toByteOffset: 56, as: UInt64.self)
                        held[count] = object
                        count += 1
                    }
                    while count > target { release() }
                }
                while count > 0 { release() }
                held.deallocate()
                handoverWorkersDone.wrappingAdd(1, ordering: .releasing)
            })
        }
        var checks = 0
        var drains = 0
        while handoverWorkersDone.load(ordering: .acquiring) < workers {
            zone.check()                  // the others hand their magazines over and take them back
            checks += 1
            zone.setCaching(false)        // drainAll: the others hand them over for good
            zone.setCaching(true)
            drains += 1
            if SMP.areasUsed == 1 { Scheduler.yield() }
        }
        for thread in threads { _ = Threads.join(thread) }
        var answered: UInt64 = 0
        for index in 0..<SMP.areasUsed { answered &+= PerCPU.area(index).pointee.cacheRequestsAnswered }
        answered &-= answeredBefore
        Test.diagnostic("seed \(KernelOptions.seed): \(workers) worker(s) x \(rounds) rounds; \(checks) checks and \(drains) drains meanwhile; \(answered) cache requests answered by other CPUs")
        Test.expectEqual(handoverMismatches.load(ordering: .relaxed), 0, "objects whose stamp another holder overwrote")
        Test.expectEqual(zone.inUse, 0, "objects in use once every worker freed its own")
        Test.expect(zone.validate() == nil, "the zone is consistent after the race")
        if SMP.areasUsed > 1 {
            Test.expect(checks > 0 && answered > 0, "the checks and drains asked the working CPUs for their magazines")
        }
        Zones.destroy(zone)
    }

    /// Up to `count` objects drawn from `zone`'s reserve on purpose (a system requester, not
    /// recorded as a path's draw: ReserveDraw.swift) into `objects`; how many it got.
    static func drawReserve(of zone: KernelZone, count: Int, into objects: UnsafeMutablePointer<UnsafeMutableRawPointer>) -> Int {
        ReserveDraws.deliberately { () -> Int in
            var drawn = 0
            while drawn < count, let object = zone.allocate(.system) {
                objects[drawn] = object
                drawn += 1
            }
            return drawn
        }
    }
}
