// ReserveBoundTests.swift - every chain of ReserveBounds driven to its bound, and one below.
//
// Each case builds one situation of docs/reserves.md section 3 with the kernel's real paths:
// dirty pages taken the way the pageout thread takes them and written with
// SwapPager.pageOut, the zones and free_min set so that the reserve under test is the only
// thing between the step and failure. A reserve at its bound carries the chains through, and
// its deepest draw - recorded and checked at run time - is exactly the bound; one below, the
// step fails with that reserve's shortage. The map_entry reserve is the exception: its last
// draws only top the map stocks up, and a stock one short fails nothing (the entry a window
// gives back fills it again), so there "one below" is shown by the run-time check: set to
// bound - 1, the same chains panic. Every number comes from ReserveBounds.
//
// What a case sets up is no path's need and is done inside ReserveDraws.deliberately: the
// reserve line of each zone (its reserveTarget) is moved to the level under test, the objects
// above it are held by ordinary allocations, free_min is moved and the pages above it held.
// The map stocks are flushed (empty: the worst case - every top-up then draws). Where a case
// counts the pages of the pageout thread's entry top-ups (Zones.topUpEntryReserves), the
// entry zones start one object short of their lines, so that each top-up has to take its
// page. The next
// kmem slab is placed where its page directory and page table are both missing, so a growth
// needs the two table pages the derivation counts. The entry zones' refills are held off
// where a case says so - as failed refills would be - by marking them running. Everything is put back afterwards; the deepest draws keep their maxima.

enum ReserveBoundTests {
    static var suite: TestSuite { TestSuite("reservebound", diskMiB: 8, cases) }

    /// The same cases with 4 CPUs, at one size: the bounds hold for N CPUs with the values
    /// derived for one (docs/reserves.md, "N CPUs"). A suite of its own so that the panic
    /// cases, which boot a suite's last CPU count, do not boot 4 CPUs at every size.
    static var smpSuite: TestSuite { TestSuite("reservebound-smp", memory: "24M", diskMiB: 8, cpus: "4", cases) }

    static var cases: [TestCase] {
        [
            TestCase("swblockBoundCarriesPageoutToTheStepThatGrowsTheZone", {
                stepsBeforeGrowth(swapBlocks: ReserveBounds.bound.swapBlocks, writesInFlight: ReserveBounds.pageoutWritesInFlight)
            }),
            TestCase("swblockBoundLessOneStopsTheStepThatMustGrow", {
                stepsBeforeGrowth(swapBlocks: ReserveBounds.bound.swapBlocks - 1, writesInFlight: ReserveBounds.pageoutWritesInFlight)
            }),
            // Writes waited for: the steps before a growth are stepsWithoutPages. The bound's
            // extra swblocks are the writes in flight's, and no less would do for them.
            TestCase("waitedForWritesNeedStepsWithoutPagesSwblocks", {
                stepsBeforeGrowth(swapBlocks: ReserveBounds.stepsWithoutPages, writesInFlight: 1)
            }),
            TestCase("waitedForWritesWithOneLessStopTheStepThatMustGrow", {
                stepsBeforeGrowth(swapBlocks: ReserveBounds.stepsWithoutPages - 1, writesInFlight: 1)
            }),
            TestCase("pageBoundGrowsTheSwblockZoneInsideAStep", { growthInAStep(pages: ReserveBounds.bound.pages) }),
            TestCase("pageBoundLessOneCannotGrowIt", { growthInAStep(pages: ReserveBounds.bound.pages - 1) }),
            TestCase("entryBoundsCarryTheStepTheGrowthAndARefillAtOnce", {
                everyChainAtOnce(pvEntries: ReserveBounds.bound.pvEntries, mapEntries: ReserveBounds.bound.mapEntries)
            }),
            TestCase("pvEntryBoundLessOneLeavesTheWindowUnmapped", {
                everyChainAtOnce(pvEntries: ReserveBounds.bound.pvEntries - 1, mapEntries: ReserveBounds.bound.mapEntries)
            }),
            // The map_entry bound's last draws only top the map stocks up, which give way
            // without failing anything: one below, it is the run-time check that fails.
            TestCase("mapEntryBoundLessOneIsExceededByEveryChainAtOnce", expectsPanic: "zone map_entry: reserve draw", inFrame: "noteReserveDraw", {
                Zones.mapEntry.state.pointee.reserveBound = ReserveBounds.bound.mapEntries - 1
                everyChainAtOnce(pvEntries: ReserveBounds.bound.pvEntries, mapEntries: ReserveBounds.bound.mapEntries)
                Test.fail("the draws stayed within the bound less one")
            }),
            TestCase("entryTopUpsKeepGrowthsInARowOneGrowthDeep", { growthsInARow(topUps: true) }),
            // Without the top-ups the draws of each growth stay drawn until a system refill
            // succeeds, which none can below free_min: the run-time check stops the kernel.
            TestCase("withoutEntryTopUpsGrowthsInARowDrawBeyondTheBound", expectsPanic: "reserve draw", inFrame: "noteReserveDraw", {
                growthsInARow(topUps: false)
                Test.fail("growths in a row without top-ups stayed within the bounds")
            }),
            TestCase("zoneGrowthAtDepthTwoTakesEverySlabFromThePageoutTier", { growthAtDepthTwo(pages: ReserveBounds.boundWithoutZoneReserves.pages) }),
            TestCase("zoneGrowthAtDepthTwoWithOnePageLessFails", { growthAtDepthTwo(pages: ReserveBounds.boundWithoutZoneReserves.pages - 1) }),
            TestCase("aZoneDrawOneBeyondItsBoundPanics", expectsPanic: "reserve draw", inFrame: "noteReserveDraw", zoneDrawBeyondTheBound),
            TestCase("aPageDrawOneBeyondItsBoundPanics", expectsPanic: "below free_min is beyond its derived bound", inFrame: "PhysicalMemory.noteAllocation",
                     pageDrawBeyondTheBound),
        ]
    }

