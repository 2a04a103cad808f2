// SwapMetadata.swift - where each paged-out page of each object is: swblocks in a hash table.
//
// As in DragonFly's swap_pager.c, a SwapBlock (kernel/VM/Portable/SwapBlock.swift) maps the 16
// pages of an object starting at a multiple of 16 to their swap blocks. Blocks are found
// through a fixed hash table of chains keyed by (object, page index / 16). Assigning a slot
// may need a new swblock from the swblock zone - under the caller's context: the pageout
// thread's may take the zone's reserve, which is what lets it page out when memory is short.
// Clearing slots and releasing ranges frees swblocks and never allocates.

enum SwapMetadata {
    static let bucketCount = 1024
    static var buckets: UnsafeMutablePointer<UnsafeMutablePointer<SwapBlock>?>? = nil
    static var swapBlocksInUse = 0
    static var assignFailures: UInt64 = 0

    static func initialize() {
        let table = Kmalloc.allocate(bucketCount * 8)!.bindMemory(to: UnsafeMutablePointer<SwapBlock>?.self, capacity: bucketCount)
        table.initialize(repeating: nil, count: bucketCount)
        buckets = table
    }

    private static func bucket(_ object: ObjectRef, _ firstPage: UInt64) -> Int {
        let key = UInt64(UInt(bitPattern: object)) >> 4 ^ (firstPage / UInt64(SwapBlock.pagesPerBlock)) &* 0x9E37_79B9_7F4A_7C15
        return Int((key ^ (key >> 29)) % UInt64(bucketCount))
    }

    private static func find(_ object: ObjectRef, _ firstPage: UInt64) -> UnsafeMutablePointer<SwapBlock>? {
        var current = buckets![bucket(object, firstPage)]
        while let block = current {
            if block.pointee.object == UnsafeMutableRawPointer(object) && block.pointee.firstPage == firstPage { return block }
            current = block.pointee.next
        }
        return nil
    }

    /// The swap block holding page `page` of `object`, if it is on swap.
    static func lookup(_ object: ObjectRef, _ page: Int) -> UInt32? {
        withInterruptsDisabled {
            let first = UInt64(page / SwapBlock.pagesPerBlock * SwapBlock.pagesPerBlock)
            guard let block = find(object, first) else { return nil }
            let slot = block.pointee.slot(page % SwapBlock.pagesPerBlock)
            return slot == SwapBlock.none ? nil : slot
        }
    }

    /// Records that page `page` of `object` is in swap block `swapBlock`. False when a new
    /// swblock was needed and the zone could not give one under `context`.
    static func assign(_ object: ObjectRef, _ page: Int, _ swapBlock: UInt32, _ context: AllocationContext) -> Bool {
        let first = UInt64(page / SwapBlock.pagesPerBlock * SwapBlock.pagesPerBlock)
        var block = withInterruptsDisabled { find(object, first) }
        if block == nil {
            guard let memory = Zones.swapBlock.allocate(context) else {
                countEvent(&assignFailures)
                return false
            }
            let fresh = memory.bindMemory(to: SwapBlock.self, capacity: 1)
            fresh.initialize(to: SwapBlock(object: UnsafeMutableRawPointer(object), firstPage: first))
            block = withInterruptsDisabled { () -> UnsafeMutablePointer<SwapBlock> in
                // Someone may have made the block while the zone slept.
                if let existing = find(object, first) {
                    Zones.swapBlock.free(memory)
                    return existing
                }
                let index = bucket(object, first)
                fresh.pointee.next = buckets![index]
                buckets![index] = fresh
                swapBlocksInUse += 1
                return fresh
            }
        }
        withInterruptsDisabled {
            if block!.pointee.slot(page % SwapBlock.pagesPerBlock) == SwapBlock.none { object.pointee.noteSwapped() }
            block!.pointee.setSlot(page % SwapBlock.pagesPerBlock, swapBlock)
        }
        return true
    }

    /// Forgets pages [firstPage, firstPage + count) of `object`: frees their swap blocks, and
    /// swblocks left empty. Allocates nothing.
    static func release(_ object: ObjectRef, first firstPage: Int, count: Int) {
        guard buckets != nil, object.pointee.swappedPages > 0 else { return }
        FreePath.enter()
        var page = firstPage
        while page < firstPage + count {
            let first = UInt64(page / SwapBlock.pagesPerBlock * SwapBlock.pagesPerBlock)
            let end = min(firstPage + count, Int(first) + SwapBlock.pagesPerBlock)
            let emptied: UnsafeMutablePointer<SwapBlock>? = withInterruptsDisabled {
                guard let block = find(object, first) else { return nil }
                for index in page..<end {
                    let slot = block.pointee.slot(index % SwapBlock.pagesPerBlock)
                    if slot != SwapBlock.none {
                        block.pointee.setSlot(index % SwapBlock.pagesPerBlock, SwapBlock.none)
                        SwapDevice.freeBlock(slot)
                        object.pointee.noteUnswapped()
                    }
                }
                guard block.pointee.count == 0 else { return nil }
                unlink(block)
                return block
            }
            if let emptied = emptied { Zones.swapBlock.free(UnsafeMutableRawPointer(emptied)) }
            page = end
        }
        FreePath.leave()
    }

    private static func unlink(_ block: UnsafeMutablePointer<SwapBlock>) {
        let index = bucket(block.pointee.object!.assumingMemoryBound(to: MemoryObject.self), block.pointee.firstPage)
        var link: UnsafeMutablePointer<SwapBlock>? = nil
        var current = buckets![index]
        while let candidate = current, candidate != block {
            link = candidate
            current = candidate.pointee.next
        }
        if let link = link { link.pointee.next = block.pointee.next } else { buckets![index] = block.pointee.next }
        swapBlocksInUse -= 1
    }
}
