// BuddyDescriptorPool.swift - where buddy descriptors come from: the buddy-descriptor zone.
//
// Descriptors live in pages of descriptors: a small header at the start of the page, then
// `descriptorsPerPage` descriptors. The first page is a static slab in the kernel image, so
// that the buddy allocator can describe its first free blocks before any page is free
// (problem A of the seeds, again); every later page is a page of RAM the buddy allocator takes
// for the pool itself (BuddyAllocator.growDescriptors) and which describes itself - one of its
// own descriptors is the descriptor of the page (flag .descriptorPage) - so that growing the
// pool never needs a descriptor from the pool. The switch from the static page to dynamic
// pages is counted here and logged by the kernel (PhysicalMemory).
//
// The pool keeps `reserveTarget` descriptors that only the pageout path may take (access
// `.reserve`): every other request that would leave fewer grows the pool first, taking a page
// under its own page policy, and fails if it cannot. So the pageout path never needs a page
// for a descriptor unless it draws more than the reserve, which ReserveBounds sizes from its
// page draws (docs/memory-descriptors.md, "Reserves"); a draw into the reserve is noted and
// checked against its bound like the zones' draws (ReserveDraw.swift).
//
// Taking a descriptor is an allocation: it checks FreePath first, so a free path that took
// one would be caught (freeing never allocates). Giving one back is not.
//
// No lock of its own: the pool is part of the buddy allocator and shares its exclusion.
//
// Giving pages back (`detachMovablePages`): a dynamic page none of whose descriptors but its
// own describes an allocated block. Descriptors of free blocks can move - only the allocator
// points to them (the blocks' mem_desc words and the free lists) - so the buddy allocator's
// reclaim moves them to other pages, then frees the page (BuddyAllocator.reclaimDescriptorPages).
// A reclaim, run by the pageout thread's reaping, never part of a free: it takes descriptors
// from the rest of the pool, one per block moved and one for the block the page becomes. Without it a burst of fragmentation leaves its
// descriptor pages scattered through memory for ever, splitting the blocks around them.

/// Which descriptors a request may take.
public enum DescriptorAccess {
    /// Leave `reserveTarget` in the pool (ordinary and system requests, and boot).
    case aboveReserve
    /// Every descriptor (the pageout path).
    case reserve
}

/// The header of a page of descriptors.
public struct DescriptorPageHeader {
    /// The next page of the pool (a list of every page, static and dynamic).
    public var nextPage: UnsafeMutablePointer<DescriptorPageHeader>? = nil
    /// Descriptors of this page not in the pool's free list (a dynamic page's own included).
    public var inUse: UInt32 = 0
    public var isStatic = false
    /// Set while the page is being taken out of the pool (detachIdlePages).
    var detaching = false
}

public struct BuddyDescriptorPool {
    /// Every page of descriptors is one 4 KiB page, aligned, so a descriptor's page header is
    /// found by masking its address.
    public static let pageBytes = 4096
    /// The header's room at the start of a page (rounded so descriptors stay 8-aligned).
    static let headerBytes = (MemoryLayout<DescriptorPageHeader>.stride + 7) & ~7
    public static var descriptorsPerPage: Int { (pageBytes - headerBytes) / MemoryLayout<BuddyDescriptor>.stride }

