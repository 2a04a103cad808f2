// NecessityTests.swift - each of the pageout path's protections shown necessary: for each one a
// workload that deadlocks when exactly that protection is removed and passes with all of them
// on (issue 15, "A necessity suite"; docs/reserves.md, "Necessity").
//
// Every workload builds one situation by hand, deterministically, with preemption held off,
// then lets the pageout thread loose on it while one thread waits in vm_wait for 16 pages:
//   - pageable pages the pageout thread can clean: *new* pages (dirty, never on swap, each in
//     its own 16-page chunk, so cleaning one needs a new swblock) and *clean* pages (read back
//     from swap, unchanged: cleaning one allocates nothing);
//   - free pages taken away - by ordinary and system requests (down to free_min), and for two
//     workloads below free_min too, with pageout-class requests: Dillon's situation, where
//     in-flight work or other privileged draws already hold the pages below free_min (in this
//     kernel only the pageout path itself could, so the test stands in for them);
//   - the swblock zone drawn down by page-outs while those free pages stay taken (so its
//     refills fail): to its reserve (the zone looks empty to everyone but the pageout path) or
//     through it (empty for everyone).
// The setup's own draws are made inside ReserveDraws.deliberately; the pageout thread's are
// held to the derived bounds as in every suite (the pages the test holds below free_min are
// not counted as its draws: PhysicalMemory.whilePagesBelowFreeMinAreHeld).
// Then, with all protections on, the pageout thread must free enough pages for the waiter and
// each case checks that the situation it is about was really reached (the reserve drawn, a
// step failed and another succeeded, pages taken below free_min). With its protection off,
// the pageout thread frees nothing - it waits in vm_wait (nowait off) or fails every step -
// and the watchdog must report the deadlock.
//
//   workload                           free pages taken   swblock zone   queue          deadlocks without
//   pageoutSkipsAStepItCannotFeed      all                through        new, clean...  nowait
//   zoneReserveCarriesPageout...       all (Dillon)       to reserve     new...         zones
//   pagesBelowFreeMinCarryPageout...   down to free_min   through        new...         pages
//   eitherReserveCarriesPageout        down to free_min   to reserve     new...         zones+pages
//
// The five suites run these workloads with `reserves=` keeping all protections, or all but
// one (or but zones and pages); a case whose protection is missing expects the watchdog's
// report and is booted alone, the others must pass. The runner prints the matrix
// (qemu/harness/necessity.py). Sizes: every count comes from the machine's thresholds.

enum NecessityTests {
    static let memory: StaticString = "24M,128M"
    /// Room for the workload up to 4 GiB of RAM (it writes about free_reserved pages).
    static let diskMiB = 64
    static let timeout = 300
    /// One CPU at every size, and four at the first: the reserves hold for N CPUs with the
    /// bounds derived for one (docs/reserves.md, "N CPUs").
    static let cpus: StaticString = "1,4"
    /// What the watchdog's panic says for a memory deadlock (kernel/Kern/Watchdog.swift).
    static let deadlock: StaticString = "deadlock: memory short"
    static let reportFrame: StaticString = "Watchdog.report"
    /// Pages the waiting thread asks for, one at a time.
    static let waiterPages = 16

