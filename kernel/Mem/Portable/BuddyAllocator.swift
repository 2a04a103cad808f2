// BuddyAllocator.swift - the binary buddy allocator over the page-descriptor array.
//
// Physical memory is split into segments (the usable ranges of the memory map). A free block
// of order k is 2^k pages whose first frame number is a multiple of 2^k, inside one segment;
// its head page is on free list k with use .free and order = k, its other pages are .tail.
// Allocating order k takes a block from list k, or splits the smallest larger one, putting
// each unused half back: O(maxOrder); the block's head becomes .allocated. Freeing (only an
// .allocated head) merges the block with its buddy (frame number XOR 2^k) for as long as the
// buddy is a free block of the same order in the same segment: O(maxOrder). Only heads change
// use here: a merged head becomes .tail, a split-off half's head .free.
//
// Invariants (checked by `isConsistent`, and in part on every call):
//   - use is .free exactly on the heads of blocks on the free lists, .tail on their other pages;
//   - every free block is aligned to its size and lies inside its segment;
//   - freePages is the sum of the free blocks' sizes;
//   - no two free blocks overlap.
// The allocator only knows descriptors; it never touches the pages themselves. Policy (who
// may take the last pages) is PhysicalMemory's job, not this file's.

public struct BuddySegment {
    /// First page frame number of the segment.
    public var basePFN: UInt64
    public var pageCount: UInt32
    /// Index of the segment's first page in the descriptor array.
    public var firstIndex: UInt32

    public init(basePFN: UInt64, pageCount: UInt32, firstIndex: UInt32) {
        self.basePFN = basePFN
        self.pageCount = pageCount
        self.firstIndex = firstIndex
    }
}

public struct BuddyAllocator {
    public static let maxOrder = 10
    public static let orderCount = maxOrder + 1
    public static let maxSegments = 64

    public let pages: UnsafeMutablePointer<VMPage>
    public let pageCount: Int
    let segments: UnsafeMutablePointer<BuddySegment>
    public private(set) var segmentCount = 0
    let freeHeads: UnsafeMutablePointer<PageIndex>
    let freeBlocks: UnsafeMutablePointer<Int>
    public private(set) var freePages: UInt64 = 0

    /// `pages` must hold `pageCount` descriptors; they are all reset to use .reserved.
    /// `scratch` provides room for the segment table and the list heads (see scratchBytes).
    public init(pages: UnsafeMutablePointer<VMPage>, pageCount: Int, scratch: UnsafeMutableRawPointer) {
        self.pages = pages
        self.pageCount = pageCount
        segments = scratch.bindMemory(to: BuddySegment.self, capacity: BuddyAllocator.maxSegments)
        let heads = scratch + MemoryLayout<BuddySegment>.stride * BuddyAllocator.maxSegments
        freeHeads = heads.bindMemory(to: PageIndex.self, capacity: BuddyAllocator.orderCount)
        let counts = heads + 8 * BuddyAllocator.orderCount
        freeBlocks = counts.bindMemory(to: Int.self, capacity: BuddyAllocator.orderCount)
        for order in 0..<BuddyAllocator.orderCount {
            freeHeads[order] = .none
            freeBlocks[order] = 0
        }
        pages.initialize(repeating: VMPage(), count: pageCount)
    }

    public static var scratchBytes: Int {
        MemoryLayout<BuddySegment>.stride * maxSegments + 8 * orderCount + 8 * orderCount
    }

    /// Declares the next segment: `count` pages starting at frame `basePFN`, described by the
    /// next `count` descriptors. Its pages start out reserved; `addFree` releases them.
    public mutating func addSegment(basePFN: UInt64, count: Int) {
        precondition(segmentCount < BuddyAllocator.maxSegments, "buddy: too many physical segments")
        let first = segmentCount == 0 ? 0 : Int(segments[segmentCount - 1].firstIndex + segments[segmentCount - 1].pageCount)
        precondition(first + count <= pageCount, "buddy: segments describe more pages than there are descriptors")
        segments[segmentCount] = BuddySegment(basePFN: basePFN, pageCount: UInt32(count), firstIndex: UInt32(first))
        for index in first..<(first + count) { pages[index].segment = UInt8(segmentCount) }
        segmentCount += 1
    }

    public func segment(_ number: Int) -> BuddySegment { segments[number] }

    @inline(__always)
    public func frameNumber(of index: PageIndex) -> UInt64 {
        let segment = segments[Int(pages[index.int].segment)]
        return segment.basePFN + UInt64(index.rawValue - segment.firstIndex)
    }

    /// The descriptor index of frame `pfn`, or nil when no segment holds it.
    public func index(ofFrame pfn: UInt64) -> PageIndex? {
        for number in 0..<segmentCount {
            let segment = segments[number]
            if pfn >= segment.basePFN && pfn < segment.basePFN + UInt64(segment.pageCount) {
                return PageIndex(rawValue: segment.firstIndex + UInt32(pfn - segment.basePFN))
            }
        }
        return nil
    }