    static var zones: [KernelZone] { [Zones.swapBlock, Zones.mapEntry, Zones.pvEntry] }

    // MARK: - The cases

    /// The pageout thread with no free page at all: it takes steps that need no page, each
    /// keeping a swblock and freeing its page - the first ones' pages taken by its top-ups of
    /// the entry zones - until it has the pages to grow the swblock zone. free_min sits at the
    /// page bound (its floor), so the top-ups and the growth draw exactly that many pages
    /// below it.
    ///
    /// With `writesInFlight` above 1 each step's write is left in flight as the pageout thread
    /// leaves it (PageoutRequests.swift), and a step's page comes back only when a later step
    /// needs its request slot: the write ends then (the test holds the completions, so the
    /// disk's speed does not matter). That is the latest a page can come back, and the
    /// `writesInFlight - 1` extra steps keep their swblocks meanwhile
    /// (ReserveBounds.stepsBeforeGrowth).
    static func stepsBeforeGrowth(swapBlocks: Int, writesInFlight: Int) {
        let bound = ReserveBounds.bound
        if writesInFlight > 1 && !WritesInFlightTests.slotsAreThere() { return }
        let drawingSteps = ReserveBounds.stepsWithoutPages + writesInFlight - 1
        let steps = drawingSteps + 1
        let expectedWritten = swapBlocks >= drawingSteps ? steps : swapBlocks
        let scene = Scene(pages: steps)
        scene.set(freeMin: bound.pages, pagesFree: 0,
                  zones: [swapBlocks, bound.mapEntries, bound.pvEntries], entryLines: .oneShort)
        var written = 0
        var last = PageOutResult.written
        PageoutRequests.holdCompletions = writesInFlight > 1
        for number in 0..<steps {
            last = writesInFlight > 1 ? scene.startPageOut(number) : scene.pageOut(number)
            guard last == .written else { break }
            written += 1
        }
        while PageoutRequests.endOldestHeld() {}
        PageoutRequests.holdCompletions = false
        let drawn = scene.finish()
        Test.expectEqual(written, expectedWritten, "steps written with \(swapBlocks) swblocks in reserve (the last ended '\(last.name)')")
        if expectedWritten == steps {
            Test.expectEqual(drawn.swapBlocks, drawingSteps, "deepest swblock draw")
            Test.expectEqual(drawn.pages, bound.pages, "deepest draw below free_min (the growth)")
        } else {
            Test.expect(last == .noMetadata, "the step that must grow ended '\(last.name)', expected '\(PageOutResult.noMetadata.name)'")
        }
    }

