// BuddyAllocator.swift - the binary buddy allocator over mem_desc words and buddy descriptors.
//
// Physical memory is split into segments (the usable ranges of the memory map). A block of
// order k is 2^k pages whose first frame number is a multiple of 2^k, inside one segment. Every
// block the allocator knows - free or allocated - is described by one buddy descriptor
// (MemDesc.swift), taken from the descriptor pool (BuddyDescriptorPool.swift), and every page
// of the block has a mem_desc word pointing to it. Free blocks are on free list k through
// their descriptors. This is the design of ../shared/seeds/linux-mm-dynamic-memory-descriptors.txt.
//
// Allocating order k takes a block from list k - its descriptor becomes the allocated block's -
// or splits the smallest larger block of order j: the block keeps its descriptor for the part
// handed out, and each of the j - k halves put back needs a new one, taken from the pool *at
// allocation time*. If the pool cannot give them (and cannot grow, below), the allocation
// fails: "If we cannot do so, we simply fail the allocation."
//
// Freeing never allocates. Why it never needs a descriptor: the freed block brings its own
// (the one it was allocated with). Merging with a free buddy of the same order takes the
// buddy off its list; the merged block keeps the freed block's descriptor and the buddy's is
// given back to the pool - each merge *releases* one. When no merge is possible, the freed
// block's own descriptor describes the new free block. So a free ends with exactly one free
// block more than it found, minus the merges, and carries exactly one descriptor for it. The
// count is the invariant: descriptors in use == free blocks + allocated blocks, always.
//
// Pages of descriptors that describe no allocated block go back to the free lists when the
// pageout thread reaps (`reclaimDescriptorPages`, BuddyDescriptorReclaim.swift): the free
// blocks they describe move to descriptors on other pages first. A reclaim that takes
// descriptors, never part of a free.
//
// Growing the pool (`growDescriptors`) is the one recursion, and it stops at once: the
// allocator takes its smallest free block, makes its first page a page of descriptors, lets
// that page describe itself with one of its own descriptors, and describes the rest of the
// block (the halves a split leaves) with the block's old descriptor and the new page's. So the
// worst chain from a page allocation is two deep (alloc_pages -> grow the pool -> a page of
// the allocator's own free memory, described from itself); `chainBound` says so, the depth
// reached is recorded (`deepestChain`) and a deeper one stops the kernel.
//
// Invariants (checked by `isConsistent`, and in part on every call):
//   - every page of a free block has mem_desc (.free, its descriptor); the descriptor is on
//     free list `order`, in state .free, aligned to its size and inside its segment;
//   - every page of an allocated block points to the block's descriptor (state .allocated),
//     with any use but .free and .reserved (its owner's tag);
//   - a .reserved page has no descriptor, and was never given to the allocator;
//   - freePages is the sum of the free blocks' sizes, and no two blocks overlap;
//   - descriptors in use == free blocks + allocated blocks (pages of descriptors included).
// The allocator never touches the pages themselves, except the pages it takes for
// descriptors. Policy (who may take the last pages) is PhysicalMemory's job, not this file's.

public struct BuddySegment {
    /// First page frame number of the segment.
    public var basePFN: UInt64
    public var pageCount: UInt32
    /// Index of the segment's first page in the mem_desc array.
    public var firstIndex: UInt32

    public init(basePFN: UInt64, pageCount: UInt32, firstIndex: UInt32) {
        self.basePFN = basePFN
        self.pageCount = pageCount
        self.firstIndex = firstIndex
    }
}

public struct BuddyAllocator {
    public static let maxOrder = PageOrder.largest
    public static let orderCount = maxOrder + 1
    public static let maxSegments = 64
    /// The deepest the allocator's own chain can go: an allocation (1) that grows the
    /// descriptor pool (2). Growing takes descriptors only from the page it adds.
    public static let chainBound = 2
    public static let pageBytes = 4096

    public let memDescs: UnsafeMutablePointer<MemDesc>
    public let pageCount: Int
    /// Where the pages' contents are: frame f at window + f * 4096 (the direct map; host
    /// tests pass memory of their own). Used only for the pages taken for descriptors.
    let window: UnsafeMutableRawPointer
    let segments: UnsafeMutablePointer<BuddySegment>
    public private(set) var segmentCount = 0
    let freeHeads: UnsafeMutablePointer<UnsafeMutablePointer<BuddyDescriptor>?>
    let freeBlocks: UnsafeMutablePointer<Int>
    public private(set) var freePages: UInt64 = 0
    /// Blocks handed out and not freed, the pool's own pages included.
    public private(set) var allocatedBlocks = 0
    public var descriptors = BuddyDescriptorPool()
    /// The current nesting of allocate/grow, and the deepest it has been.
    public private(set) var chainDepth = 0
    public private(set) var deepestChain = 0