    /// Releases `count` reserved pages starting at `first` (all in one segment) as maximal
    /// aligned blocks - the same shape a fully coalesced allocator would have.
    public mutating func addFree(first: PageIndex, count: Int) {
        var index = first.int
        let end = first.int + count
        while index < end {
            let pfn = frameNumber(of: PageIndex(index))
            var order = BuddyAllocator.maxOrder
            while order > 0 && (pfn & ((1 << UInt64(order)) - 1) != 0 || index + (1 << order) > end) { order -= 1 }
            for page in index..<(index + (1 << order)) {
                precondition(pages[page].use == .reserved, "buddy: a page released twice at boot")
                pages[page].use = .tail
            }
            pushFree(PageIndex(index), order: order)
            freePages += UInt64(1) << UInt64(order)
            index += 1 << order
        }
    }

    /// Takes a block of 2^order pages aligned to its size; nil when none is free.
    public mutating func allocate(order: Int) -> PageIndex? {
        precondition(order >= 0 && order <= BuddyAllocator.maxOrder, "buddy: order out of range")
        var found = order
        while found <= BuddyAllocator.maxOrder && freeHeads[found] == .none { found += 1 }
        if found > BuddyAllocator.maxOrder { return nil }
        let block = freeHeads[found]
        popFree(block, order: found)
        // Split: keep the lower half, give the upper halves back.
        while found > order {
            found -= 1
            pushFree(PageIndex(rawValue: block.rawValue + (1 << UInt32(found))), order: found)
        }
        pages[block.int].use = .allocated
        pages[block.int].order = UInt8(order)
        freePages -= UInt64(1) << UInt64(order)
        return block
    }

    /// Returns a block from `allocate(order:)`, its head .allocated again. Freeing a page that
    /// is already free (or reserved, or still typed by its owner) stops the kernel: the
    /// descriptor says so, and the lists would be corrupted otherwise.
    public mutating func free(_ block: PageIndex, order: Int) {
        precondition(block.int < pageCount, "buddy: free of a page index out of range")
        precondition(pages[block.int].use != .free, "buddy: double free of a page")
        precondition(pages[block.int].use != .reserved, "buddy: free of a reserved page")
        precondition(pages[block.int].use == .allocated, "buddy: free of a page that is not the head of an allocated block")
        precondition(Int(pages[block.int].order) == order, "buddy: free with a different order than allocated")
        freePages += UInt64(1) << UInt64(order)
        // Until it is pushed as the head of the merged block, the block is part of one.
        pages[block.int].use = .tail
        var head = block
        var current = order
        let segment = segments[Int(pages[block.int].segment)]
        while current < BuddyAllocator.maxOrder {
            let pfn = frameNumber(of: head)
            let buddyPFN = pfn ^ (UInt64(1) << UInt64(current))
            guard buddyPFN >= segment.basePFN, buddyPFN + (UInt64(1) << UInt64(current)) <= segment.basePFN + UInt64(segment.pageCount) else { break }
            let buddy = PageIndex(rawValue: segment.firstIndex + UInt32(buddyPFN - segment.basePFN))
            guard pages[buddy.int].use == .free, Int(pages[buddy.int].order) == current else { break }
            popFree(buddy, order: current)
            if buddy < head { head = buddy }
            current += 1
        }
        pushFree(head, order: current)
    }

    public func freeBlockCount(order: Int) -> Int { freeBlocks[order] }

    public func firstFreeBlock(order: Int) -> PageIndex? {
        freeHeads[order] == .none ? nil : freeHeads[order]
    }

    // MARK: - Free lists (doubly linked through the descriptors)

    mutating func pushFree(_ index: PageIndex, order: Int) {
        let head = freeHeads[order]
        pages[index.int].next = head
        pages[index.int].prev = .none
        pages[index.int].order = UInt8(order)
        pages[index.int].use = .free
        if head != .none { pages[head.int].prev = index }
        freeHeads[order] = index
        freeBlocks[order] += 1
    }

    mutating func popFree(_ index: PageIndex, order: Int) {
        let next = pages[index.int].next
        let prev = pages[index.int].prev
        if prev != .none { pages[prev.int].next = next } else { freeHeads[order] = next }
        if next != .none { pages[next.int].prev = prev }
        pages[index.int].next = .none
        pages[index.int].prev = .none
        pages[index.int].use = .tail       // allocate makes it .allocated if it is the block taken
        freeBlocks[order] -= 1
    }

    // MARK: - Checking

    /// Walks every free list and checks the invariants above. O(pages).
    public func isConsistent() -> Bool {
        var counted: UInt64 = 0
        var heads = 0
        for order in 0..<BuddyAllocator.orderCount {
            var blocks = 0
            var index = freeHeads[order]
            var previous = PageIndex.none
            while index != .none {
                let page = pages[index.int]
                guard page.use == .free, Int(page.order) == order, page.prev == previous else { return false }
                let segment = segments[Int(page.segment)]
                let pfn = frameNumber(of: index)
                let size = UInt64(1) << UInt64(order)
                guard pfn % size == 0, pfn + size <= segment.basePFN + UInt64(segment.pageCount) else { return false }
                // Every other page of the block is a tail (in particular none looks like a free head).
                for inner in 1..<Int(size) where pages[index.int + inner].use != .tail { return false }
                counted += size
                blocks += 1
                previous = index
                index = page.next
            }
            guard blocks == freeBlocks[order] else { return false }
            heads += blocks
        }
        var flagged = 0
        for index in 0..<pageCount where pages[index].use == .free { flagged += 1 }
        return counted == freePages && flagged == heads
    }
}
