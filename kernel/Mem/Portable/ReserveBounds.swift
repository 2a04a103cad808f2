// ReserveBounds.swift - how much of each reserve the paths that must make progress can need:
// the one source of truth. docs/reserves.md derives every number here from the worst-case
// chain of allocations of each path; the kernel sizes its reserves from these constants; the
// tests check that the deepest reserve use ever observed stays within the bounds, and that a
// reserve one below a tight bound makes the path fail.
//
// Who may take reserves (AllocationContext.mayUseZoneReserves): the pageout thread, one step
// at a time, under the pageout context (zone reserves and the pages below free_min), and the
// refill of the kmem-backed swblock zone, under the system context (zone reserves, no page
// below free_min), which runs at most once at a time (a zone is never refilled inside its own
// refill) and takes map and PV entries for its slab.

public struct ReserveNeeds: Equatable {
    public var swapBlocks: Int
    public var mapEntries: Int
    public var pvEntries: Int
    /// Pages below free_min (the pageout requester only).
    public var pages: Int

    public init(swapBlocks: Int, mapEntries: Int, pvEntries: Int, pages: Int) {
        self.swapBlocks = swapBlocks
        self.mapEntries = mapEntries
        self.pvEntries = pvEntries
        self.pages = pages
    }

    public static func + (a: ReserveNeeds, b: ReserveNeeds) -> ReserveNeeds {
        ReserveNeeds(swapBlocks: a.swapBlocks + b.swapBlocks, mapEntries: a.mapEntries + b.mapEntries,
                     pvEntries: a.pvEntries + b.pvEntries, pages: a.pages + b.pages)
    }
}

public enum ReserveBounds {
    /// Pages of one swblock slab (kmem-backed, 16 KiB).
    public static let swapBlockSlabPages = 4
    /// Page-table pages one new kmem mapping can need: a PD and a PT (kernel_map's PDPT is
    /// allocated at boot and never freed).
    public static let tablePagesPerMapping = 2

    /// One pageout step that does not grow a zone: cleaning one dirty page whose block has no
    /// swblock yet. The pager window's page tables are allocated at boot and never freed, so
    /// it takes no page; the window's map entry and PV entry are back in their zones when the
    /// step ends. These needs are tight (ReserveBoundTests shows one fewer fails).
    public static let pageoutStep = ReserveNeeds(swapBlocks: 1, mapEntries: 1, pvEntries: 1, pages: 0)

    /// The pageout thread growing the swblock zone itself (its reserve is empty and refills
    /// failed): a 16 KiB slab in kmem - its map entry, a PV entry per page, its pages and up to
    /// two page-table pages, all from the reserves and the pageout tier.
    public static let pageoutZoneGrowth = ReserveNeeds(swapBlocks: 0, mapEntries: 1, pvEntries: swapBlockSlabPages,
                                                       pages: swapBlockSlabPages + tablePagesPerMapping)

    /// One refill of the swblock zone (system context, so no page below free_min): the slab's
    /// kmem entry and one PV entry per slab page.
    public static let swapBlockRefill = ReserveNeeds(swapBlocks: 0, mapEntries: 1, pvEntries: swapBlockSlabPages, pages: 0)

    /// A kernel_map insert by VM internals (a submap, a pager window): one map entry. The
    /// map_entry zone grows from the direct map, so it never needs an entry to grow.
    public static let kernelMapInsert = ReserveNeeds(swapBlocks: 0, mapEntries: 1, pvEntries: 0, pages: 0)

    /// Steps the pageout thread may have to take with no free page at all before it can grow a
    /// zone: each frees one page, and growing takes pageoutZoneGrowth.pages of them.
    public static var stepsWithoutPages: Int { pageoutZoneGrowth.pages }

    /// The most each reserve can be drawn down: the pageout thread carried through
    /// stepsWithoutPages steps (each taking a swblock for good, and a window's entries for the
    /// step), then growing the swblock zone, while one swblock refill holds entries too.
    public static var bound: ReserveNeeds {
        ReserveNeeds(swapBlocks: pageoutStep.swapBlocks * stepsWithoutPages,
                     mapEntries: pageoutStep.mapEntries + pageoutZoneGrowth.mapEntries + swapBlockRefill.mapEntries,
                     pvEntries: pageoutStep.pvEntries + pageoutZoneGrowth.pvEntries + swapBlockRefill.pvEntries,
                     pages: pageoutZoneGrowth.pages)
    }

    /// Reserves are twice what the analysis says can be used, so that a use beyond the
    /// analysis is observed (and fails the bound test) instead of being absorbed.
    public static let margin = 2
    public static var swapBlockReserve: Int { bound.swapBlocks * margin }
    public static var mapEntryReserve: Int { bound.mapEntries * margin }
    public static var pvEntryReserve: Int { bound.pvEntries * margin }
    /// The floor of free_min: the pages below it are the pageout thread's alone.
    public static var pageoutPages: Int { bound.pages }

    /// The longest chain of zones growing each other: swblock grows through kmem, which needs
    /// a map entry and PV entries, whose zones grow from the direct map and need nothing.
    public static let zoneGrowthChain = 2
}
