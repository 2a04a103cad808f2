// CPUPageLists.swift - the page allocator's per-CPU lists of free single pages, in the kernel.
//
// The lists and the rule that keeps them out of the reserves are in
// kernel/Mem/Portable/CPUPageList.swift; this file is where PhysicalMemory uses them:
//   - `takeFromPageList` and `keepOnPageList` are the fast paths of an ordinary single-page
//     allocation and of a single-page free: interrupts off on this CPU and the list's lock,
//     never the kernel lock;
//   - `refillPageList` runs after an ordinary single page came from the centre, with the kernel
//     lock held, and takes a batch more for the next allocations;
//   - `drainPageListsLocked` gives every CPU's pages back to the centre: before a central
//     decision that would take the centre below paging_start, before a multi-page request
//     that found no block gives up, when the pageout thread wakes and before it stops a
//     consumer for want of memory.
// `pagelists=off` on the command line, or too little memory for `smallestHigh` pages per
// CPU, leaves `storage` nil: every page goes through the centre, as before the lists.

import ArchSupport

enum CPUPageLists {
    /// CPUPageList.slots lists of CPUPageList.stride bytes; nil when there are no lists.
    static var storage: UnsafeMutableRawPointer? = nil
    static var limits = CPUPageListLimits.off
    /// Whether the command line allows lists (`pagelists=`).
    static var requested = true
    /// Drained and not used for now: a benchmark that measures the centre's own path turns the
    /// lists off for its loop. Read without a lock (a stale value costs one slower operation).
    static var suspended = false

    /// Sets the lists up for `cpus` CPUs (at boot, once the page allocator exists).
    static func setUp(managedPages: UInt64, cpus: Int) {
        guard requested else {
            Log.info(.pmm, "CPU page lists: off (pagelists=off): every page goes through the buddy allocator")
            return
        }
        limits = CPUPageListLimits.derive(managedPages: managedPages, cpus: cpus)
        guard limits.isOn else {
            Log.info(.pmm, "CPU page lists: off: \(managedPages) pages for \(cpus) CPUs is under \(CPUPageListLimits.smallestHigh) pages per CPU at 1/256 of memory")
            return
        }
        let memory = UnsafeMutableRawPointer.allocate(byteCount: CPUPageList.slots * CPUPageList.stride, alignment: 64)
        CPUPageList.initialize(memory)
        storage = memory
        Log.info(.pmm, "CPU page lists: up to \(limits.high) free pages per CPU, moved \(limits.batch) at a time, for \(cpus) CPUs; only while \(PhysicalMemory.thresholds.pagingStart) or more pages are free in the buddy allocator (docs/allocators.md)")
    }

    /// Whether the lists may hand out or keep pages now: they exist, are not suspended, and the
    /// centre is at or above paging_start. Read without a lock.
    @inline(__always)
    static func mayWork(_ storage: UnsafeMutableRawPointer?) -> Bool {
        storage != nil && !suspended && PhysicalMemory.buddy!.pointee.freePages >= PhysicalMemory.thresholds.pagingStart
    }

    /// The running CPU's list (interrupts are off).
    @inline(__always)
    static func currentList(_ storage: UnsafeMutableRawPointer) -> UnsafeMutablePointer<CPUPageList> {
        CPUPageList.list(storage, PerCPU.runningIndex)
    }

    /// A list's lock: an atomic word (KernelZoneEnvironment.lockCache), which answers TLB
    /// shootdowns and zone cache requests while it spins. (The zones' CPU slots had the same
    /// lock until ZoneCacheRequests replaced it; the lists keep theirs - see allocators.md.)
    @inline(__always)
    static func lock(_ list: UnsafeMutablePointer<CPUPageList>) { KernelZoneEnvironment.lockCache(CPUPageList.lockWord(list)) }

    @inline(__always)
    static func unlock(_ list: UnsafeMutablePointer<CPUPageList>) { KernelZoneEnvironment.unlockCache(CPUPageList.lockWord(list)) }

    @inline(__always)
    static func descriptor(_ page: PageIndex) -> UnsafeMutablePointer<BuddyDescriptor> {
        PhysicalMemory.memDescs![page.int].buddy!
    }

    // MARK: - Fast paths

    /// A single page from the running CPU's list, without the kernel lock; nil when the list
    /// is empty or the lists may not work now.
    @inline(__always)
    static func take() -> PageIndex? {
        let storage = self.storage
        guard mayWork(storage) else { return nil }
        let wasEnabled = KernelZoneEnvironment.enterCPU()
        let list = currentList(storage!)
        lock(list)
        let page = CPUPageList.pop(list)
        if let page {
            descriptor(page).pointee.flags.remove(.onCPUList)
            list.pointee.allocations &+= 1
        }
        unlock(list)
        KernelZoneEnvironment.leaveCPU(wasEnabled)
        return page
    }