    /// `memDescs` must hold `pageCount` words; they all start .reserved. `scratch` provides
    /// room for the segment table and the list heads (see scratchBytes); `staticDescriptors` is
    /// the static page of descriptors (4 KiB, page-aligned, in the kernel image).
    public init(memDescs: UnsafeMutablePointer<MemDesc>, pageCount: Int, scratch: UnsafeMutableRawPointer,
                window: UnsafeMutableRawPointer, staticDescriptors: UnsafeMutableRawPointer) {
        self.memDescs = memDescs
        self.pageCount = pageCount
        self.window = window
        segments = scratch.bindMemory(to: BuddySegment.self, capacity: BuddyAllocator.maxSegments)
        let heads = scratch + MemoryLayout<BuddySegment>.stride * BuddyAllocator.maxSegments
        freeHeads = heads.bindMemory(to: UnsafeMutablePointer<BuddyDescriptor>?.self, capacity: BuddyAllocator.orderCount)
        let counts = heads + 8 * BuddyAllocator.orderCount
        freeBlocks = counts.bindMemory(to: Int.self, capacity: BuddyAllocator.orderCount)
        for order in 0..<BuddyAllocator.orderCount {
            freeHeads[order] = nil
            freeBlocks[order] = 0
        }
        memDescs.initialize(repeating: .reserved, count: pageCount)
        _ = descriptors.addPage(staticDescriptors, isStatic: true)
    }

    public static var scratchBytes: Int {
        MemoryLayout<BuddySegment>.stride * maxSegments + 8 * orderCount + 8 * orderCount
    }

    /// Declares the next segment: `count` pages starting at frame `basePFN`, described by the
    /// next `count` mem_desc words. Its pages start out reserved; `addFree` releases them.
    public mutating func addSegment(basePFN: UInt64, count: Int) {
        precondition(segmentCount < BuddyAllocator.maxSegments, "buddy: too many physical segments")
        let first = segmentCount == 0 ? 0 : Int(segments[segmentCount - 1].firstIndex + segments[segmentCount - 1].pageCount)
        precondition(first + count <= pageCount, "buddy: segments describe more pages than there are mem_desc words")
        segments[segmentCount] = BuddySegment(basePFN: basePFN, pageCount: UInt32(count), firstIndex: UInt32(first))
        segmentCount += 1
    }

    public func segment(_ number: Int) -> BuddySegment { segments[number] }

    /// The segment holding page `index` (segments are in index order; a machine has a few).
    @inline(__always)
    func segmentNumber(of index: PageIndex) -> Int {
        var number = 0
        while number + 1 < segmentCount && index.rawValue >= segments[number + 1].firstIndex { number += 1 }
        return number
    }

    @inline(__always)
    public func frameNumber(of index: PageIndex) -> UInt64 {
        let segment = segments[segmentNumber(of: index)]
        return segment.basePFN + UInt64(index.rawValue - segment.firstIndex)
    }

    /// The mem_desc array index of frame `pfn`, or nil when no segment holds it.
    @inline(__always)
    public func index(ofFrame pfn: UInt64) -> PageIndex? {
        // A pointer walk with one unsigned compare per segment: kfree and every pmap lookup
        // come here, and a `for` over the segment numbers cost three times as much.
        var segment = segments
        let end = segments + segmentCount
        while segment < end {
            let offset = pfn &- segment.pointee.basePFN
            if offset < UInt64(segment.pointee.pageCount) {
                return PageIndex(rawValue: segment.pointee.firstIndex &+ UInt32(truncatingIfNeeded: offset))
            }
            segment += 1
        }
        return nil
    }

    /// Releases `count` reserved pages starting at `first` (all in one segment) as maximal
    /// aligned blocks - the same shape a fully coalesced allocator would have. Boot only: when
    /// the static descriptors run out, the pool grows from the blocks already released.
    public mutating func addFree(first: PageIndex, count: Int) {
        var index = first.int
        let end = first.int + count
        while index < end {
            let pfn = frameNumber(of: PageIndex(index))
            var order = BuddyAllocator.maxOrder
            while order > 0 && (pfn & ((1 << UInt64(order)) - 1) != 0 || index + (1 << order) > end) { order -= 1 }
            for page in index..<(index + (1 << order)) {
                precondition(memDescs[page] == .reserved, "buddy: a page released twice at boot")
            }
            if descriptors.available(.aboveReserve) == 0 {
                precondition(growDescriptors(), "buddy: no descriptor for a block at boot")
            }
            let descriptor = descriptors.take(.aboveReserve)
            descriptor.pointee.firstPage = PageIndex(index)
            tag(descriptor, pages: index, count: 1 << order, .free)
            pushFree(descriptor, order: order)
            freePages += UInt64(1) << UInt64(order)
            index += 1 << order
        }
    }

