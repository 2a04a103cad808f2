// RaceTests.swift - the races between faults, pageout, frees and the out-of-memory policy.
//
// Each case drives one set of paths that meet on the same pages, under memory pressure, with
// seeded workloads (icount makes the interleavings repeatable for a seed):
//   - several threads faulting the same pages while pageout cleans them: nobody maps a page
//     that pageout freed meanwhile, no page is installed twice, every byte comes back;
//   - the out-of-memory policy stopping a thread in the middle of a page-in: the policy
//     waits for the victim's busy page, so the victim must give the page up rather than wait
//     for memory with it held (PageDescriptor.swift, rule 4);
//   - threads freeing pageable memory while pageout is cleaning it: a page is freed once,
//     by whoever holds it, and everything comes back.
// The rules these check are written where the page descriptor is declared
// (kernel/Mem/Portable/PageDescriptor.swift); MemoryObjects.validate checks them from outside
// while the workloads run. On a large machine a balloon (kernel/Test/Balloon.swift) takes
// memory away first so that the workloads, sized from what is left, page at every size.

enum RaceTests {
    static var suite: TestSuite {
        TestSuite("races", memory: TestSuite.pressureSizes, diskMiB: 96, icount: true, timeout: 600, seeds: 3, exclusive: false, [
            TestCase("threadsFaultingTheSamePagesLoseNothing", threadsFaultingTheSamePagesLoseNothing),
            TestCase("faultWaitingToMapAPageNeverMapsItAfterPageoutFreedIt", faultWaitingToMapAPageNeverMapsItAfterPageoutFreedIt),
            TestCase("outOfMemoryStopsAThreadInTheMiddleOfAPageIn", outOfMemoryStopsAThreadInTheMiddleOfAPageIn),
            TestCase("freeingMemoryPageoutIsCleaningLosesNothing", freeingMemoryPageoutIsCleaningLosesNothing),
        ])
    }

    /// Pages a workload may treat as RAM above paging_target, after a balloon on a large machine.
    static let pageableTarget: UInt64 = 6144          // 24 MiB

    // MARK: - Shared helpers

    /// The memory object behind a pageable address (the test owns the range, so it stays).
    static func object(at address: VirtualAddress) -> ObjectRef {
        guard let object = Kmem.withPageableObject(at: address, { object, _ in object }) else {
            panic("race tests: \(address: address) is not pageable memory")
        }
        return object
    }

    /// Counts threads that finished, so that the test thread can check while they run.
    struct Finish {
        var done = 0
        mutating func note() { withInterruptsDisabled { done += 1 } }
    }

    // MARK: - Concurrent faults on the same pages

    struct SharedRegion {
        var address = VirtualAddress(0)
        var pages = 0
        var seed: UInt64 = 0
        var threads = 0
        var stride = 1
        var start = 0
        var mismatches = 0
        var finish = Finish()
    }

    /// Word `word` of page `page` after generation `generation` (0: never written, zero-filled).
    static func sharedWord(_ region: SharedRegion, _ page: Int, _ word: Int, _ generation: UInt64) -> UInt64 {
        generation == 0 ? 0 : PagePattern.word(PagePattern.key(region.seed, UInt64(word % region.threads), page, generation), word)
    }

    /// Worker `number` owns the words `word % threads == number` of every page. In each
    /// generation it visits every page along the same permutation as the others, one step
    /// behind the previous worker - so the workers fault on the same pages at nearly the same
    /// moment - checks its words still hold the previous generation, and writes the next.
    static func faultWorker(_ region: UnsafeMutablePointer<SharedRegion>, _ number: Int, generations: UInt64) {
        let r = region.pointee
        var bad = 0
        for generation in 1...generations {
            for step in 0..<r.pages {
                let page = (r.start + (step + number) * r.stride) % r.pages
                let words = pointer(at: r.address + UInt64(page) * pageSize).assumingMemoryBound(to: UInt64.self)
                var word = number
                while word < PagePattern.wordsPerPage {
                    if words[word] != sharedWord(r, page, word, generation - 1) {
                        if bad < 4 { Log.error(.test, "worker \(number): page \(page) word \(word) lost generation \(generation - 1)") }
                        bad += 1
                    }
                    words[word] = sharedWord(r, page, word, generation)
                    word += r.threads
                }
            }
        }
        withInterruptsDisabled { region.pointee.mismatches += bad }
        region.pointee.finish.note()
    }