    static var suites: [TestSuite] {
        [
            TestSuite("necessity", memory: memory, arguments: "reserves=on", diskMiB: diskMiB, icount: true, cpus: cpus, timeout: timeout, exclusive: false, [
                TestCase("pageoutSkipsAStepItCannotFeed", { run(.nowait) }),
                TestCase("zoneReserveCarriesPageoutWhenThePagesBelowFreeMinAreTaken", { run(.dillon) }),
                TestCase("pagesBelowFreeMinCarryPageoutWhenTheZoneReserveIsSpent", { run(.spentReserve) }),
                TestCase("eitherReserveCarriesPageout", { run(.either) }),
            ]),
            TestSuite("necessity-nowait", memory: memory, arguments: "reserves=zones,pages", diskMiB: diskMiB, icount: true, cpus: cpus, timeout: timeout, exclusive: false, [
                TestCase("pageoutSkipsAStepItCannotFeed", expectsPanic: deadlock, inFrame: reportFrame, { run(.nowait) }),
                TestCase("zoneReserveCarriesPageoutWhenThePagesBelowFreeMinAreTaken", { run(.dillon) }),
                TestCase("pagesBelowFreeMinCarryPageoutWhenTheZoneReserveIsSpent", { run(.spentReserve) }),
                TestCase("eitherReserveCarriesPageout", { run(.either) }),
            ]),
            TestSuite("necessity-zones", memory: memory, arguments: "reserves=pages,nowait", diskMiB: diskMiB, icount: true, cpus: cpus, timeout: timeout, exclusive: false, [
                TestCase("pageoutSkipsAStepItCannotFeed", { run(.nowait) }),
                TestCase("zoneReserveCarriesPageoutWhenThePagesBelowFreeMinAreTaken", expectsPanic: deadlock, inFrame: reportFrame, { run(.dillon) }),
                TestCase("pagesBelowFreeMinCarryPageoutWhenTheZoneReserveIsSpent", { run(.spentReserve) }),
                TestCase("eitherReserveCarriesPageout", { run(.either) }),
            ]),
            // Without the page tier the zone reserve alone carries the pageout thread only
            // while it keeps the CPU from one step to the next (ATA PIO). On a disk that
            // completes by interrupt it sleeps through each write, and the waiter competes for
            // every page a finished step frees: when it wins them all, the reserve is spent
            // with no page left to grow the zone with, and these two deadlock too. Which
            // happens depends on the interleaving (seen: deadlock at 128M after the other
            // cases, a pass booted alone), so either outcome is accepted there.
            TestSuite("necessity-pages", memory: memory, arguments: "reserves=zones,nowait", diskMiB: diskMiB, icount: true, cpus: cpus, timeout: timeout, exclusive: false, [
                TestCase("pageoutSkipsAStepItCannotFeed", { run(.nowait) }),
                TestCase("zoneReserveCarriesPageoutWhenThePagesBelowFreeMinAreTaken", expectsPanic: deadlock, inFrame: reportFrame,
                         on: .possibleOnAnInterruptDrivenDisk, { run(.dillon) }),
                TestCase("pagesBelowFreeMinCarryPageoutWhenTheZoneReserveIsSpent", expectsPanic: deadlock, inFrame: reportFrame, { run(.spentReserve) }),
                TestCase("eitherReserveCarriesPageout", expectsPanic: deadlock, inFrame: reportFrame,
                         on: .possibleOnAnInterruptDrivenDisk, { run(.either) }),
            ]),
            TestSuite("necessity-zones+pages", memory: memory, arguments: "reserves=nowait", diskMiB: diskMiB, icount: true, cpus: cpus, timeout: timeout, exclusive: false, [
                TestCase("pageoutSkipsAStepItCannotFeed", { run(.nowait) }),
                TestCase("zoneReserveCarriesPageoutWhenThePagesBelowFreeMinAreTaken", expectsPanic: deadlock, inFrame: reportFrame, { run(.dillon) }),
                TestCase("pagesBelowFreeMinCarryPageoutWhenTheZoneReserveIsSpent", expectsPanic: deadlock, inFrame: reportFrame, { run(.spentReserve) }),
                TestCase("eitherReserveCarriesPageout", expectsPanic: deadlock, inFrame: reportFrame, { run(.either) }),
            ]),
        ]
    }

    // MARK: - The workloads

    enum Workload {
        /// A step that needs a new swblock, with neither the zone nor any page able to give
        /// one, at the head of the queue; clean pages behind it. Without nowait the pageout
        /// thread waits in vm_wait at that step for a page only it could free.
        case nowait
        /// Dillon's situation: every free page taken, the pages below free_min too; the
        /// swblock zone down to its reserve. Only the reserve carries the pageout thread
        /// until it has freed the pages to grow the zone.
        case dillon
        /// The swblock reserve spent while system draws held the free count at free_min;
        /// only the pages below free_min let the pageout thread grow the zone.
        case spentReserve
        /// The free count at free_min (what ordinary and system requests can reach), the zone
        /// at its reserve: the reserve carries the pageout thread, and without it the pages
        /// below free_min would.
        case either

        /// How far the free pages are taken: the deepest requester the test draws as.
        var drainAs: AllocationContext {
            switch self {
            case .nowait, .dillon: return .pageout
            case .spentReserve, .either: return .system
            }
        }

        /// Whether the swblock zone is drawn through its reserve (else down to it).
        var spendsReserve: Bool {
            switch self {
            case .nowait, .spentReserve: return true
            case .dillon, .either: return false
            }
        }
    }

    /// One-page pageable objects written with their pattern; `id` numbers them for the pattern.
    struct Pages {
        var addresses: [VirtualAddress] = []
        let firstID: UInt64

        init(count: Int, firstID: UInt64) {
            self.firstID = firstID
            addresses.reserveCapacity(count)
            for number in 0..<count {
                guard let address = Kmem.allocatePageable(pageSize) else { panic("necessity: no pageable page") }
                PagePattern.fill(address, PagePattern.key(KernelOptions.seed, firstID + UInt64(number), 0))
                addresses.append(address)
            }
        }

        static func object(_ address: VirtualAddress) -> ObjectRef {
            Kmem.withPageableObject(at: address, { object, _ in object })!
        }