    // MARK: - Allocating

    /// Descriptors an allocation of `order` needs from the pool now: one per half a split
    /// leaves (0 when a block of exactly `order` is free, or none is).
    @inline(__always)
    public func descriptorsNeeded(order: Int) -> Int {
        guard let found = smallestFreeOrder(atLeast: order) else { return 0 }
        return found - order
    }

    /// Pages an allocation of `order` with `access` may take beyond its own block to grow the
    /// descriptor pool first (at most; usually 0). The page policy counts them (PhysicalMemory).
    @inline(__always)
    public func extraPages(order: Int, _ access: DescriptorAccess) -> UInt64 {
        // The common case, without looking at the lists: enough for any split.
        if descriptors.available(access) >= BuddyAllocator.maxOrder { return 0 }
        let needed = descriptorsNeeded(order: order)
        guard descriptors.available(access) < needed else { return 0 }
        let kept = access == .reserve ? 0 : descriptors.reserveTarget
        let deficit = kept + needed - descriptors.freeCount
        return UInt64((deficit + BuddyAllocator.netDescriptorsPerPage - 1) / BuddyAllocator.netDescriptorsPerPage)
    }

    /// The fewest descriptors a new page adds to the pool: its own, and up to maxOrder for the
    /// halves of the block it was taken from, are used at once.
    public static var netDescriptorsPerPage: Int { BuddyDescriptorPool.descriptorsPerPage - 1 - maxOrder }

    /// Takes a block of 2^order pages aligned to its size; nil when none is free, or when the
    /// descriptors its split needs cannot be had. Its pages are tagged .allocated.
    public mutating func allocate(order: Int, _ access: DescriptorAccess = .aboveReserve) -> PageIndex? {
        precondition(order >= 0 && order <= BuddyAllocator.maxOrder, "buddy: order out of range")
        enterChain()
        defer { leaveChain() }
        guard var found = smallestFreeOrder(atLeast: order) else { return nil }
        while descriptors.available(access) < found - order {
            // The pool grows from the smallest free block, which may be the one found. Each
            // page adds at least netDescriptorsPerPage, so this ends.
            guard growDescriptors(), let again = smallestFreeOrder(atLeast: order) else { return nil }
            found = again
        }
        let block = freeHeads[found]!
        popFree(block, order: found)
        let first = block.pointee.firstPage.int
        // Split: keep the lower half, describe each upper half with a new descriptor.
        while found > order {
            found -= 1
            let half = descriptors.take(access)
            half.pointee.firstPage = PageIndex(first + (1 << found))
            tag(half, pages: first + (1 << found), count: 1 << found, .free)
            pushFree(half, order: found)
        }
        block.pointee.order = UInt8(order)
        block.pointee.state = .allocated
        tag(block, pages: first, count: 1 << order, .allocated)
        freePages -= UInt64(1) << UInt64(order)
        allocatedBlocks += 1
        return block.pointee.firstPage
    }

    /// Adds a page of descriptors to the pool, taken from the smallest free block; false when
    /// no block is free. Needs no descriptor from the pool: the new page describes itself, the
    /// block's old descriptor describes the largest half left over, and the page's own
    /// descriptors the others.
    @discardableResult
    public mutating func growDescriptors() -> Bool {
        enterChain()
        defer { leaveChain() }
        guard let found = smallestFreeOrder(atLeast: 0) else { return false }
        let block = freeHeads[found]!
        popFree(block, order: found)
        let first = block.pointee.firstPage.int
        let own = descriptors.addPage(pageMemory(PageIndex(first)), isStatic: false)!
        own.pointee.firstPage = PageIndex(first)
        own.pointee.order = 0
        own.pointee.state = .allocated
        own.pointee.flags = .descriptorPage
        memDescs[first] = MemDesc(.slab, own)
        var reusable: UnsafeMutablePointer<BuddyDescriptor>? = block
        var order = found
        while order > 0 {
            order -= 1
            let half = reusable ?? descriptors.take(.reserve)
            reusable = nil
            half.pointee = BuddyDescriptor()
            half.pointee.firstPage = PageIndex(first + (1 << order))
            tag(half, pages: first + (1 << order), count: 1 << order, .free)
            pushFree(half, order: order)
        }
        if let unneeded = reusable { descriptors.give(unneeded) }
        freePages -= 1
        allocatedBlocks += 1
        return true
    }

