// PageHold.swift - pages and buddy blocks a test holds, linked through their first words.
//
// Tests that take much or all of memory cannot keep what they took in an array: the array
// would be a kmalloc of its own, and a large one needs a contiguous block that such a test
// may just have used up. A PageHold needs no memory: each held block stores, in its first 8
// bytes, the index of the block held before it and its own order. The balloon
// (Balloon.swift) and the tests that drain memory (PhysicalMemoryTests, NecessityTests) use it.

struct PageHold {
    private var head = PageIndex.none
    /// Pages held, in all blocks.
    private(set) var pages = 0

    /// Takes single pages under `context` (which must not wait) until the allocator says no.
    mutating func takeAll(_ context: AllocationContext) {
        while let page = PhysicalMemory.allocate(context) { keep(page) }
    }

    /// Takes `count` pages under `context`, which may wait for each.
    mutating func take(_ count: Int, _ context: AllocationContext) {
        for _ in 0..<count { keep(PhysicalMemory.allocate(context)!) }
    }

    /// Holds `block` of 2^order pages, which the caller allocated.
    mutating func keep(_ block: PageIndex, order: Int = 0) {
        let link = PhysicalMemory.pointer(to: block)
        link.storeBytes(of: head.rawValue, as: UInt32.self)
        link.storeBytes(of: UInt32(order), toByteOffset: 4, as: UInt32.self)
        head = block
        pages += 1 << order
    }

    /// Frees the held blocks for which `freeing` is true and keeps the others.
    mutating func release(where freeing: (PageIndex) -> Bool = { _ in true }) {
        var next = head
        head = .none
        pages = 0
        while next != .none {
            let block = next
            let link = PhysicalMemory.pointer(to: block)
            next = PageIndex(rawValue: link.load(as: UInt32.self))
            let order = Int(link.load(fromByteOffset: 4, as: UInt32.self))
            if freeing(block) { PhysicalMemory.free(block, order: order) } else { keep(block, order: order) }
        }
    }
}