        /// Every page checked, then freed; returns the pages that lost their contents.
        func verifyAndFree() -> Int {
            var lost = 0
            for (number, address) in addresses.enumerated() {
                if PagePattern.firstMismatch(address, PagePattern.key(KernelOptions.seed, firstID + UInt64(number), 0)) != nil { lost += 1 }
                Kmem.freePageable(address, pageSize)
            }
            return lost
        }
    }

    /// Builds the situation - its draws inside ReserveDraws.deliberately: they are the test's,
    /// not a path's need - then lets the pageout thread loose with the run-time bound checks on
    /// (kernel/Mem/Portable/ReserveDraw.swift): its draws must stay within ReserveBounds.
    /// Pages the test holds below free_min stand in for other privileged work, so the pageout
    /// thread's draws are counted below them (PhysicalMemory.whilePagesBelowFreeMinAreHeld).
    static func run(_ workload: Workload) {
        runSituation(workload)
    }

    private static func runSituation(_ workload: Workload) {
        let t = PhysicalMemory.thresholds
        let swblocks = Zones.swapBlock
        let zoneReserve = Zones.reservesEnabled ? swblocks.state.pointee.reserveTarget : 0
        // Enough for the waiter: the pageout thread must lift the free count past free_reserved
        // from wherever the drain left it (0 at worst), with the pages it spends growing the
        // swblock zone on top - a slab and its page tables for every slab's worth of new
        // pages, which is more than a fixed margin at large memory (154 pages at 3G).
        let needed = Int(t.freeReserved) + 2 * waiterPages + 16
        let growthPages = ReserveBounds.swapBlockSlabPages + ReserveBounds.tablePagesPerMapping
        let enough = needed + (needed / swblocks.state.pointee.objectsPerSlab + 1) * growthPages
        // Empty slabs left by the cases before go back first: the swblock zone's free objects
        // are what the workload must draw down, each with a page-out.
        Pageout.reapZones()
        // Every new page goes to swap, and so do the pages that draw the zone down.
        let swapNeeded = enough + swblocks.freeObjects
        let swapFree = Int(SwapDevice.blocks) - Int(SwapDevice.usedBlocks)
        guard swapNeeded <= swapFree else {
            Test.expect(false, "the swap disk is too small for this memory size: the workload writes \(swapNeeded) pages, \(swapFree) blocks are free (diskMiB \(diskMiB))")
            return
        }
        Preemption.disable()
        // Made now, while memory is plentiful; it runs once the situation is built.
        let waiter = Threads.spawn("waiter") {
            // Ordinary requests that may wait: they sleep in vm_wait until the pageout thread
            // has freed pages above free_reserved. Several, not one: a page or two freed by
            // something other than a page-out (a page table emptied by unmapping a page whose
            // write then fails) is not progress, and must not let the waiter through alone.
            var pages = PageHold()
            pages.take(waiterPages, .ordinary)
            pages.release()
        }

        // Clean pages: written, paged out, read back unchanged (on swap, nothing to write).
        let clean = Pages(count: workload == .nowait ? enough : 0, firstID: 1 << 20)
        for address in clean.addresses { _ = Pageout.evict(Pages.object(address)) }
        for (number, address) in clean.addresses.enumerated() {
            let word = PagePattern.firstMismatch(address, PagePattern.key(KernelOptions.seed, clean.firstID + UInt64(number), 0))
            Test.expect(word == nil, "clean page \(number) came back from swap changed")
        }
        // New pages: each one's page-out needs a new swblock.
        let fresh = Pages(count: workload == .nowait ? 1 : enough, firstID: 2 << 20)
        // Pages whose page-outs draw the swblock zone down, once memory is taken.
        let target = workload.spendsReserve ? 0 : zoneReserve
        let drawn = Pages(count: max(0, swblocks.freeObjects - target), firstID: 3 << 20)

        // Empty slabs go back now, before the drain: a reap during the run would hand the
        // pageout thread pages the workload means it not to have.
        Pageout.reapZones()
        var hold = PageHold()
        ReserveDraws.deliberately {
            hold.takeAll(.ordinaryNoWait)
            hold.takeAll(.system)
            hold.takeAll(workload.drainAs)
        }
        let drainedTo = PhysicalMemory.freePages
        // Each page-out takes a swblock and frees a page, which the drain takes back at once:
        // the zone's refills (system requests) find no page and fail. The pages below free_min
        // are taken meanwhile too: a page-out asks to grow the swblock zone before it draws its
        // reserve (ReserveOrder.growFirstForPageout), and must not grow it from them here.
        var belowFreeMin = PageHold()
        ReserveDraws.deliberately {
            belowFreeMin.takeAll(.pageout)
            for address in drawn.addresses where swblocks.freeObjects > target {
                Test.expectEqual(Pageout.evict(Pages.object(address)), 1, "pages a page-out drawing the swblock zone freed")
                hold.takeAll(workload.drainAs)
                belowFreeMin.takeAll(.pageout)
            }
        }
        // Back to where the drain left the free count.
        belowFreeMin.release()
        ReserveDraws.deliberately { hold.takeAll(workload.drainAs) }
        let zoneLeft = swblocks.freeObjects
        Test.expectEqual(zoneLeft, target, "swblocks left in the zone after drawing it down")

        // The new pages first on the inactive queue, the clean ones after, none marked used.
        // (No array is built here: memory is taken, and kmalloc would have to wait.)
        func queue(_ pages: Pages) {
            for address in pages.addresses {
                let page = Pages.object(address).pointee.page(at: 0)
                _ = Pmap.testAndClearReferenced(page)
                PageQueues.move(page, to: .inactive)
            }
        }
        withInterruptsDisabled {
            queue(fresh)
            queue(clean)
        }
        let before = (written: SwapDevice.pagesWritten, freed: Pageout.statistics.freed, assignFailures: SwapMetadata.assignFailures,
                      reserveDraws: swblocks.statistics.reserveAllocations, pageoutPages: PhysicalMemory.statistics[.pageout].allocations)
        Test.diagnostic("\(workload.name): free pages taken down to \(drainedTo), \(PhysicalMemory.freePages) when the run starts (free_min \(t.freeMin), free_reserved \(t.freeReserved)), swblock zone at \(zoneLeft) free (reserve \(zoneReserve)); \(fresh.addresses.count) new and \(clean.addresses.count) clean pages queued; protections on: \(protections: Reserves.protections)")

        // Let the waiter and the pageout thread run. A deadlock ends here, in the watchdog.
        let heldBelowFreeMin = max(0, Int(t.freeMin) - Int(PhysicalMemory.freePages))
        let stopped = PhysicalMemory.whilePagesBelowFreeMinAreHeld(Reserves.protections.contains(.pages) ? heldBelowFreeMin : 0) {
            Preemption.enable()
            let stopped = Threads.join(waiter)
            // The waiter may be through before the pageout thread has written the new pages: on
            // a DMA disk the pageout thread sleeps through each write and others run meanwhile
            // (with ATA PIO it kept the CPU, polling). Memory is still held, so it goes on; give
            // it a bounded while to, before counting what it did.
            if workload != .nowait {
                var waited: UInt64 = 0
                while SwapDevice.pagesWritten - before.written < UInt64(fresh.addresses.count) / 2 && waited < 5 * Timer.hertz {
                    Scheduler.sleep(ticks: 1)
                    waited += 1
                }
            }
            return stopped
        }
        Test.expect(!stopped, "the waiting thread was stopped")
        let wrote = SwapDevice.pagesWritten - before.written
        let freed = Pageout.statistics.freed - before.freed
        let failedSteps = SwapMetadata.assignFailures - before.assignFailures
        let reserveDraws = swblocks.statistics.reserveAllocations - before.reserveDraws
        let pageoutPages = PhysicalMemory.statistics[.pageout].allocations - before.pageoutPages
        Test.diagnostic("\(workload.name): the pageout thread freed \(freed) pages, wrote \(wrote), failed \(failedSteps) steps for want of a swblock, took \(reserveDraws) swblocks from the reserve and \(pageoutPages) pages as the pageout requester")
        hold.release()

        // The situation each workload is about was really reached.
        switch workload {
        case .nowait:
            Test.expect(failedSteps >= 1, "no page-out failed for want of a swblock: the step that cannot be fed never came first")
            Test.expect(freed > UInt64(fresh.addresses.count), "the pageout thread freed only \(freed) pages: it did not move past the step it could not feed")
        case .dillon:
            Test.expect(drainedTo == 0 || !Reserves.protections.contains(.pages), "\(drainedTo) pages were left free: the pages below free_min were not all taken")
            Test.expect(reserveDraws >= 1, "the pageout thread never drew the swblock reserve")
        case .spentReserve:
            Test.expect(pageoutPages >= 4, "the pageout thread took \(pageoutPages) pages below free_min: it never grew the zone from them")
        case .either:
            Test.expect(reserveDraws >= 1 || pageoutPages >= 4, "neither the reserve nor the pages below free_min carried the pageout thread")
        }
        if workload != .nowait {
            Test.expect(wrote >= UInt64(fresh.addresses.count) / 2, "only \(wrote) pages written: the new pages were not paged out")
        }
        let lost = fresh.verifyAndFree() + clean.verifyAndFree() + drawn.verifyAndFree()
        Test.expectEqual(lost, 0, "pages whose contents were lost")
    }
}

extension NecessityTests.Workload {
    var name: StaticString {
        switch self {
        case .nowait: return "nowait"
        case .dillon: return "zones (Dillon)"
        case .spentReserve: return "pages"
        case .either: return "zones+pages"
        }
    }
}