    /// One step whose swblock zone is empty, with both entry zones short of their lines: it
    /// tops them up and grows the zone from `pages` pages below free_min (free_min at `pages`,
    /// every page above it held). The top-ups come first, so the growth's entries come from
    /// above the lines they restored.
    static func growthInAStep(pages: Int) {
        let bound = ReserveBounds.bound
        let scene = Scene(pages: 1)
        scene.set(freeMin: pages, pagesFree: pages, zones: [0, bound.mapEntries, bound.pvEntries], entryLines: .oneShort)
        let result = scene.pageOut(0)
        let drawn = scene.finish()
        if pages >= ReserveBounds.pageoutEntryTopUp.pages + ReserveBounds.pageoutZoneGrowth.pages {
            Test.expect(result == .written, "the step ended '\(result.name)' with \(pages) pages below free_min")
            Test.expectEqual(drawn.pages, pages, "deepest draw below free_min")
            Test.expectEqual(drawn.mapEntries, 0, "map entries drawn below the line: the top-up restored it before the window and the growth")
            Test.expectEqual(drawn.pvEntries, 0, "PV entries drawn below the line: the top-up restored it before the window and the growth")
        } else {
            Test.expect(result == .noMetadata, "the step ended '\(result.name)' with \(pages) pages below free_min, expected '\(PageOutResult.noMetadata.name)'")
        }
    }

    /// The step grows the swblock zone (pageout tier), which leaves it below its reserve, so a
    /// refill follows (system tier, free_min at 0 so that it finds the pages the growth left);
    /// then the window. The entry zones' own refills fail (held off), so every draw stays
    /// drawn: the map_entry and pv_entry reserves reach their bounds.
    static func everyChainAtOnce(pvEntries: Int, mapEntries: Int) {
        let bound = ReserveBounds.bound
        let scene = Scene(pages: 1)
        let pages = ReserveBounds.pageoutZoneGrowth.pages + ReserveBounds.swapBlockSlabPages
        // A reserve one slab deep: the growth's slab, less the object it hands out, leaves the
        // zone below it, and one refill slab fills it.
        let slab = Zones.swapBlock.state.pointee.objectsPerSlab
        scene.set(freeMin: 0, pagesFree: pages, zones: [0, mapEntries, pvEntries], swapBlockLine: slab, entryRefills: .failing)
        let result = scene.pageOut(0)
        let stock = KernelMaps.pager.pointee.stock.count
        let drawn = scene.finish()
        Test.expect(Zones.swapBlock.statistics.refills > scene.swapBlockRefillsBefore, "the growth was followed by a refill")
        if pvEntries < bound.pvEntries {
            Test.expect(result == .noWindow, "the step ended '\(result.name)' with \(pvEntries) PV entries, expected '\(PageOutResult.noWindow.name)'")
            Test.expectEqual(drawn.pvEntries, pvEntries, "every PV entry drawn")
            return
        }
        Test.expect(result == .written, "the step ended '\(result.name)'")
        Test.expectEqual(drawn.pvEntries, bound.pvEntries, "deepest pv_entry draw")
        Test.expectEqual(stock, KernelMaps.pager.pointee.stockTarget, "the pager map's stock full")
        Test.expectEqual(drawn.mapEntries, bound.mapEntries, "deepest map_entry draw")
    }