    var freeList: UnsafeMutablePointer<BuddyDescriptor>? = nil
    var pageList: UnsafeMutablePointer<DescriptorPageHeader>? = nil
    /// Descriptors in the pool, ready to be taken.
    public private(set) var freeCount = 0
    /// Descriptors taken and not given back: each describes a free or an allocated block.
    public private(set) var inUse = 0
    public private(set) var staticPages = 0
    public private(set) var dynamicPages = 0
    /// Dynamic pages taken out of the pool again and given back to the allocator.
    public private(set) var pagesGivenBack = 0
    /// Descriptors taken before the first dynamic page was added (the static slab's share).
    public private(set) var takenBeforeSwitch = 0
    /// Descriptors only `.reserve` access may take.
    public var reserveTarget = 0
    /// The deepest a `.reserve` take left the pool below reserveTarget, and the bound the
    /// kernel checks it against (Int.max: unchecked).
    public var deepestReserveDraw = 0
    public var reserveDrawBound = Int.max
    /// The first draw beyond the bound (0: none), for the kernel to panic about.
    public private(set) var drawBeyondBound = 0
    /// Descriptors below the reserve line that a test took on purpose before it let the
    /// pageout path run (PhysicalMemory.whilePagesBelowFreeMinAreHeld): the path's draws are
    /// counted below them, as its page draws are counted below the pages the test holds.
    public var heldBelowReserveLine = 0
    public var deepestDrawChain = DrawChain()
    /// zonedebug=doublefree or poison for descriptors (`enableDebugChecks`): a descriptor given
    /// back must be in use, one taken must describe nothing - and with poison a descriptor in
    /// the pool has its unused fields filled with 0x6b, checked when it is taken again, so a
    /// write through a stale pointer to a merged block's descriptor stops the kernel at the
    /// next take. Off by default, like the zones' checks: take and give are on every split and
    /// merge, and the checks cost the page pair about 33 guest instructions.
    public private(set) var debugChecks = false
    public private(set) var poisonsFreeDescriptors = false
    static let poisonLink = UnsafeMutablePointer<BuddyDescriptor>(bitPattern: UInt(0x6b6b_6b6b_6b6b_6b6b))
    static let poisonPage = PageIndex(rawValue: 0x6b6b_6b6b)
    static let poisonOrder: UInt8 = 0x6b

    public init() {}

    /// Whether the first dynamic page has been added.
    public var isDynamic: Bool { dynamicPages > 0 }

    /// How many descriptors a request with `access` may take now.
    @inline(__always)
    public func available(_ access: DescriptorAccess) -> Int {
        switch access {
        case .reserve: return freeCount
        case .aboveReserve: return max(0, freeCount - reserveTarget)
        }
    }

    /// Adds a page of descriptors (`memory`: 4 KiB, page-aligned). For a dynamic page the
    /// first descriptor is kept out of the pool and returned: it is the page's own.
    public mutating func addPage(_ memory: UnsafeMutableRawPointer, isStatic: Bool) -> UnsafeMutablePointer<BuddyDescriptor>? {
        precondition(UInt(bitPattern: memory) & UInt(BuddyDescriptorPool.pageBytes - 1) == 0, "buddy descriptors: a descriptor page must be page-aligned")
        let header = memory.bindMemory(to: DescriptorPageHeader.self, capacity: 1)
        header.initialize(to: DescriptorPageHeader())
        header.pointee.isStatic = isStatic
        header.pointee.nextPage = pageList
        pageList = header
        let first = (memory + BuddyDescriptorPool.headerBytes).bindMemory(to: BuddyDescriptor.self, capacity: BuddyDescriptorPool.descriptorsPerPage)
        first.initialize(repeating: BuddyDescriptor(), count: BuddyDescriptorPool.descriptorsPerPage)
        // Pushed last to first, so the page's lowest descriptors are taken first.
        let own = isStatic ? 0 : 1
        for index in stride(from: BuddyDescriptorPool.descriptorsPerPage - 1, through: own, by: -1) {
            if poisonsFreeDescriptors { poison(first + index) }
            first[index].next = freeList
            freeList = first + index
        }
        freeCount += BuddyDescriptorPool.descriptorsPerPage - own
        if isStatic {
            staticPages += 1
            return nil
        }
        if dynamicPages == 0 { takenBeforeSwitch = inUse }
        dynamicPages += 1
        header.pointee.inUse = 1
        inUse += 1
        return first
    }