    static func greatestCommonDivisor(_ a: Int, _ b: Int) -> Int {
        var (x, y) = (a, b)
        while y != 0 { (x, y) = (y, x % y) }
        return x
    }

    static func threadsFaultingTheSamePagesLoseNothing() {
        var balloon = Balloon()
        balloon.inflate(leavingPageable: pageableTarget)
        let free = Int(PhysicalMemory.freePages)
        let pages = min(free * 3 / 2, Int(SwapDevice.blocks) * 3 / 4)
        let threads = 3
        let generations: UInt64 = 2
        let region = UnsafeMutablePointer<SharedRegion>.allocate(capacity: 1)
        region.initialize(to: SharedRegion())
        region.pointee.pages = pages
        region.pointee.seed = KernelOptions.seed
        region.pointee.threads = threads
        region.pointee.start = Test.random.next(below: pages)
        var stride = 1 + Test.random.next(below: pages - 1)
        while greatestCommonDivisor(stride, pages) != 1 { stride += 1 }
        region.pointee.stride = stride
        guard let address = Kmem.allocatePageable(UInt64(pages) * pageSize, owner: 0) else {
            Test.fail("no pageable range of \(pages) pages")
            return
        }
        region.pointee.address = address
        let object = object(at: address)
        let before = (swapIns: PageFault.swapIns, remaps: PageFault.remaps, freed: Pageout.statistics.freed)
        Test.diagnostic("seed \(KernelOptions.seed): \(threads) threads fault \(pages) shared pages (\(free) free after a balloon of \(balloon.pages)), stride \(stride), \(generations) generations")
        var handles: [ThreadRef] = []
        for number in 0..<threads {
            handles.append(Threads.spawn("faulter") { faultWorker(region, number, generations: generations) })
        }
        // While they run, the object is checked against the page rules from outside.
        var violations = 0, checks = 0
        while withInterruptsDisabled({ region.pointee.finish.done }) < threads {
            violations += MemoryObjects.validate(object, mappedAt: address)
            checks += 1
            Scheduler.sleep(ticks: 2)
        }
        for handle in handles { Test.expect(!Threads.join(handle), "a faulting thread was stopped") }
        violations += MemoryObjects.validate(object, mappedAt: address)
        Test.expectEqual(violations, 0, "page-rule violations seen over \(checks) checks while the threads ran")
        Test.expectEqual(region.pointee.mismatches, 0, "words that lost their generation while the threads ran")
        // Every byte of every page, at the end.
        var bad = 0
        for page in 0..<pages {
            let words = pointer(at: address + UInt64(page) * pageSize).assumingMemoryBound(to: UInt64.self)
            for word in 0..<PagePattern.wordsPerPage where words[word] != sharedWord(region.pointee, page, word, generations) {
                bad += 1
                break
            }
        }
        Test.expectEqual(bad, 0, "pages that differ at the end")
        Test.expect(PageFault.swapIns > before.swapIns && Pageout.statistics.freed > before.freed, "the pages went through swap while they were faulted")
        Test.diagnostic("\(PageFault.swapIns - before.swapIns) pages in from swap, \(PageFault.remaps - before.remaps) remapped, \(Pageout.statistics.freed - before.freed) freed by pageout")
        Kmem.freePageable(address, UInt64(pages) * pageSize)
        region.deallocate()
        balloon.deflate()
    }

