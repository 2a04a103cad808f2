// TestRegistry.swift - every in-kernel test suite, in one list.
//
// To add a suite: write it in kernel/Test/<Name>Tests.swift as a `static var suite` and add
// it here. `test=list` prints this registry; the host runner boots every suite it lists.

enum TestRegistry {
    static var suites: [TestSuite] {
        [
            BootTests.suite,
            PanicTests.suite,
            PhysicalMemoryTests.suite,
            PhysicalMemoryTests.faultSuite,
            PmapTests.suite,
            ZoneTests.suite,
            ZoneTests.debugSuite,
            VMMapTests.suite,
            VMMapTests.checkedSuite,
            ThreadTests.suite,
            WaitGraphTests.suite,
            AllocationContextTests.suite,
            SwapTests.deviceSuite,
            SwapTests.terabyteSuite,
            SwapTests.pagingSuite,
            SwapTests.fullSuite,
            RaceTests.suite,
            DeadlockTests.stressSuite,
            DeadlockTests.reproductionSuite,
            DeadlockTests.faultSuite,
            ReserveBoundTests.suite,
            ReserveBoundTests.smpSuite,
            DebugHelperTests.suite,
            DiskFaultTests.suite,
            ClusterTests.suite,
            ClusterTests.unclusteredSuite,
            WritesInFlightTests.suite,
            WritesInFlightTests.faultSuite,
            SMPTests.suite,
            SMPTests.limitedSuite,
            ConcurrencyTests.suite,
            LockOrderTests.suite,
        ] + InterruptTests.suites + NecessityTests.suites
    }
}
