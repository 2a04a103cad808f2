// DeadlockTests.swift - the low-memory deadlock: reproduced with reserves=off, gone with the
// reserves on, and the reserve bounds of docs/reserves.md checked against what happens.

enum DeadlockTests {
    static let memory: StaticString = TestSuite.pressureSizes
    static let diskMiB = 40
    /// The workloads fill past RAM into swap (Stress.run): the disk grows with the machine so
    /// that they go through swap at every memory size.
    static let diskPerRAM = 2
    static let defaultRounds = 1500
    /// stressrounds= on the command line (make soak runs longer).
    static var rounds: Int { KernelOptions.stressRounds > 0 ? Int(KernelOptions.stressRounds) : defaultRounds }

    static var stressSuite: TestSuite {
        TestSuite("stress", memory: memory, diskMiB: diskMiB, diskPerRAM: diskPerRAM, icount: true, timeout: 600, seeds: 20, exclusive: false, [
            TestCase("objectsWorkloadLosesNothing", { runWorkload(.objects) }),
            TestCase("kmapWorkloadLosesNothing", { runWorkload(.kmap) }),
            TestCase("reserveUseStaysWithinTheDerivedBounds", reserveUseStaysWithinTheDerivedBounds),
            TestCase("pageoutGivesBackTheSlabsTheWorkloadsLeftEmpty", ReapTests.pageoutGivesBackTheSlabsTheWorkloadsLeftEmpty),
        ])
    }

    static var reproductionSuite: TestSuite {
        TestSuite("deadlock", memory: memory, arguments: "reserves=off", diskMiB: diskMiB, diskPerRAM: diskPerRAM, icount: true, timeout: 600, seeds: 3, exclusive: false, [
            TestCase("reservesOffDeadlocksThePageoutThread",
                     expectsPanic: "the pageout thread waits in vm_wait for one ordinary-class page to grow zone",
                     inFrame: "Watchdog.report", { runWorkload(.objects) }),
        ])
    }

    /// The stress workloads with the page allocator failing requests of the ordinary and system
    /// requesters at random: blocking requests retry, non-blocking ones fail cleanly; nothing
    /// may be lost, and every count must still add up (the runner checks the zones tables).
    static var faultSuite: TestSuite {
        TestSuite("stressfaults", memory: memory, arguments: "pagefail=random:50:ordinary+system", diskMiB: diskMiB, diskPerRAM: diskPerRAM, icount: true,
                  timeout: 600, seeds: 3, exclusive: false, [
            TestCase("objectsWorkloadLosesNothingWhileAllocationsFail", { runWorkload(.objects); expectInjectedFailures() }),
            TestCase("kmapWorkloadLosesNothingWhileAllocationsFail", { runWorkload(.kmap); expectInjectedFailures() }),
            TestCase("reserveUseStaysWithinTheDerivedBounds", reserveUseStaysWithinTheDerivedBounds),
        ])
    }

    static func expectInjectedFailures() {
        let injected = PhysicalMemory.faultInjector.injected
        Test.expect(injected > 0, "the page allocator injected failures (\(injected))")
        var failures: UInt64 = 0
        for requester in Requester.allCases { failures += PhysicalMemory.statistics[requester].injectedFailures }
        Test.expectEqual(failures, injected, "injected failures the requesters counted")
        PhysicalMemory.logStatistics()
    }

    static func runWorkload(_ variant: StressVariant) {
        let result = Stress.run(variant, threads: 3, rounds: rounds, seed: KernelOptions.seed)
        Test.expectEqual(result.mismatches, UInt64(0), "pages whose contents were lost")
        Test.expectEqual(result.stoppedWorkers, 0, "workers stopped by the out-of-memory policy")
        Test.expect(result.pagesVerified > 0 && SwapDevice.pagesWritten > 0, "pages went through swap and were checked")
        Test.expectEqual(SwapDevice.usedBlocks, UInt32(0), "swap blocks in use afterwards")
        Test.expectEqual(MemoryObjects.live, 0, "memory objects alive afterwards")
        Pageout.logStatistics()
    }

    static func reserveUseStaysWithinTheDerivedBounds() {
        let bounds = ReserveBounds.bound
        for (zone, bound) in [(Zones.swapBlock, bounds.swapBlocks), (Zones.mapEntry, bounds.mapEntries), (Zones.pvEntry, bounds.pvEntries)] {
            let deepest = zone.statistics.deepestReserveUse
            Test.expect(deepest <= bound, "zone \(zone.name): deepest reserve use \(deepest) exceeds the derived bound \(bound)")
            Test.diagnostic("zone \(zone.name): deepest reserve use \(deepest), bound \(bound), reserve \(zone.state.pointee.reserveTarget)")
        }
        let pagesUsed = PhysicalMemory.statistics[.pageout].deepestReserveUse
        Test.expect(pagesUsed <= UInt64(bounds.pages), "pages taken below free_min: \(pagesUsed), bound \(bounds.pages)")
        Test.expect(ZoneGrowth.deepestChain <= ReserveBounds.zoneGrowthChain, "zone growth chain \(ZoneGrowth.deepestChain), bound \(ReserveBounds.zoneGrowthChain)")
        Test.diagnostic("pageout requester: \(pagesUsed) pages below free_min at most (bound \(bounds.pages)); zone growth chain \(ZoneGrowth.deepestChain) (bound \(ReserveBounds.zoneGrowthChain))")
    }
}