    // MARK: - A fault that waits to map a resident page

    /// Takes every pv_entry an ordinary caller could get (the zone cannot grow for one while
    /// ordinary page requests are failed on purpose), linked through the entries themselves.
    static func drainPVEntries(onto list: inout UnsafeMutableRawPointer?) -> Int {
        var taken = 0
        while let entry = Zones.pvEntry.allocate(.ordinaryNoWait) {
            entry.storeBytes(of: list, as: UnsafeMutableRawPointer?.self)
            list = entry
            taken += 1
        }
        return taken
    }

    static func releasePVEntries(_ list: inout UnsafeMutableRawPointer?) {
        while let entry = list {
            list = entry.load(as: UnsafeMutableRawPointer?.self)
            Zones.pvEntry.free(entry)
        }
    }

    /// A page that is resident but unmapped is touched while no PV entry can be had: the fault
    /// cannot map it and waits. Meanwhile pageout cleans and frees that very page. When PV
    /// entries come back the fault must look the page up again (it is on swap now) - mapping
    /// the page it saw before would map a free page (issue 14, race b). The check: the object
    /// keeps the page rules (no mapping of a slot with no page) and the contents come back.
    static func faultWaitingToMapAPageNeverMapsItAfterPageoutFreedIt() {
        let victim = UnsafeMutablePointer<Victim>.allocate(capacity: 1)
        victim.initialize(to: Victim())
        victim.pointee.pages = 1
        let seed = KernelOptions.seed
        let thread = Threads.spawn("toucher") {
            victim.pointee.address = Kmem.allocatePageable(pageSize, owner: 0)!
            PagePattern.fill(victim.pointee.address, PagePattern.key(seed, 2, 0))
            withInterruptsDisabled {
                victim.pointee.written = true
                while !victim.pointee.go { Scheduler.sleep(on: UnsafeRawPointer(victim), reason: "test: wait to read") }
            }
            if PagePattern.firstMismatch(victim.pointee.address, PagePattern.key(seed, 2, 0)) != nil { victim.pointee.mismatches += 1 }
            victim.pointee.reads += 1
        }
        while !withInterruptsDisabled({ victim.pointee.written }) { Scheduler.sleep(ticks: 1) }
        let address = victim.pointee.address
        let object = object(at: address)
        // The page stays resident (and dirty) but loses its mapping.
        withInterruptsDisabled {
            let page = object.pointee.page(at: 0)
            if Pmap.isModified(page) { PhysicalMemory.pageable(page).pointee.flags.insert(.dirty) }
            Pmap.removeAll(page)
        }
        Test.expect(Pmap.extract(address) == nil && object.pointee.residentPages == 1, "the page is resident and unmapped")
        // No PV entry for an ordinary caller: ordinary page requests fail, the zone is drained.
        let savedInjector = PhysicalMemory.faultInjector
        PhysicalMemory.faultInjector = FaultInjector(pattern: .everyNth(1), onlyRequester: .ordinary, seed: seed)
        var held: UnsafeMutableRawPointer? = nil
        var drained = drainPVEntries(onto: &held)
        let shortages = Pmap.statistics.enterShortages
        withInterruptsDisabled {
            victim.pointee.go = true
            Scheduler.wakeup(UnsafeRawPointer(victim))
        }
        var waited = 0
        while Pmap.statistics.enterShortages < shortages + 3 && waited < 100 {
            Scheduler.sleep(ticks: 1)
            drained += drainPVEntries(onto: &held)      // in case pageout's refills added a slab
            waited += 1
        }
        Test.expect(Pmap.statistics.enterShortages >= shortages + 3, "the fault could not map the page and waited")
        // Pageout cleans the page while the fault waits (skipped while the fault holds it
        // busy for an attempt; tried until it goes).
        var evicted = 0
        for _ in 0..<200 where evicted == 0 {
            evicted = Pageout.evict(object)
            if evicted == 0 { Scheduler.yield() }
        }
        Test.expectEqual(evicted, 1, "pageout wrote the page to swap and freed it while the fault waited")
        releasePVEntries(&held)
        PhysicalMemory.faultInjector = savedInjector
        Test.expect(!Threads.join(thread), "the faulting thread ran to the end")
        Test.expectEqual(victim.pointee.reads, 1, "the faulting thread read its page")
        Test.expectEqual(victim.pointee.mismatches, 0, "the page came back from swap with its contents")
        Test.expectEqual(MemoryObjects.validate(object, mappedAt: address), 0, "page-rule violations: a mapping of a page that is no longer the object's")
        Test.diagnostic("\(drained) pv entries held; \(Pmap.statistics.enterShortages - shortages) failed attempts to map")
        Kmem.freePageable(address, pageSize)
        victim.deallocate()
    }