    /// Takes a descriptor. The caller has made sure one is available to its access (the
    /// buddy allocator fails the allocation, or grows the pool, before it gets here).
    @inline(__always)
    public mutating func take(_ access: DescriptorAccess) -> UnsafeMutablePointer<BuddyDescriptor> {
        FreePath.checkAllocation(.buddyDescriptor)
        precondition(available(access) > 0, "buddy descriptors: taken beyond what the access allows")
        let descriptor = freeList!
        if debugChecks { checkPooled(descriptor) }
        freeList = descriptor.pointee.next
        freeCount -= 1
        inUse += 1
        BuddyDescriptorPool.header(of: descriptor).pointee.inUse += 1
        descriptor.pointee = BuddyDescriptor()
        if access == .reserve && freeCount + heldBelowReserveLine < reserveTarget {
            noteReserveDraw(reserveTarget - freeCount - heldBelowReserveLine)
        }
        return descriptor
    }

    /// Gives a descriptor back (a merge on free released it). Never allocates.
    @inline(__always)
    public mutating func give(_ descriptor: UnsafeMutablePointer<BuddyDescriptor>) {
        if debugChecks { resetChecked(descriptor) } else { descriptor.pointee = BuddyDescriptor() }
        descriptor.pointee.next = freeList
        freeList = descriptor
        freeCount += 1
        inUse -= 1
        BuddyDescriptorPool.header(of: descriptor).pointee.inUse -= 1
    }

    /// Dynamic pages that describe no allocated block but themselves: what a reclaim can give
    /// back (`isMovable`).
    public var movablePages: Int {
        var count = 0
        var page = pageList
        while let current = page {
            if isMovable(current) { count += 1 }
            page = current.pointee.nextPage
        }
        return count
    }

    /// Whether a dynamic page can be emptied: besides its own, its descriptors are in the pool
    /// or describe free blocks - which the allocator can move to another page, since nobody
    /// but the allocator points to them. An allocated block's descriptor pins its page.
    func isMovable(_ page: UnsafeMutablePointer<DescriptorPageHeader>) -> Bool {
        guard !page.pointee.isStatic else { return false }
        if page.pointee.inUse == 1 { return true }
        let first = BuddyDescriptorPool.ownDescriptor(of: page)
        for index in 1..<BuddyDescriptorPool.descriptorsPerPage where first[index].state == .allocated { return false }
        return true
    }

    /// Takes up to `limit` movable dynamic pages (`isMovable`) out of the pool: their free
    /// descriptors leave the free list, the pages leave the page list, and none of their
    /// descriptors is counted in use any more. Returns them as a list through `nextPage`. The
    /// caller moves the free blocks they still describe to descriptors taken from the pool,
    /// describes each page with one more, and frees it. O(pages x descriptorsPerPage + free
    /// descriptors). Never allocates.
    public mutating func detachMovablePages(limit: Int) -> UnsafeMutablePointer<DescriptorPageHeader>? {
        var detached: UnsafeMutablePointer<DescriptorPageHeader>? = nil
        var count = 0
        var previous: UnsafeMutablePointer<DescriptorPageHeader>? = nil
        var page = pageList
        while count < limit, let current = page {
            page = current.pointee.nextPage
            guard isMovable(current) else {
                previous = current
                continue
            }
            if let previous = previous { previous.pointee.nextPage = page } else { pageList = page }
            current.pointee.detaching = true
            current.pointee.nextPage = detached
            detached = current
            count += 1
            freeCount -= BuddyDescriptorPool.descriptorsPerPage - Int(current.pointee.inUse)
            inUse -= Int(current.pointee.inUse)
        }
        guard count > 0 else { return nil }
        // The free list without the detached pages' descriptors, in the order it had.
        var kept: UnsafeMutablePointer<BuddyDescriptor>? = nil
        var last: UnsafeMutablePointer<BuddyDescriptor>? = nil
        var descriptor = freeList
        while let current = descriptor {
            descriptor = current.pointee.next
            if BuddyDescriptorPool.header(of: current).pointee.detaching { continue }
            current.pointee.next = nil
            if let last = last { last.pointee.next = current } else { kept = current }
            last = current
        }
        freeList = kept
        dynamicPages -= count
        pagesGivenBack += count
        return detached
    }