    /// Several growths in a row, one per step, with no page above free_min - so no system
    /// refill can give the entry reserves back - as the pageout thread meets them when it
    /// starts from no free page at large memory, a slab of steps apart (the gap found at
    /// 1500M, docs/reserves.md). Before each step the pages a top-up and a growth need are
    /// free (what the steps between two growths free) and the swblock zone is at its line, so
    /// every step grows it. The entry zones keep the kernel's real reserve lines, twice their
    /// bounds, so that a pile-up reaches the run-time check before it empties a zone. With the
    /// top-ups each growth finds the last one's entries given back; without them
    /// (`topUps: false`) the draws pile up until the check stops the kernel.
    static func growthsInARow(topUps: Bool) {
        let growths = 4
        let perStep = ReserveBounds.pageoutEntryTopUp.pages + ReserveBounds.pageoutZoneGrowth.pages
        let scene = Scene(pages: growths)
        scene.set(freeMin: perStep, pagesFree: perStep, zones: [1, ReserveBounds.mapEntryReserve, ReserveBounds.pvEntryReserve])
        Zones.pageoutTopsUpEntryZones = topUps
        let swblocks = Zones.swapBlock.statistics
        func toppedUp() -> UInt64 {
            [Zones.mapEntry, Zones.pvEntry].reduce(0) { $0 + $1.statistics.refills - $1.statistics.failedRefills }
        }
        let toppedUpBefore = toppedUp()
        var written = 0
        var last = PageOutResult.written
        for number in 0..<growths {
            scene.setFreePages(perStep)
            scene.holdSwapBlocksAboveTheLine()
            last = scene.pageOut(number)
            guard last == .written else { break }
            written += 1
        }
        Zones.pageoutTopsUpEntryZones = true
        let grown = (Zones.swapBlock.statistics.grows - Zones.swapBlock.statistics.growFailures) - (swblocks.grows - swblocks.growFailures)
        let refilled = toppedUp() - toppedUpBefore
        let drawn = scene.finish()
        Test.diagnostic("\(growths) steps: \(written) written, \(grown) growths, \(refilled) entry refills that succeeded; deepest draws map_entry \(drawn.mapEntries) pv_entry \(drawn.pvEntries) pages \(drawn.pages)")
        Test.expectEqual(written, growths, "steps written (the last ended '\(last.name)')")
        Test.expectEqual(grown, UInt64(growths), "swblock growths, one per step")
        Test.expect(drawn.mapEntries > 0 && drawn.pvEntries > 0, "the growths never drew the entry reserves: the case shows nothing")
        // No system refill can succeed here (no page above free_min): these are the top-ups.
        Test.expectEqual(refilled, 2, "entry zones refilled (each topped up once, after the first growth drew it)")
    }

    /// The zone reserves emptied (as with reserves= without zones): the swblock zone's growth
    /// finds the map_entry and pv_entry zones empty too and grows them inside itself - depth 2
    /// - every slab from the pageout tier.
    static func growthAtDepthTwo(pages: Int) {
        let scene = Scene(pages: 1)
        scene.set(freeMin: pages, pagesFree: pages, zones: [0, 0, 0])
        let pageBound = PhysicalMemory.pageoutDrawBound
        PhysicalMemory.pageoutDrawBound = ReserveBounds.boundWithoutZoneReserves.pages
        let chainBefore = ZoneGrowth.deepestChain
        ZoneGrowth.deepestChain = 0
        let result = scene.pageOut(0)
        let chain = ZoneGrowth.deepestChain
        ZoneGrowth.deepestChain = max(chainBefore, chain)
        PhysicalMemory.pageoutDrawBound = pageBound
        let drawn = scene.finish()
        // These page draws were checked against the bound without zone reserves; the record
        // the boot's other draws are checked against keeps its own maximum.
        PhysicalMemory.statistics.pageout.deepestReserveUse = scene.savedPageDeepest
        if pages >= ReserveBounds.boundWithoutZoneReserves.pages {
            Test.expect(result == .written, "the step ended '\(result.name)' with \(pages) pages below free_min")
            Test.expectEqual(chain, ReserveBounds.zoneGrowthChain, "zone growth chain")
            Test.expectEqual(drawn.pages, pages, "deepest draw below free_min")
        } else {
            Test.expect(result == .noMetadata, "the step ended '\(result.name)' with \(pages) pages below free_min, expected '\(PageOutResult.noMetadata.name)'")
        }
    }

    /// The map_entry zone at its reserve line, then one privileged draw more than its bound.
    static func zoneDrawBeyondTheBound() {
        let zone = Zones.mapEntry
        var held: UnsafeMutableRawPointer? = nil
        while zone.freeObjects > zone.state.pointee.reserveTarget, let object = zone.allocate(.ordinaryNoWait) { push(object, onto: &held) }
        // Its refills fail (as when no page is above free_min): marked running, none starts.
        zone.state.pointee.refilling = true
        for _ in 0..<zone.state.pointee.reserveBound { push(zone.allocate(.system)!, onto: &held) }
        Test.diagnostic("drew \(zone.state.pointee.reserveBound) map entries, the bound; one more must panic")
        push(zone.allocate(.system)!, onto: &held)
        Test.fail("a draw beyond the bound did not panic")
    }