    // MARK: - Out-of-memory kill during a page-in

    struct Victim {
        var address = VirtualAddress(0)
        var pages = 0
        var written = false
        var go = false
        var reads = 0
        var mismatches = 0
    }

    struct PolicyRun {
        var stopped = false
        var finish = Finish()
    }

    static func outOfMemoryStopsAThreadInTheMiddleOfAPageIn() {
        let victim = UnsafeMutablePointer<Victim>.allocate(capacity: 1)
        victim.initialize(to: Victim())
        victim.pointee.pages = 16
        let seed = KernelOptions.seed
        let swapBefore = SwapDevice.usedBlocks, liveBefore = MemoryObjects.live
        let thread = Threads.spawn("victim") {
            let bytes = UInt64(victim.pointee.pages) * pageSize
            victim.pointee.address = Kmem.allocatePageable(bytes, owner: Scheduler.current.pointee.id)!
            for page in 0..<victim.pointee.pages {
                PagePattern.fill(victim.pointee.address + UInt64(page) * pageSize, PagePattern.key(seed, 1, page))
            }
            withInterruptsDisabled {
                victim.pointee.written = true
                while !victim.pointee.go { Scheduler.sleep(on: UnsafeRawPointer(victim), reason: "test: wait to read") }
            }
            // Every read is a fault that finds no window for its page-in; the thread is
            // stopped in the middle of one.
            for page in 0..<victim.pointee.pages {
                if PagePattern.firstMismatch(victim.pointee.address + UInt64(page) * pageSize, PagePattern.key(seed, 1, page)) != nil {
                    victim.pointee.mismatches += 1
                }
                victim.pointee.reads += 1
            }
        }
        while !withInterruptsDisabled({ victim.pointee.written }) { Scheduler.sleep(ticks: 1) }
        let object = object(at: victim.pointee.address)
        let evicted = Pageout.evict(object)
        Test.expectEqual(evicted, victim.pointee.pages, "the victim's pages written to swap and freed")
        Test.expectEqual(object.pointee.residentPages, 0, "the victim's resident pages")
        // Page-ins now find no window: the victim faults, installs its page busy, and cannot
        // fill it.
        let refusedBefore = SwapPager.windowFailures
        SwapPager.refusePageInWindows = true
        withInterruptsDisabled {
            victim.pointee.go = true
            Scheduler.wakeup(UnsafeRawPointer(victim))
        }
        var waited = 0
        while SwapPager.windowFailures < refusedBefore + 3 && waited < 100 {
            Scheduler.sleep(ticks: 1)
            waited += 1
        }
        Test.expect(SwapPager.windowFailures >= refusedBefore + 3, "the victim's page-in was refused a window")
        // The policy runs in its own thread, as it would in pageout's, so that this thread can
        // tell a policy that finished from one stuck on the victim's busy page.
        let policy = UnsafeMutablePointer<PolicyRun>.allocate(capacity: 1)
        policy.initialize(to: PolicyRun())
        let policyThread = Threads.spawn("oom") {
            policy.pointee.stopped = OutOfMemory.act()
            policy.pointee.finish.note()
        }
        waited = 0
        while withInterruptsDisabled({ policy.pointee.finish.done }) == 0 && waited < 2 * Int(Timer.hertz) {
            Scheduler.sleep(ticks: 1)
            waited += 1
        }
        let finished = withInterruptsDisabled { policy.pointee.finish.done } == 1
        Test.expect(finished, "the out-of-memory policy finished within 2 s; it is waiting for a page the victim holds busy while the victim waits for memory")
        // Windows again: a policy stuck above is released, and the victim (stopped) ends.
        SwapPager.refusePageInWindows = false
        _ = Threads.join(policyThread)
        let stopped = policy.pointee.stopped
        policy.deallocate()
        Test.expect(stopped, "the policy found the victim")
        Test.expect(Threads.join(thread), "the victim was stopped")
        Test.expect(victim.pointee.reads < victim.pointee.pages, "the victim was stopped before it read all its pages")
        Test.expectEqual(victim.pointee.mismatches, 0, "pages the victim read back different")
        Test.expectEqual(object.pointee.residentPages, 0, "pages the victim's object holds after the kill")
        Test.expect(MemoryObjects.validate(object, mappedAt: victim.pointee.address) == 0, "the victim's object keeps the page rules")
        Kmem.freePageable(victim.pointee.address, UInt64(victim.pointee.pages) * pageSize)
        Test.expectEqual(SwapDevice.usedBlocks, swapBefore, "swap blocks in use afterwards")
        Test.expectEqual(MemoryObjects.live, liveBefore, "memory objects alive afterwards")
        victim.deallocate()
    }