    /// A detached page's own descriptor (its first).
    public static func ownDescriptor(of page: UnsafeMutablePointer<DescriptorPageHeader>) -> UnsafeMutablePointer<BuddyDescriptor> {
        (UnsafeMutableRawPointer(page) + headerBytes).assumingMemoryBound(to: BuddyDescriptor.self)
    }

    /// Fills a pooled descriptor's unused fields with the poison (zonedebug=poison only: off the
    /// allocator's fast path).
    @inline(never)
    func poison(_ descriptor: UnsafeMutablePointer<BuddyDescriptor>) {
        descriptor.pointee.prev = BuddyDescriptorPool.poisonLink
        descriptor.pointee.firstPage = BuddyDescriptorPool.poisonPage
        descriptor.pointee.order = BuddyDescriptorPool.poisonOrder
        descriptor.pointee.flags = BuddyFlags(rawValue: BuddyDescriptorPool.poisonOrder)
    }

    /// A descriptor about to leave the pool describes nothing; poisoned, its other fields still
    /// hold the fill.
    @inline(never)
    func checkPooled(_ descriptor: UnsafeMutablePointer<BuddyDescriptor>) {
        let found = descriptor.pointee
        precondition(found.state == .unused, "buddy descriptors: a descriptor in the pool is in use (a write after it was given back, or a corrupt free list)")
        guard poisonsFreeDescriptors else { return }
        precondition(found.prev == BuddyDescriptorPool.poisonLink && found.firstPage == BuddyDescriptorPool.poisonPage
                     && found.order == BuddyDescriptorPool.poisonOrder && found.flags.rawValue == BuddyDescriptorPool.poisonOrder,
                     "buddy descriptors: a descriptor was written after it was given back (its poison is disturbed)")
    }

    /// A descriptor coming back must be in use; it is cleared, and poisoned when that is on.
    @inline(never)
    func resetChecked(_ descriptor: UnsafeMutablePointer<BuddyDescriptor>) {
        precondition(descriptor.pointee.state != .unused, "buddy descriptors: a descriptor given back twice")
        descriptor.pointee = BuddyDescriptor()
        if poisonsFreeDescriptors { poison(descriptor) }
    }

    /// Turns the checks on (`poison`: with the fill); every descriptor now in the pool is
    /// poisoned at once, so that the first take finds the fill.
    public mutating func enableDebugChecks(poison poisoning: Bool) {
        debugChecks = true
        poisonsFreeDescriptors = poisoning
        guard poisoning else { return }
        var descriptor = freeList
        while let current = descriptor {
            poison(current)
            descriptor = current.pointee.next
        }
    }

    @inline(__always)
    static func header(of descriptor: UnsafeMutablePointer<BuddyDescriptor>) -> UnsafeMutablePointer<DescriptorPageHeader> {
        UnsafeMutablePointer(bitPattern: UInt(bitPattern: descriptor) & ~UInt(pageBytes - 1))!
    }

    private mutating func noteReserveDraw(_ depth: Int) {
        let withinBound = ReserveDraws.note(depth, bound: reserveDrawBound, deepest: &deepestReserveDraw,
                                            chain: &deepestDrawChain, caller: { DrawChain() })
        if !withinBound && drawBeyondBound == 0 { drawBeyondBound = depth }
    }

    /// Walks the pool: every free descriptor unused, the counts add up, every page's inUse
    /// matches. O(descriptors).
    public func isConsistent() -> Bool {
        var free = 0
        var descriptor = freeList
        while let current = descriptor {
            guard current.pointee.state == .unused else { return false }
            free += 1
            descriptor = current.pointee.next
        }
        var pagesSeen = 0, inUseByPages = 0
        var page = pageList
        while let current = page {
            pagesSeen += 1
            inUseByPages += Int(current.pointee.inUse)
            page = current.pointee.nextPage
        }
        return free == freeCount && pagesSeen == staticPages + dynamicPages && inUseByPages == inUse
            && freeCount + inUse == (staticPages + dynamicPages) * BuddyDescriptorPool.descriptorsPerPage
    }
}