    /// Every page above free_min held, then pageout-tier pages one more than the bound.
    static func pageDrawBeyondTheBound() {
        let held = PhysicalMemoryTests.PageBitmap(pages: PhysicalMemory.pageCount)
        _ = PhysicalMemoryTests.drain(.system, into: held)
        for _ in 0..<PhysicalMemory.pageoutDrawBound { _ = held.insert(PhysicalMemory.allocate(order: 0, .pageout)!) }
        Test.diagnostic("drew \(PhysicalMemory.pageoutDrawBound) pages below free_min, the bound; one more must panic")
        _ = held.insert(PhysicalMemory.allocate(order: 0, .pageout)!)
        Test.fail("a draw beyond the bound did not panic")
    }

    // MARK: - The scene

    static func push(_ object: UnsafeMutableRawPointer, onto list: inout UnsafeMutableRawPointer?) {
        object.storeBytes(of: list, as: UnsafeMutableRawPointer?.self)
        list = object
    }

    /// Where the entry zones' reserve lines sit against their free objects.
    enum EntryLines {
        case met
        /// One object short, so that the pageout thread's top-ups each take a page.
        case oneShort
    }

    enum EntryRefills {
        case asUsual
        /// Held off by marking them running, as if their pages had failed.
        case failing
    }

    /// Dirty pages ready to be written, and everything a case changes, to be put back.
    final class Scene {
        struct Dirty {
            let address: VirtualAddress
            let page: PageIndex
            let object: ObjectRef
        }

        var dirty: [Dirty] = []
        let heldPages: PhysicalMemoryTests.PageBitmap
        var heldObjects: [UnsafeMutableRawPointer?] = [nil, nil, nil]
        var fillers: [(VirtualAddress, UInt64)] = []
        var savedLines: [Int] = []
        var savedDeepest: [Int] = []
        var savedThresholds = PhysicalMemory.thresholds
        var savedPageDeepest: UInt64 = 0
        var entryRefills = EntryRefills.asUsual
        var swapBlockRefillsBefore: UInt64 = 0
        /// How far below its line each entry zone starts (EntryLines).
        var entryShortfall = 0

        /// `pages` dirty pages, each of its own object (so each needs its own swblock), taken
        /// off their queues and unmapped as the pageout thread does before it writes a page.
        init(pages: Int) {
            // The worst case the bounds are about: the CPU running the chain has nothing in its
            // magazines (they are never the reserve: ZoneCPUCache.swift). So the reserve zones'
            // CPU layer is drained and off for the scene, and every object it counts is the
            // centre's.
            for zone in ReserveBoundTests.zones { zone.setCaching(false) }
            heldPages = PhysicalMemoryTests.PageBitmap(pages: PhysicalMemory.pageCount)
            dirty.reserveCapacity(pages)
            fillers.reserveCapacity(64)
            for number in 0..<pages {
                guard let address = Kmem.allocatePageable(pageSize) else {
                    Test.fail("kmem_alloc_pageable failed")
                    break
                }
                pointer(at: address).storeBytes(of: 0x5EED_0000 | KernelOptions.seed &+ UInt64(number), as: UInt64.self)
                let page = PhysicalMemory.index(of: Pmap.extract(address)!)!
                let object = PhysicalMemory.pageable(page).pointee.object!.assumingMemoryBound(to: MemoryObject.self)
                withInterruptsDisabled {
                    PageQueues.claim(page)
                    Pmap.removeAll(page)
                }
                dirty.append(Dirty(address: address, page: page, object: object))
            }
        }

