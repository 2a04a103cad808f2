// CPUPageListTests.swift - the per-CPU page lists in the kernel (kernel/Mem/CPUPageLists.swift):
// a freed page waits on its CPU's list and is the next one handed out there, a page freed twice
// while it waits is caught, and - the property the reserves rest on - pages on any CPU's list
// are back in the buddy allocator before a requester's floor decides anything.
//
// The cases are registered in the pmm suite (one CPU, 16 MiB to 8 GiB) and in the smp suite
// (24 MiB at 1, 2 and 4 CPUs, where the lists are off at 4: 5 pages per CPU would be under
// CPUPageListLimits.smallestHigh). Where the lists are off, a case says so and checks nothing.

extension PhysicalMemoryTests {
    /// Whether this boot has lists; when not, says why the case checks nothing.
    static func listsAreOn() -> Bool {
        if CPUPageLists.storage != nil { return true }
        Test.diagnostic("CPU page lists are off at this size and CPU count (limits \(CPUPageLists.limits.high)): nothing to check")
        return false
    }

    static func aFreedPageWaitsOnItsCPUsListAndIsTheNextHandedOut() {
        guard listsAreOn() else { return }
        // Interrupts off and no sleep: the thread stays on this CPU for the whole case, and the
        // page allocator's fast path does not mind (it only needs them off).
        let wasEnabled = CPU.interruptsEnabled
        CPU.disableInterrupts()
        defer { if wasEnabled { CPU.enableInterrupts() } }
        CPUPageLists.drain()
        let before = PhysicalMemory.freePages
        let first = PhysicalMemory.allocate(order: 0, .ordinaryNoWait)!
        Test.expectEqual(CPUPageLists.pagesOnThisCPU, CPUPageLists.limits.batch, "the allocation from the buddy allocator took a batch for this CPU's list")
        Test.expectEqual(PhysicalMemory.freePages, before - 1, "free pages (the listed ones count as free)")
        PhysicalMemory.free(first)
        Test.expectEqual(CPUPageLists.pagesOnThisCPU, CPUPageLists.limits.batch + 1, "the freed page is on this CPU's list")
        Test.expectEqual(PhysicalMemory.freePages, before, "free pages after the free")
        Test.expect(PhysicalMemory.use(of: first) == .allocated, "a listed page is allocated for the buddy allocator (its use: \(PhysicalMemory.use(of: first).name))")
        let again = PhysicalMemory.allocate(order: 0, .ordinaryNoWait)!
        Test.expect(again == first, "the page freed last is handed out first (page \(again.int), freed \(first.int))")
        Test.expectEqual(CPUPageLists.pagesOnThisCPU, CPUPageLists.limits.batch, "the list after the pop")
        PhysicalMemory.free(again)
        Test.expectEqual(CPUPageLists.drain(), CPUPageLists.limits.batch + 1, "pages a drain gave back")
        Test.expectEqual(PhysicalMemory.freePages, before, "free pages after the drain")
        Test.expect(PhysicalMemory.buddy!.pointee.isConsistent(), "buddy invariants hold")
    }

    static func freeingAListedPageAgainPanics() {
        let page = PhysicalMemory.allocate(order: 0, .ordinaryNoWait)!
        PhysicalMemory.free(page)
        Test.diagnostic("the page is on a CPU's list: \(PhysicalMemory.memDescs![page.int].buddy!.pointee.flags.contains(.onCPUList))")
        PhysicalMemory.free(page)
        Test.fail("the second free of a page returned")
    }

    /// Whose list a case fills: the running CPU's (the pmm suite, whose cases run with
    /// preemption off and so cannot wait for a thread), or the last CPU online's (the smp
    /// suite; the running CPU's when it is alone).
    enum ListedOn {
        case thisCPU
        case lastCPU
    }

    /// Pages on a CPU's list (`whose`) are free for
    /// `freePages` but not for the buddy allocator. System requests, which never use the lists,
    /// take the free count down to free_min: that decision is the centre's, so the lists must
    /// be drained into it first, and the count must end at free_min exactly, with no page left
    /// on any list. Without the drain it ends at free_min plus the listed pages, which only
    /// their CPU could have handed out.
    static func listedPagesAreTheCentresBeforeAFloorDecides(on whose: ListedOn) {
        guard listsAreOn() else { return }
        let t = PhysicalMemory.thresholds
        let target = whose == .thisCPU ? PerCPU.this.pointee.index : SMP.areasUsed - 1
        if target == PerCPU.this.pointee.index {
            fillThisCPUsList()
        } else {
            Threads.join(Threads.spawn("page list filler", affinity: .only(target)) { fillThisCPUsList() })
        }
        let listed = CPUPageLists.list(target).pointee.count
        Test.expect(listed > 0 && Int(listed) <= CPUPageLists.limits.high, "pages on CPU \(target)'s list: \(listed) (up to \(CPUPageLists.limits.high))")
        // From here this is the only thread running on any CPU (the pmm suite's cases run so
        // already): the pageout thread, woken below paging_start, must not top up its zones
        // with the pages this case counts.
        Preemption.disable()
        defer { Preemption.enable() }
        let taken = PageBitmap(pages: PhysicalMemory.pageCount)
        let before = FreeCountBefore()
        _ = drain(.system, into: taken)
        Test.expectEqual(PhysicalMemory.freePages, t.freeMin, "system allocations stop at free_min, the listed pages counted")
        Test.expectEqual(CPUPageLists.pages, UInt64(0), "pages left on the CPUs' lists once a floor decided")
        taken.forEach { PhysicalMemory.free($0) }
        let descriptorPages = before.expectAllBack()
        taken.release()
        Test.diagnostic("\(listed) pages were on CPU \(target)'s list; free_min \(t.freeMin); the descriptor pool grew by \(descriptorPages) pages")
    }

    /// Takes a list's worth of single pages and gives them back: they end on this CPU's list.
    static func fillThisCPUsList() {
        let high = CPUPageLists.limits.high
        var taken: [PageIndex] = []
        taken.reserveCapacity(high)
        for _ in 0..<high { taken.append(PhysicalMemory.allocate(order: 0, .ordinary)!) }
        for page in taken { PhysicalMemory.free(page) }
    }
}