    // MARK: - Freeing

    /// Returns a block from `allocate(order:)`, its pages tagged .allocated again by its owner.
    /// Never allocates: the block's own descriptor describes what it becomes (above). Freeing
    /// a page that is already free (or reserved, or still typed by its owner) stops the
    /// kernel: the mem_desc says so, and the lists would be corrupted otherwise.
    public mutating func free(_ block: PageIndex, order: Int) {
        precondition(block.int < pageCount, "buddy: free of a page index out of range")
        let word = memDescs[block.int]
        precondition(word.use != .free, "buddy: double free of a page")
        precondition(word.use != .reserved, "buddy: free of a reserved page")
        precondition(word.use == .allocated, "buddy: free of a page its owner has not given back")
        let descriptor = word.buddy!
        precondition(descriptor.pointee.firstPage == block && descriptor.pointee.state == .allocated,
                     "buddy: free of a page that is not the first of an allocated block")
        precondition(Int(descriptor.pointee.order) == order, "buddy: free with a different order than allocated")
        freePages += UInt64(1) << UInt64(order)
        allocatedBlocks -= 1
        descriptor.pointee.flags = []
        tag(descriptor, pages: block.int, count: 1 << order, .free)
        var current = order
        let segment = segments[segmentNumber(of: block)]
        while current < BuddyAllocator.maxOrder {
            let head = descriptor.pointee.firstPage
            let pfn = segment.basePFN + UInt64(head.rawValue - segment.firstIndex)
            let buddyPFN = pfn ^ (UInt64(1) << UInt64(current))
            guard buddyPFN >= segment.basePFN, buddyPFN + (UInt64(1) << UInt64(current)) <= segment.basePFN + UInt64(segment.pageCount) else { break }
            let buddyIndex = PageIndex(rawValue: segment.firstIndex + UInt32(buddyPFN - segment.basePFN))
            let buddyWord = memDescs[buddyIndex.int]
            guard buddyWord.use == .free, let other = buddyWord.buddy,
                  other.pointee.firstPage == buddyIndex, Int(other.pointee.order) == current else { break }
            popFree(other, order: current)
            // The merged block keeps the freed block's descriptor; the buddy's goes back.
            tag(descriptor, pages: buddyIndex.int, count: 1 << current, .free)
            if buddyIndex < head { descriptor.pointee.firstPage = buddyIndex }
            descriptors.give(other)
            current += 1
        }
        pushFree(descriptor, order: current)
    }

    // MARK: - Looking at blocks

    public func freeBlockCount(order: Int) -> Int { freeBlocks[order] }

    public var freeBlockTotal: Int {
        var total = 0
        for order in 0..<BuddyAllocator.orderCount { total += freeBlocks[order] }
        return total
    }

    public func firstFreeBlock(order: Int) -> UnsafeMutablePointer<BuddyDescriptor>? { freeHeads[order] }

    /// The descriptor of page `index`'s block (nil for a reserved page).
    @inline(__always)
    public func descriptor(of index: PageIndex) -> UnsafeMutablePointer<BuddyDescriptor>? { memDescs[index.int].buddy }

    @inline(__always)
    public func use(of index: PageIndex) -> PageUse { memDescs[index.int].use }

    /// The owner of an allocated block tags every one of its pages with its use, keeping the
    /// descriptor (it frees the block with it).
    /// Its owner words start (and end) at zero.
    public mutating func setUse(_ block: PageIndex, _ use: PageUse) {
        precondition(!use.hasOwnDescriptor, "buddy: a use with a descriptor of its own is set with setOwner")
        let descriptor = memDescs[block.int].buddy!
        descriptor.pointee.ownerWords = OwnerWords()
        tag(descriptor, pages: block.int, count: 1 << Int(descriptor.pointee.order), use)
    }

    /// An owner with a descriptor of its own (`use.hasOwnDescriptor`) points every page of its
    /// block to `owner`, whose first field must already hold the block's buddy descriptor -
    /// which is how the block is found and freed again.
    public mutating func setOwner(_ block: PageIndex, _ use: PageUse, owner: UnsafeMutableRawPointer) {
        precondition(use.hasOwnDescriptor, "buddy: setOwner for a use without a descriptor of its own")
        let descriptor = memDescs[block.int].buddy!
        precondition(owner.load(as: UnsafeMutablePointer<BuddyDescriptor>.self) == descriptor,
                     "buddy: an owner descriptor that does not name its block's buddy descriptor")
        let word = MemDesc(use, owner: owner)
        var page = memDescs + block.int
        let end = page + (1 << Int(descriptor.pointee.order))
        while page < end {
            page.pointee = word
            page += 1
        }
    }