    /// Keeps a freed single page on the running CPU's list; false when it must go to the centre
    /// (the lists may not work now, or a thread waits in vm_wait). A full list first gives its
    /// oldest batch back to the centre, under the kernel lock.
    static func keep(_ page: PageIndex) -> Bool {
        let storage = self.storage
        guard mayWork(storage) && VMWait.waiters == 0 else { return false }
        let wasEnabled = KernelZoneEnvironment.enterCPU()
        let list = currentList(storage!)
        lock(list)
        let kept = Int(list.pointee.count) < limits.high
        if kept { push(page, on: list) }
        unlock(list)
        KernelZoneEnvironment.leaveCPU(wasEnabled)
        if kept { return true }
        withInterruptsDisabled {
            PerCPU.this.pointee.pageAllocatorSections &+= 1
            let list = currentList(storage!)
            lock(list)
            CPUPageList.removeOldest(limits.batch, from: list) { giveBack($0) }
            list.pointee.flushes &+= 1
            push(page, on: list)
            unlock(list)
        }
        return true
    }

    @inline(__always)
    private static func push(_ page: PageIndex, on list: UnsafeMutablePointer<CPUPageList>) {
        descriptor(page).pointee.flags.insert(.onCPUList)
        CPUPageList.push(page, on: list)
        list.pointee.frees &+= 1
    }

    /// A listed page back to the buddy allocator (its list's lock and the kernel lock held).
    private static func giveBack(_ page: PageIndex) {
        descriptor(page).pointee.flags.remove(.onCPUList)
        PhysicalMemory.buddy!.pointee.free(page, order: 0)
    }

    // MARK: - With the kernel lock

    /// After an ordinary single page came from the centre: takes up to a batch more onto the
    /// running CPU's list, while the centre stays at or above paging_start. Pages come one by
    /// one from the buddy allocator, with their descriptors noted like any allocation's.
    static func refillLocked() {
        guard let storage, !suspended else { return }
        let list = currentList(storage)
        let allocator = PhysicalMemory.buddy!
        lock(list)
        var taken = 0
        while taken < limits.batch && Int(list.pointee.count) < limits.high {
            let extra = allocator.pointee.extraPages(order: 0, .aboveReserve)
            guard allocator.pointee.freePages >= PhysicalMemory.thresholds.pagingStart + 1 + extra,
                  let page = allocator.pointee.allocate(order: 0, .aboveReserve) else { break }
            PhysicalMemory.noteDescriptors(page, .ordinary)
            descriptor(page).pointee.flags.insert(.onCPUList)
            CPUPageList.push(page, on: list)
            taken += 1
        }
        if taken > 0 { list.pointee.refills &+= 1 }
        unlock(list)
    }

    /// Gives every CPU's listed pages back to the centre (the kernel lock is held). Returns
    /// how many.
    @discardableResult
    static func drainLocked() -> Int {
        guard let storage else { return 0 }
        var drained = 0
        for index in 0..<SMP.areasUsed where index < CPUPageList.slots {
            let list = CPUPageList.list(storage, index)
            guard list.pointee.count > 0 else { continue }
            lock(list)
            drained += Int(list.pointee.count)
            CPUPageList.removeOldest(Int(list.pointee.count), from: list) { giveBack($0) }
            unlock(list)
        }
        return drained
    }

    /// Drains every list and wakes the threads in vm_wait if that freed anything. Returns how
    /// many pages came back.
    @discardableResult
    static func drain() -> Int {
        guard storage != nil else { return 0 }
        let drained = withInterruptsDisabled { drainLocked() }
        if drained > 0 { VMWait.pagesFreed() }
        return drained
    }

    /// Runs `body` with the lists drained and unused (a benchmark of the centre's own path).
    static func whileSuspended<R>(_ body: () -> R) -> R {
        let was = suspended
        suspended = true
        drain()
        defer { suspended = was }
        return body()
    }

    // MARK: - Counts

    /// Pages on every list: free, but not the centre's. A racy sum (no list lock): a figure
    /// for `PhysicalMemory.freePages` and for tables, never for a reserve decision.
    static var pages: UInt64 {
        guard let storage else { return 0 }
        var total: Int32 = 0
        for index in 0..<SMP.areasUsed where index < CPUPageList.slots { total &+= CPUPageList.list(storage, index).pointee.count }
        return UInt64(total)
    }

    /// CPU `index`'s list (the lists exist).
    static func list(_ index: Int) -> UnsafeMutablePointer<CPUPageList> { CPUPageList.list(storage!, index) }

    /// The running CPU's list length (a test's view).
    static var pagesOnThisCPU: Int {
        guard let storage else { return 0 }
        return withInterruptsDisabled { Int(currentList(storage).pointee.count) }
    }

    /// Totals of every list's counters.
    static var totals: CPUPageList {
        var sum = CPUPageList()
        guard let storage else { return sum }
        for index in 0..<SMP.areasUsed where index < CPUPageList.slots {
            let list = CPUPageList.list(storage, index).pointee
            sum.count &+= list.count
            sum.allocations &+= list.allocations
            sum.frees &+= list.frees
            sum.refills &+= list.refills
            sum.flushes &+= list.flushes
        }
        return sum
    }

    static func logStatistics() {
        guard storage != nil else { return }
        let sum = totals
        Log.info(.pmm, "CPU page lists: \(sum.count) pages on them now; \(sum.allocations) allocations and \(sum.frees) frees served by them, \(sum.refills) batches taken from the buddy allocator and \(sum.flushes) given back by full lists")
    }
}
