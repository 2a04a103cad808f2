// ReserveBounds.swift - how much of each reserve the paths that must make progress can need:
// the one source of truth. Every path that may draw on a reserve is written below as a chain
// of steps - where the draw happens and what it takes - and the bounds are computed from
// those chains, not written down. docs/reserves.md shows the same chains as tables; the
// kernel sizes its reserves from these constants, panics the moment a draw goes deeper than
// its bound (ZoneAllocator.swift, PhysicalMemory.swift), and `reservebound` drives each chain
// to its bound and one below.
//
// Who may take reserves (AllocationContext.mayUseZoneReserves): the pageout thread, one step
// at a time, under the pageout context (zone reserves and the pages below free_min; a step
// that needs a new swblock first tops the entry zones' reserves up from that tier), and the
// refill of the kmem-backed swblock zone, under the system context (zone reserves, no page
// below free_min), which runs at most once at a time (a zone is never refilled inside its own
// refill). Both also top up the spare-entry stock of the map they reserve in (VMMaps.reserve).

public struct ReserveNeeds: Equatable {
    public var swapBlocks: Int
    public var mapEntries: Int
    public var pvEntries: Int
    /// Pages below free_min (the pageout requester only).
    public var pages: Int

    public init(swapBlocks: Int = 0, mapEntries: Int = 0, pvEntries: Int = 0, pages: Int = 0) {
        self.swapBlocks = swapBlocks
        self.mapEntries = mapEntries
        self.pvEntries = pvEntries
        self.pages = pages
    }

    public static func + (a: ReserveNeeds, b: ReserveNeeds) -> ReserveNeeds {
        ReserveNeeds(swapBlocks: a.swapBlocks + b.swapBlocks, mapEntries: a.mapEntries + b.mapEntries,
                     pvEntries: a.pvEntries + b.pvEntries, pages: a.pages + b.pages)
    }

    public static func * (a: ReserveNeeds, factor: Int) -> ReserveNeeds {
        ReserveNeeds(swapBlocks: a.swapBlocks * factor, mapEntries: a.mapEntries * factor,
                     pvEntries: a.pvEntries * factor, pages: a.pages * factor)
    }
}

/// The maps whose spare-entry stock a privileged caller tops up from the map_entry reserve.
public enum StockedMap: CaseIterable {
    /// The pager submap: the pageout step's window.
    case pager
    /// The kmem submap: a swblock slab's range.
    case kmem
}

/// How long a step's draw stays drawn.
public enum DrawHeld {
    /// Given back before the chain ends (the pager window's entry and PV entry).
    case untilTheChainEnds
    /// Kept after the chain: a swblock stays with the page on swap; a slab keeps its map
    /// entry, PV entries and pages until a reclaim pass frees the slab.
    case afterTheChain
    /// Kept in a map's spare-entry stock, which never holds more than `mapStockTarget`
    /// however many chains top it up: the bound counts each stocked map once.
    case inTheStockOf(StockedMap)
}

/// One allocation of a chain: where it is made and what it takes from the reserves.
public struct ChainStep {
    public let call: StaticString
    public let draws: ReserveNeeds
    public let held: DrawHeld

    public init(_ call: StaticString, _ draws: ReserveNeeds, _ held: DrawHeld) {
        self.call = call
        self.draws = draws
        self.held = held
    }
}

/// A path that draws on the reserves, as the allocations it makes in order.
public struct ReserveChain {
    public let name: StaticString
    public let requester: Requester
    public let steps: [ChainStep]

    /// What the chain takes itself, stock top-ups left out (counted once per map in `bound`).
    public var needs: ReserveNeeds {
        var total = ReserveNeeds()
        for step in steps {
            if case .inTheStockOf = step.held { continue }
            total = total + step.draws
        }
        return total
    }

    /// The maps whose stock this chain tops up.
    public func topsUpStock(of map: StockedMap) -> Bool {
        steps.contains { step in
            if case .inTheStockOf(let stocked) = step.held { return stocked == map }
            return false
        }
    }
}