    @inline(__always)
    func pageMemory(_ index: PageIndex) -> UnsafeMutableRawPointer {
        window + Int(frameNumber(of: index)) * BuddyAllocator.pageBytes
    }

    // MARK: - Internals

    @inline(__always)
    func smallestFreeOrder(atLeast order: Int) -> Int? {
        var found = order
        while found <= BuddyAllocator.maxOrder && freeHeads[found] == nil { found += 1 }
        return found > BuddyAllocator.maxOrder ? nil : found
    }

    @inline(__always)
    func tag(_ descriptor: UnsafeMutablePointer<BuddyDescriptor>, pages first: Int, count: Int, _ use: PageUse) {
        let word = MemDesc(use, descriptor)
        // A pointer walk: a `for` over the range cost about three times as many instructions
        // per page (its iterator, with overflow checks), and a split or merge tags every page
        // of each half (docs/benchmarks.md, the page allocator pair).
        var page = memDescs + first
        let end = page + count
        while page < end {
            page.pointee = word
            page += 1
        }
    }

    mutating func enterChain() {
        chainDepth += 1
        if chainDepth > deepestChain { deepestChain = chainDepth }
        precondition(chainDepth <= BuddyAllocator.chainBound, "buddy: descriptor chain deeper than its bound (BuddyAllocator.chainBound)")
    }

    mutating func leaveChain() { chainDepth -= 1 }

    mutating func pushFree(_ descriptor: UnsafeMutablePointer<BuddyDescriptor>, order: Int) {
        let head = freeHeads[order]
        descriptor.pointee.next = head
        descriptor.pointee.prev = nil
        descriptor.pointee.order = UInt8(order)
        descriptor.pointee.state = .free
        head?.pointee.prev = descriptor
        freeHeads[order] = descriptor
        freeBlocks[order] += 1
    }

    mutating func popFree(_ descriptor: UnsafeMutablePointer<BuddyDescriptor>, order: Int) {
        let next = descriptor.pointee.next
        let prev = descriptor.pointee.prev
        if let prev { prev.pointee.next = next } else { freeHeads[order] = next }
        next?.pointee.prev = prev
        descriptor.pointee.next = nil
        descriptor.pointee.prev = nil
        freeBlocks[order] -= 1
    }

    // MARK: - Checking

    /// Walks every free list and every page and checks the invariants above. O(pages).
    public func isConsistent() -> Bool {
        var counted: UInt64 = 0
        for order in 0..<BuddyAllocator.orderCount {
            var blocks = 0
            var descriptor = freeHeads[order]
            var previous: UnsafeMutablePointer<BuddyDescriptor>? = nil
            while let current = descriptor {
                let block = current.pointee
                guard block.state == .free, Int(block.order) == order, block.prev == previous else { return false }
                let segment = segments[segmentNumber(of: block.firstPage)]
                let pfn = frameNumber(of: block.firstPage)
                let size = UInt64(1) << UInt64(order)
                guard pfn % size == 0, pfn + size <= segment.basePFN + UInt64(segment.pageCount) else { return false }
                counted += size
                blocks += 1
                previous = current
                descriptor = block.next
            }
            guard blocks == freeBlocks[order] else { return false }
        }
        // Every page: its word points to a live descriptor whose block holds it, free exactly
        // when the descriptor is; each block counted once, at its first page.
        var freeFirsts = 0, allocatedFirsts = 0
        for index in 0..<pageCount {
            let word = memDescs[index]
            guard let descriptor = word.buddy else {
                guard word.use == .reserved else { return false }
                continue
            }
            let block = descriptor.pointee
            guard word.use != .reserved, block.contains(PageIndex(index)) else { return false }
            switch block.state {
            case .unused: return false
            case .free: guard word.use == .free else { return false }
            case .allocated: guard word.use != .free else { return false }
            }
            if block.firstPage.int == index {
                if block.state == .free { freeFirsts += 1 } else { allocatedFirsts += 1 }
            }
        }
        return counted == freePages && freeFirsts == freeBlockTotal && allocatedFirsts == allocatedBlocks
            && descriptors.inUse == freeBlockTotal + allocatedBlocks && descriptors.isConsistent()
    }
}
