// CPUPageList.swift - each CPU's list of free single pages in front of the buddy allocator
// (Linux's per-CPU pages), its limits, and the rule that keeps it out of the reserves.
//
// A CPU keeps a short stack of order-0 pages: those it freed, and those a refill took from the
// buddy allocator in one batch. A page on a list is allocated as far as the buddy allocator is
// concerned (mem_desc .allocated, its descriptor flagged .onCPUList) and free as far as
// everybody else is: PhysicalMemory.freePages counts it. An ordinary single-page allocation
// or a free of one is a pop or a push on the running CPU's list, with interrupts off and the
// list's own lock: no kernel lock, no threshold, no descriptor, no mem_desc rewrite.
//
// Where the reserves are: in the buddy allocator (the centre), never on a list. The lists work
// only while the centre's free count is at or above paging_start, which is above every
// requester's floor (PagePolicy.swift):
//   - a refill takes pages only while the centre stays at or above paging_start;
//   - a freed page stays on its CPU's list only while the centre is at or above paging_start
//     and no thread waits in vm_wait (a waiter wants pages where the centre can give them);
//   - a pop happens only while the centre is at or above paging_start;
//   - a central decision that would take the centre below paging_start - and a multi-page
//     request that found no block - first drains every CPU's list back to the centre.
// So whenever a tier's floor decides a request, every list is empty (a free racing with the
// drain can park one page, which makes the centre look smaller than everything free, never
// larger), and the reserve derivation (docs/reserves.md) holds at any number of CPUs. What
// the lists cost is at most `high` pages per CPU that only their CPU can hand out while memory
// is plentiful.
//
// Locks: a list's lock protects its pages and counters. Its CPU takes it with interrupts off
// and never waits for anything while holding it; another CPU takes it only with the kernel
// lock held (drains), so the order is always kernel lock, then list lock.

/// One CPU's list: a header of one cache line, then `capacity` page indices. Written by its
/// CPU alone, except by drains.
public struct CPUPageList {
    /// 0 free, 1 held.
    public var lock: UInt32 = 0
    /// Pages on the list: `CPUPageList.pages(list)[0..<count]`, the most recently freed last.
    public var count: Int32 = 0
    /// Pages handed out from the list and pages freed onto it (summed when statistics are read).
    public var allocations: UInt64 = 0
    public var frees: UInt64 = 0
    /// Batches taken from the centre, and batches given back to it because the list was full.
    public var refills: UInt64 = 0
    public var flushes: UInt64 = 0
    var padding: (UInt64, UInt64, UInt64) = (0, 0, 0)

    public init() {}

    /// The most pages a list can hold, whatever the limits say.
    public static let capacity = 64
    /// Lists the kernel keeps: one per CPU it can run (as many as zone caches, CPUCache.slots).
    public static let slots = 64
    /// Bytes from one list to the next: the header and its pages.
    public static let stride = MemoryLayout<CPUPageList>.stride + capacity * MemoryLayout<PageIndex>.stride

    /// The list in slot `index` of `storage` (`slots` lists of `stride` bytes).
    @inline(__always)
    public static func list(_ storage: UnsafeMutableRawPointer, _ index: Int) -> UnsafeMutablePointer<CPUPageList> {
        (storage + index * stride).assumingMemoryBound(to: CPUPageList.self)
    }

    @inline(__always)
    public static func pages(_ list: UnsafeMutablePointer<CPUPageList>) -> UnsafeMutablePointer<PageIndex> {
        UnsafeMutableRawPointer(list + 1).assumingMemoryBound(to: PageIndex.self)
    }

    /// Makes `slots` empty lists in fresh memory of `slots * stride` bytes.
    public static func initialize(_ storage: UnsafeMutableRawPointer) {
        for index in 0..<slots { list(storage, index).initialize(to: CPUPageList()) }
    }

    /// The lock word (the first field) of `list`.
    @inline(__always)
    public static func lockWord(_ list: UnsafeMutablePointer<CPUPageList>) -> UnsafeMutablePointer<UInt32> {
        UnsafeMutableRawPointer(list).assumingMemoryBound(to: UInt32.self)
    }

    /// Takes the most recently freed page (the lock is held); nil when the list is empty.
    @inline(__always)
    public static func pop(_ list: UnsafeMutablePointer<CPUPageList>) -> PageIndex? {
        let count = list.pointee.count
        guard count > 0 else { return nil }
        list.pointee.count = count - 1
        return pages(list)[Int(count - 1)]
    }

    /// Puts `page` on top (the lock is held and the list is below `capacity`).
    @inline(__always)
    public static func push(_ page: PageIndex, on list: UnsafeMutablePointer<CPUPageList>) {
        let count = Int(list.pointee.count)
        precondition(count < capacity, "CPU page list: push on a full list")
        pages(list)[count] = page
        list.pointee.count = Int32(count + 1)
    }

    /// Removes the `count` pages freed longest ago (the bottom of the stack: the coldest) and
    /// hands each to `body`; the others move down. The lock is held.
    public static func removeOldest(_ count: Int, from list: UnsafeMutablePointer<CPUPageList>, _ body: (PageIndex) -> Void) {
        let total = Int(list.pointee.count)
        let taken = min(count, total)
        let slots = pages(list)
        for index in 0..<taken { body(slots[index]) }
        for index in taken..<total { slots[index - taken] = slots[index] }
        list.pointee.count = Int32(total - taken)
    }
}

/// How many pages each CPU's list may hold (`high`) and how many move between a list and the
/// centre at once (`batch`): Linux's pcp->high and pcp->batch.
public struct CPUPageListLimits: Equatable {
    public var high: Int
    public var batch: Int

    public init(high: Int, batch: Int) {
        self.high = high
        self.batch = batch
    }

    /// No lists: every page goes through the centre.
    public static let off = CPUPageListLimits(high: 0, batch: 0)

    public var isOn: Bool { high > 0 }

    /// The fewest pages a list must be allowed to make it worth keeping.
    public static let smallestHigh = 8

    /// Limits for `managedPages` pages shared by `cpus` CPUs: all the lists together hold at
    /// most 1/256 of memory (the proportional part of free_min, PagePolicy.swift), each list at
    /// most `CPUPageList.capacity`; a batch is a quarter of a list. Below `smallestHigh` pages
    /// per CPU there are no lists: 8 pages per CPU need 2 MiB per CPU (512 pages).
    public static func derive(managedPages: UInt64, cpus: Int) -> CPUPageListLimits {
        precondition(cpus >= 1, "CPU page lists for no CPU")
        let share = managedPages / 256 / UInt64(cpus)
        let high = Int(min(share, UInt64(CPUPageList.capacity)))
        guard high >= smallestHigh else { return .off }
        return CPUPageListLimits(high: high, batch: high / 4)
    }
}