public enum ReserveBounds {
    /// Pages of one swblock slab (kmem-backed, 16 KiB).
    public static let swapBlockSlabPages = 4
    /// Page-table pages one new kmem mapping can need: a PD and a PT (kernel_map's PDPT is
    /// allocated at boot and never freed).
    public static let tablePagesPerMapping = 2
    /// Spare entries a map keeps for its free paths (VMMaps.defaultStockTarget): a privileged
    /// reservation tops the stock up to this many from the map_entry zone, under its own
    /// context - so from the reserve (issue 15 (a)).
    public static let mapStockTarget = 2

    // MARK: - The chains

    /// One pageout step that does not grow a zone: cleaning one dirty page whose block has no
    /// swblock yet (Pageout.clean -> SwapPager.pageOut, pageout context).
    public static let pageoutStepChain = ReserveChain(name: "pageout step", requester: .pageout, steps: [
        ChainStep("SwapMetadata.assign: the block's swblock", ReserveNeeds(swapBlocks: 1), .afterTheChain),
        ChainStep("SwapPager.withWindow -> Kmem.reserveRange -> VMMaps.reserve(pager, 1)", ReserveNeeds(mapEntries: 1), .untilTheChainEnds),
        ChainStep("VMMaps.reserve: the pager map's stock topped up", ReserveNeeds(mapEntries: mapStockTarget), .inTheStockOf(.pager)),
        ChainStep("SwapPager.withWindow -> Pmap.enter (tables pinned at boot)", ReserveNeeds(pvEntries: 1), .untilTheChainEnds),
    ])

    /// The pageout thread growing the swblock zone itself (its reserve is empty and refills
    /// failed): ZoneRef.grow -> KernelZoneEnvironment.allocateSlab -> Kmem.allocate(16 KiB),
    /// pageout context - every draw from the reserves and the pageout tier.
    public static let pageoutZoneGrowthChain = ReserveChain(name: "pageout zone growth", requester: .pageout, steps: [
        ChainStep("Kmem.allocate -> VMMaps.reserve(kmem, 1): the slab's entry", ReserveNeeds(mapEntries: 1), .afterTheChain),
        ChainStep("VMMaps.reserve: the kmem map's stock topped up", ReserveNeeds(mapEntries: mapStockTarget), .inTheStockOf(.kmem)),
        ChainStep("Kmem.allocate -> PhysicalMemory.allocate(pageout): the slab's pages", ReserveNeeds(pages: swapBlockSlabPages), .afterTheChain),
        ChainStep("Kmem.allocate -> Pmap.enter: a PV entry per page", ReserveNeeds(pvEntries: swapBlockSlabPages), .afterTheChain),
        ChainStep("Pmap.enter -> PhysicalMemory.allocate(pageout tier): PD and PT", ReserveNeeds(pages: tablePagesPerMapping), .afterTheChain),
    ])

    /// One refill of the swblock zone (ZoneRef.refill -> grow(.system) -> Kmem.allocate): the
    /// slab's kmem entry, the kmem stock, a PV entry per slab page. Its pages and page tables
    /// come from the system tier (AllocationContext.forPageTables keeps a system request's
    /// tables above free_min), so it takes no page below free_min.
    public static let swapBlockRefillChain = ReserveChain(name: "swblock refill", requester: .system, steps: [
        ChainStep("Kmem.allocate -> VMMaps.reserve(kmem, 1): the slab's entry", ReserveNeeds(mapEntries: 1), .afterTheChain),
        ChainStep("VMMaps.reserve: the kmem map's stock topped up", ReserveNeeds(mapEntries: mapStockTarget), .inTheStockOf(.kmem)),
        ChainStep("Kmem.allocate -> Pmap.enter: a PV entry per page", ReserveNeeds(pvEntries: swapBlockSlabPages), .afterTheChain),
    ])

    /// The growth above one level deeper (ZoneGrowth depth 2): the kmem slab's map entry or
    /// PV entries find their zone empty, and the zone grows by a direct-map slab of one page
    /// from the pageout tier. With the zone reserves on this cannot happen within the bounds
    /// (each reserve is `margin` times its bound); with them off (reserves= without zones) it
    /// is the pageout path's way through, and `boundWithoutZoneReserves` counts it.
    public static let pageoutNestedGrowthChain = ReserveChain(name: "pageout zone growth at depth 2", requester: .pageout, steps: [
        ChainStep("Kmem.allocate -> VMMaps.reserve -> ZoneRef.grow(map_entry): a direct-map slab", ReserveNeeds(pages: 1), .afterTheChain),
        ChainStep("Pmap.enter -> PVEntries.allocate -> ZoneRef.grow(pv_entry): a direct-map slab", ReserveNeeds(pages: 1), .afterTheChain),
    ])