    // MARK: - Frees racing pageout

    struct Churn {
        var seed: UInt64 = 0
        var rounds = 0
        var mismatches = 0
        var freesWhileSwapped = 0
        /// Set when the hog has finished: the churn goes on at least until then, so that its
        /// frees overlap pageout's work whatever the disk's speed (a DMA disk lets the guest
        /// idle, and under -icount sleep=off idle time passes at once: a fixed number of rounds
        /// could end before pageout reached any churned page).
        var hogDone = false
        var finish = Finish()
    }

    /// Keeps `window` small allocations (1-4 pages) alive; each round writes a new one and
    /// frees a random old one, checking it first half the time. Old ones have aged on the
    /// page queues, so pageout is often writing or freeing their pages at the moment they
    /// are freed.
    static func churnWorker(_ churn: UnsafeMutablePointer<Churn>, _ number: Int) {
        let window = 24
        var random = SeededRandom(seed: churn.pointee.seed &+ UInt64(number) &* 0x51)
        let live = UnsafeMutablePointer<(address: VirtualAddress, pages: Int, id: UInt64)>.allocate(capacity: window)
        var count = 0, bad = 0, swapped = 0
        func retire(_ slot: Int, check: Bool) {
            let old = live[slot]
            if object(at: old.address).pointee.swappedPages > 0 { swapped += 1 }
            if check {
                for page in 0..<old.pages where PagePattern.firstMismatch(old.address + UInt64(page) * pageSize, PagePattern.key(churn.pointee.seed, old.id, page)) != nil {
                    bad += 1
                }
            }
            Kmem.freePageable(old.address, UInt64(old.pages) * pageSize)
        }
        var round = 0
        while round < churn.pointee.rounds || (!withInterruptsDisabled({ churn.pointee.hogDone }) && round < 50 * churn.pointee.rounds) {
            defer { round += 1 }
            let pages = 1 + random.next(below: 4)
            guard let address = Kmem.allocatePageable(UInt64(pages) * pageSize, owner: 0) else {
                bad += 1
                continue
            }
            let id = UInt64(number) << 32 | UInt64(round)
            for page in 0..<pages { PagePattern.fill(address + UInt64(page) * pageSize, PagePattern.key(churn.pointee.seed, id, page)) }
            if count < window {
                live[count] = (address, pages, id)
                count += 1
            } else {
                let slot = random.next(below: window)
                retire(slot, check: random.chance(perMille: 500))
                live[slot] = (address, pages, id)
            }
            Scheduler.sleep(ticks: UInt64(random.next(below: 2)))
        }
        for slot in 0..<count { retire(slot, check: true) }
        live.deallocate()
        withInterruptsDisabled {
            churn.pointee.mismatches += bad
            churn.pointee.freesWhileSwapped += swapped
        }
        churn.pointee.finish.note()
    }