        /// free_min at `freeMin`, `pagesFree` pages free (every other page held), each zone's
        /// reserve line at `zones[i]` (swblock, map_entry, pv_entry) with exactly that many
        /// objects free - except the swblock zone's line, which may sit higher
        /// (`swapBlockLine`) than its free objects.
        func set(freeMin: Int, pagesFree: Int, zones levels: [Int], swapBlockLine: Int? = nil,
                 entryLines: EntryLines = .met, entryRefills: EntryRefills = .asUsual) {
            // The fillers' reservations top the kmem stock up: flushed after them.
            placeNextSlabWhereTablesAreMissing()
            VMMaps.flushStock(KernelMaps.pager)
            VMMaps.flushStock(KernelMaps.kmem)
            let zones = ReserveBoundTests.zones
            // Enough free objects in each zone first (growing while pages exist).
            for (zone, wanted) in zip(zones, levels) {
                var grown: UnsafeMutableRawPointer? = nil
                while zone.freeObjects < wanted, let object = zone.allocate(.ordinary) { push(object, onto: &grown) }
                while let object = grown {
                    grown = object.load(as: UnsafeMutableRawPointer?.self)
                    zone.free(object)
                }
            }
            ReserveDraws.deliberately {
                savedThresholds = PhysicalMemory.thresholds
                PhysicalMemory.thresholds.freeMin = UInt64(freeMin)
                while PhysicalMemory.freePages > UInt64(pagesFree), let page = PhysicalMemory.allocate(order: 0, .pageout) {
                    _ = heldPages.insert(page)
                }
                for (index, (zone, wanted)) in zip(zones, levels).enumerated() {
                    savedLines.append(zone.state.pointee.reserveTarget)
                    zone.state.pointee.setReserveTarget(wanted)
                    while zone.freeObjects > wanted, let object = zone.allocate(.ordinaryNoWait) { push(object, onto: &heldObjects[index]) }
                    Test.expectEqual(zone.freeObjects, wanted, "free objects left in \(zone.name)")
                }
            }
            keepSpareDescriptors()
            Test.expectEqual(PhysicalMemory.freePages, UInt64(pagesFree), "free pages")
            if let line = swapBlockLine { Zones.swapBlock.state.pointee.setReserveTarget(line) }
            if entryLines == .oneShort {
                entryShortfall = 1
                for zone in [Zones.mapEntry, Zones.pvEntry] { zone.state.pointee.setReserveTarget(zone.state.pointee.reserveTarget + entryShortfall) }
            }
            self.entryRefills = entryRefills
            if entryRefills == .failing {
                Zones.mapEntry.state.pointee.refilling = true
                Zones.pvEntry.state.pointee.refilling = true
            }
            // The draws of this case alone: the maxima so far are put back in `finish`.
            for zone in zones {
                savedDeepest.append(zone.statistics.deepestReserveUse)
                zone.state.pointee.statistics.deepestReserveUse = 0
            }
            savedPageDeepest = PhysicalMemory.statistics.pageout.deepestReserveUse
            PhysicalMemory.statistics.pageout.deepestReserveUse = 0
            swapBlockRefillsBefore = Zones.swapBlock.statistics.refills
        }

        /// Spare buddy descriptors above the pool's reserve line for every split the free pages
        /// can need. Holding all of memory leaves the pool wherever its last growth did - at
        /// 77M exactly on its line - and then the step's first split above free_min grows
        /// the pool by a page (as the pageout path may there), a page the case counted for
        /// its slabs. Each page added comes from a held page given back: the free count
        /// does not change.
        func keepSpareDescriptors() {
            let wanted = BuddyAllocator.maxOrder * (Int(PhysicalMemory.freePages) + 1)
            while PhysicalMemory.spareDescriptors < wanted, let page = heldPages.removeFirst() {
                PhysicalMemory.free(page)
                guard PhysicalMemory.growDescriptorPool() else { return Test.fail("the buddy descriptor pool could not grow") }
            }
        }

        /// Exactly `count` pages free: held pages given back, or more taken and held.
        func setFreePages(_ count: Int) {
            ReserveDraws.deliberately {
                while PhysicalMemory.freePages > UInt64(count), let page = PhysicalMemory.allocate(order: 0, .pageout) { _ = heldPages.insert(page) }
            }
            while PhysicalMemory.freePages < UInt64(count), let page = heldPages.removeFirst() { PhysicalMemory.free(page) }
            keepSpareDescriptors()
            Test.expectEqual(PhysicalMemory.freePages, UInt64(count), "free pages")
        }

        /// The swblock zone's objects above its reserve line held (ordinary allocations), so
        /// that the next pageout step meets the line and grows the zone first.
        func holdSwapBlocksAboveTheLine() {
            let zone = Zones.swapBlock
            while zone.freeObjects > zone.state.pointee.reserveTarget, let object = zone.allocate(.ordinaryNoWait) { push(object, onto: &heldObjects[0]) }
        }