    /// The pageout thread giving back what earlier chains drew from the entry zones' reserves
    /// (Zones.topUpEntryReserves, pageout context): at the start of every step that needs a
    /// new swblock - the only steps that can grow the swblock zone - each entry zone below its
    /// reserve line is refilled by one direct-map slab from the pageout tier. One slab holds
    /// more objects than the zone's bound (KernelZones checks this at boot), so one page per
    /// zone restores its line. Without it the map entry of each swblock growth stays drawn
    /// until a system refill succeeds - and those take no page below free_min, so when the
    /// pageout thread starts with no free page it grows the zone once per slab of steps
    /// (about 170) before any refill can: free_min / 170 growths, 9 at 1.5 GiB.
    public static let pageoutEntryTopUpChain = ReserveChain(name: "pageout entry top-up", requester: .pageout, steps: [
        ChainStep("Zones.topUpEntryReserves -> ZoneRef.refill(map_entry, pageout): a direct-map slab", ReserveNeeds(pages: 1), .afterTheChain),
        ChainStep("Zones.topUpEntryReserves -> ZoneRef.refill(pv_entry, pageout): a direct-map slab", ReserveNeeds(pages: 1), .afterTheChain),
    ])

    // MARK: - How many run at once, on any number of CPUs

    /// Pageout threads: one, whatever the CPU count (Pageout.start asserts it). Its steps, the
    /// top-up and the growth inside a step run one after the other on whichever CPU it is on.
    public static let pageoutThreads = 1
    /// Refills of the swblock zone holding draws at once: one. The zone's `refilling` flag is
    /// tested and set under the zone lock - the kernel lock, which every CPU takes - so a
    /// refill asked for on another CPU meanwhile returns at once (ZoneRef.refill).
    public static let swapBlockRefillsAtOnce = 1
    /// Page-out writes the pageout thread may have in flight at once (pageoutinflight=, at
    /// most this; PageoutRequests.swift). A write in flight holds no window, no entry and no
    /// page from any reserve - its request slot was allocated at boot and the driver takes
    /// the pages' physical addresses - but its pages come back only when it completes. The
    /// thread takes a request slot before it claims a step's swap slot, so a step begins with
    /// at most this many less one writes unfinished: that many more steps can keep their
    /// swblocks before the freed pages let the zone grow (`stepsBeforeGrowth`).
    public static let pageoutWritesInFlight = 4
    /// Nothing else draws: ordinary threads on the other CPUs never take a reserve (their
    /// context stops them at the lines), and no reserve is split among CPUs - a zone's CPU
    /// magazines hold only objects above its line, and frees go back to the centre while it
    /// is below (ZoneCPUCache.swift). So the bounds below hold for every CPU count; the kernel
    /// logs them with the CPUs online (docs/reserves.md, "N CPUs").

    /// The chains that can hold draws at once: the pageout thread's step (and, when its
    /// swblock zone is empty, the growth it makes inside the step, after the top-up that
    /// begins the step) and one swblock refill.
    public static var chains: [ReserveChain] { [pageoutStepChain, pageoutEntryTopUpChain, pageoutZoneGrowthChain, swapBlockRefillChain] }

    /// What each chain takes itself (the docs and the model read these).
    public static var pageoutStep: ReserveNeeds { pageoutStepChain.needs }
    public static var pageoutZoneGrowth: ReserveNeeds { pageoutZoneGrowthChain.needs }
    public static var swapBlockRefill: ReserveNeeds { swapBlockRefillChain.needs }
    public static var pageoutEntryTopUp: ReserveNeeds { pageoutEntryTopUpChain.needs }