    static func freeingMemoryPageoutIsCleaningLosesNothing() {
        var balloon = Balloon()
        balloon.inflate(leavingPageable: pageableTarget)
        let swapBefore = SwapDevice.usedBlocks, liveBefore = MemoryObjects.live
        let queuedBefore = withInterruptsDisabled { PageQueues.active.count + PageQueues.inactive.count }
        let freedBefore = Pageout.statistics.freed, busyWaitsBefore = MemoryObjects.busyWaits
        // A hog keeps pageout busy: more than what is free, written twice over.
        let hogPages = min(Int(PhysicalMemory.freePages) * 5 / 4, Int(SwapDevice.blocks) / 2)
        let hog = UnsafeMutablePointer<SwapTests.Region>.allocate(capacity: 1)
        hog.initialize(to: SwapTests.Region(address: VirtualAddress(0), pages: hogPages, seed: KernelOptions.seed, mismatches: 0))
        let churn = UnsafeMutablePointer<Churn>.allocate(capacity: 1)
        churn.initialize(to: Churn())
        churn.pointee.seed = KernelOptions.seed
        churn.pointee.rounds = 200
        Test.diagnostic("seed \(KernelOptions.seed): a hog pages \(hogPages) pages while 2 threads free memory pageout is cleaning, \(churn.pointee.rounds) rounds each at least, until the hog is done")
        let hogThread = Threads.spawn("hog") {
            hog.pointee.address = Kmem.allocatePageable(UInt64(hogPages) * pageSize, owner: 0)!
            SwapTests.exercise(hog)
            SwapTests.exercise(hog)
            withInterruptsDisabled { churn.pointee.hogDone = true }
        }
        var handles: [ThreadRef] = []
        for number in 0..<2 { handles.append(Threads.spawn("churn") { churnWorker(churn, number) }) }
        for handle in handles { Test.expect(!Threads.join(handle), "a churning thread was stopped") }
        Test.expect(!Threads.join(hogThread), "the hog was stopped")
        Test.expectEqual(churn.pointee.mismatches, 0, "pages that lost their contents or allocations that failed")
        Test.expectEqual(hog.pointee.mismatches, 0, "hog pages that came back different")
        Test.expect(churn.pointee.freesWhileSwapped > 0, "some memory was freed after pageout had written part of it to swap")
        Test.expect(Pageout.statistics.freed > freedBefore, "pageout freed pages meanwhile")
        Kmem.freePageable(hog.pointee.address, UInt64(hogPages) * pageSize)
        Test.expectEqual(SwapDevice.usedBlocks, swapBefore, "swap blocks in use afterwards")
        Test.expectEqual(MemoryObjects.live, liveBefore, "memory objects alive afterwards")
        Test.expectEqual(withInterruptsDisabled { PageQueues.active.count + PageQueues.inactive.count }, queuedBefore, "pages on the page queues afterwards")
        Test.diagnostic("\(churn.pointee.freesWhileSwapped) frees of memory partly on swap, \(MemoryObjects.busyWaits - busyWaitsBefore) frees waited for a page pageout held busy; pageout freed \(Pageout.statistics.freed - freedBefore) pages")
        hog.deallocate()
        churn.deallocate()
        balloon.deflate()
    }
}