        /// Writes dirty page `number` as the pageout thread does and, once written, frees it.
        func pageOut(_ number: Int) -> PageOutResult {
            let page = dirty[number]
            let result = SwapPager.pageOut(page.page, page.object, 0)
            if result == .written {
                withInterruptsDisabled { MemoryObjects.takeOut(page.page, from: page.object, at: 0) }
                PhysicalMemory.free(page.page)
            }
            return result
        }

        /// The pageout thread's own step on dirty page `number` (Pageout.step), its write left
        /// in flight: with the completions held, the oldest write ends only when this step
        /// needs its request slot (PageoutRequests.reserveSlot), and the page of a write is
        /// freed when it ends.
        func startPageOut(_ number: Int) -> PageOutResult {
            switch Pageout.step(dirty[number].page, writing: .inFlight) {
            case .cleaned: return .written
            case .failed(let why): return why
            }
        }

        /// Puts everything back and returns the deepest draws the case made.
        func finish() -> ReserveNeeds {
            let zones = ReserveBoundTests.zones
            let drawn = ReserveNeeds(swapBlocks: zones[0].statistics.deepestReserveUse, mapEntries: zones[1].statistics.deepestReserveUse,
                                     pvEntries: zones[2].statistics.deepestReserveUse, pages: Int(PhysicalMemory.statistics.pageout.deepestReserveUse))
            if entryRefills == .failing {
                Zones.mapEntry.state.pointee.refilling = false
                Zones.pvEntry.state.pointee.refilling = false
            }
            for (index, zone) in zones.enumerated() {
                zone.state.pointee.statistics.deepestReserveUse = max(savedDeepest[index], zone.statistics.deepestReserveUse)
                zone.state.pointee.setReserveTarget(savedLines[index])
                while let object = heldObjects[index] {
                    heldObjects[index] = object.load(as: UnsafeMutableRawPointer?.self)
                    zone.free(object)
                }
            }
            PhysicalMemory.statistics.pageout.deepestReserveUse = max(savedPageDeepest, PhysicalMemory.statistics.pageout.deepestReserveUse)
            PhysicalMemory.thresholds = savedThresholds
            heldPages.forEach { PhysicalMemory.free($0) }
            heldPages.release()
            for page in dirty {
                // Still the test's (busy); a step that failed has put its page back itself.
                let held = withInterruptsDisabled {
                    page.object.pointee.page(at: 0) == page.page && PhysicalMemory.pageable(page.page).pointee.flags.contains(.busy)
                }
                if held { PageQueues.release(page.page, to: .active) }
                Kmem.freePageable(page.address, pageSize)
            }
            for (filler, size) in fillers { Kmem.free(filler, size, in: KernelMaps.kmem) }
            Zones.refillAll()
            for zone in zones { zone.setCaching(true) }
            return drawn
        }

        /// Reserves ranges of the kmem submap (address space only) until the next slab-sized,
        /// slab-aligned free range starts where neither its page directory nor its page table
        /// exists: a growth then needs ReserveBounds.tablePagesPerMapping table pages.
        func placeNextSlabWhereTablesAreMissing() {
            let map = KernelMaps.kmem
            let slabBytes = UInt64(Zones.swapBlock.state.pointee.slabBytes)
            let directory: UInt64 = 1 << 30
            for _ in 0..<64 {
                map.pointee.lock.lock()
                let spot = map.pointee.map.findSpace(size: slabBytes, alignment: slabBytes)
                let holeEnd = spot.flatMap { map.pointee.map.firstEntry(atOrAfter: $0)?.pointee.start } ?? map.pointee.map.end
                map.pointee.lock.unlock()
                guard let start = spot else { return Test.fail("kmem has no room for a slab") }
                if 4 - withInterruptsDisabled({ Pmap.walk(start).depth }) == ReserveBounds.tablePagesPerMapping { return }
                let nextDirectory = (start.rawValue / directory + 1) * directory
                let end = min(holeEnd.rawValue, nextDirectory)
                let size = end - start.rawValue
                guard let filler = Kmem.reserveRange(map, size, .ordinaryNoWait) else { return Test.fail("no filler range in kmem") }
                fillers.append((filler, size))
            }
            Test.fail("could not place the next kmem slab where its tables are missing")
        }
    }
}