    /// Steps the pageout thread may have to take with no free page at all before it can grow a
    /// zone: each frees one page, the top-ups at the start of the steps may take the first
    /// ones, and growing takes pageoutZoneGrowth.pages more. Each of them keeps its swblock.
    public static var stepsWithoutPages: Int { pageoutEntryTopUp.pages + pageoutZoneGrowth.pages }

    /// Steps that can keep a swblock each before the one that grows the zone: the
    /// stepsWithoutPages whose freed pages it needs, and the writes still in flight when it
    /// begins, whose pages have not come back yet.
    public static var stepsBeforeGrowth: Int { stepsWithoutPages + pageoutWritesInFlight - 1 }

    /// The stocks privileged chains top up, each at most `mapStockTarget` entries.
    public static var stockedEntries: Int {
        var maps = 0
        for map in StockedMap.allCases where chains.contains(where: { $0.topsUpStock(of: map) }) { maps += 1 }
        return maps * mapStockTarget
    }

    /// The most each reserve can be drawn down: the pageout thread carried through
    /// stepsBeforeGrowth steps (each keeping its swblock), then topping the entry zones up and
    /// growing the swblock zone inside a step, while one swblock refill holds its entries, and
    /// every stocked map's stock full of entries from the reserve. A refill takes no page
    /// below free_min. One growth's entries, not one per growth: a growth needs more pages
    /// than a top-up, and the top-up comes first in the step, so a second growth always finds
    /// the first one's draws given back.
    public static var bound: ReserveNeeds {
        let step = pageoutStep, growth = pageoutZoneGrowth, refill = swapBlockRefill, topUp = pageoutEntryTopUp
        // The steps before a growth: only their swblocks stay drawn from one step to the next.
        let steps = ReserveNeeds(swapBlocks: step.swapBlocks * stepsBeforeGrowth, mapEntries: step.mapEntries,
                                 pvEntries: step.pvEntries, pages: step.pages)
        return (steps + topUp + growth) * pageoutThreads + refill * swapBlockRefillsAtOnce + ReserveNeeds(mapEntries: stockedEntries)
    }

    /// Pages below free_min when the zone reserves are off: the swblock growth with both
    /// entry zones growing inside it. Only the page reserve is left to check then.
    public static var boundWithoutZoneReserves: ReserveNeeds {
        ReserveNeeds(pages: pageoutZoneGrowth.pages + pageoutNestedGrowthChain.needs.pages)
    }

    /// Swblocks the pageout thread can draw when the page tiers are off (reserves= without
    /// pages). `stepsWithoutPages` assumes the pages its steps free are kept for it below
    /// free_min; without the tiers ordinary requesters take them as they come (on a DMA disk
    /// they run while the pageout thread waits for each write), so nothing but the reserve
    /// itself bounds the steps before a growth succeeds. When that is spent the pageout path
    /// stalls - the `pages` column of the necessity matrix (docs/reserves.md).
    public static var swapBlocksWithoutPageTier: Int { swapBlockReserve }

    /// Reserves are twice what the analysis says can be used, so that a draw beyond the
    /// analysis reaches the run-time check (which panics) instead of an empty zone.
    public static let margin = 2
    public static var swapBlockReserve: Int { bound.swapBlocks * margin }
    public static var mapEntryReserve: Int { bound.mapEntries * margin }
    public static var pvEntryReserve: Int { bound.pvEntries * margin }
    /// The floor of free_min: the pages below it are the pageout thread's alone.
    public static var pageoutPages: Int { bound.pages }

    /// Buddy descriptors one page allocation can take: a split of the largest block down to
    /// order 0 needs one for each half it leaves (BuddyAllocator.swift).
    public static let buddyDescriptorsPerAllocation = PageOrder.largest
    /// The deepest draw on the buddy-descriptor reserve: the pageout path takes it only for
    /// allocations below free_min (above it, it grows the pool like a system request), and
    /// those are at most `bound.pages` blocks, each splitting at most once.
    public static var buddyDescriptorBound: Int { bound.pages * buddyDescriptorsPerAllocation }
    public static var buddyDescriptorReserve: Int { buddyDescriptorBound * margin }

    /// The longest chain of zones growing each other: swblock grows through kmem, which needs
    /// a map entry and PV entries, whose zones grow from the direct map and need nothing.
    public static let zoneGrowthChain = 2
}
