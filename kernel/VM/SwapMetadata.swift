// SwapMetadata.swift - where each paged-out page of each object is: swblocks in a hash table.
//
// As in DragonFly's swap_pager.c, a SwapBlock (kernel/VM/Portable/SwapBlock.swift) maps the 16
// pages of an object starting at a multiple of 16 to their swap blocks. Blocks are found
// through a SwapBlockTable (kernel/VM/Portable/SwapBlockTable.swift, which says why a hash and
// not a radix tree): a hash of chains keyed by (object, page index / 16), whose bucket count is
// chosen at boot from the swap device's size and capped by memory, so that chains stay about
// one swblock long however large the disk. Without a swap disk there is no table, and no page
// is ever on swap.
//
// Assigning a slot may need a new swblock from the swblock zone - under the caller's context:
// the pageout thread's may take the zone's reserve, which is what lets it page out when
// memory is short. Clearing slots and releasing ranges frees swblocks and never allocates.
//
// Locking: one CPU; the table, its statistics, every swblock's slots and `swapBlocksInUse` are
// changed and read only with interrupts off, and no sleep happens with a swblock half-linked
// (the zone allocation in `assign` is made before the interrupts-off section that links it).

enum SwapMetadata {
    /// The table, once initialize(swapBlocks:) has run with a swap device; nil without swap.
    static var table: SwapBlockTable? = nil
    static var assignFailures: UInt64 = 0

    /// Swblocks in use (in the table).
    static var swapBlocksInUse: Int { withInterruptsDisabled { table?.count ?? 0 } }

    /// Makes the table for a swap device of `swapBlocks` blocks (none when 0). Boot time,
    /// before interrupts: the bucket array comes from kmalloc (kmem when above 4 MiB) without
    /// waiting. If memory is short it takes a smaller table - longer chains, same answers.
    static func initialize(swapBlocks: UInt32) {
        guard swapBlocks > 0 else { return }
        let chosen = SwapBlockTable.bucketCount(swapBlocks: UInt64(swapBlocks), memoryBytes: PhysicalMemory.managedPages * pageSize)
        var buckets = chosen
        while true {
            if let storage = Kmalloc.allocate(buckets * MemoryLayout<SwapBlockTable.BlockRef?>.stride, alignment: 16, .ordinaryNoWait) {
                table = SwapBlockTable(bucketCount: buckets, storage: storage.bindMemory(to: SwapBlockTable.BlockRef?.self, capacity: buckets))
                break
            }
            guard buckets > SwapBlockTable.minimumBuckets else {
                panic("swap metadata: no memory for even \(buckets) hash buckets (\(bytes: UInt64(buckets * 8)))")
            }
            buckets /= 2
        }
        if buckets < chosen {
            Log.warn(.swap, "swap metadata: no memory for \(chosen) hash buckets; using \(buckets), so chains will be longer")
        }
        Log.info(.swap, "swap metadata: \(buckets) hash buckets (\(bytes: UInt64(buckets * 8))) for \(swapBlocks) swap blocks, one per \(UInt64(swapBlocks) / UInt64(buckets)) blocks")
        let uncapped = SwapBlockTable.bucketCount(swapBlocks: UInt64(swapBlocks), memoryBytes: UInt64.max)
        if chosen < uncapped {
            Log.info(.swap, "swap metadata: the disk would want \(uncapped) buckets; the table is capped at 1/\(SwapBlockTable.memoryFraction) of memory")
        }
    }

    private static func firstPage(of page: Int) -> UInt64 {
        UInt64(page / SwapBlock.pagesPerBlock * SwapBlock.pagesPerBlock)
    }

    /// The swap block holding page `page` of `object`, if it is on swap.
    static func lookup(_ object: ObjectRef, _ page: Int) -> UInt32? {
        withInterruptsDisabled {
            guard table != nil, let block = table!.find(UnsafeMutableRawPointer(object), firstPage(of: page)) else { return nil }
            let slot = block.pointee.slot(page % SwapBlock.pagesPerBlock)
            return slot == SwapBlock.none ? nil : slot
        }
    }

    /// Records that page `page` of `object` is in swap block `swapBlock`. False when a new
    /// swblock was needed and the zone could not give one under `context`.
    static func assign(_ object: ObjectRef, _ page: Int, _ swapBlock: UInt32, _ context: AllocationContext) -> Bool {
        let key = UnsafeMutableRawPointer(object)
        let first = firstPage(of: page)
        kassert(table != nil, "swap metadata assigned without a swap device")
        var block = withInterruptsDisabled { table!.find(key, first) }
        if block == nil {
            // May sleep (or take the reserve): outside the interrupts-off section.
            guard let memory = Zones.swapBlock.allocate(context) else {
                countEvent(&assignFailures)
                return false
            }
            let fresh = memory.bindMemory(to: SwapBlock.self, capacity: 1)
            fresh.initialize(to: SwapBlock(object: key, firstPage: first))
            block = withInterruptsDisabled { () -> UnsafeMutablePointer<SwapBlock> in
                // Someone may have made the block while the zone slept.
                if let existing = table!.find(key, first) {
                    Zones.swapBlock.free(memory)
                    return existing
                }
                table!.insert(fresh)
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
    /// swblocks left empty. Allocates nothing. Stops as soon as the object has nothing left on
    /// swap, so freeing a large object that was barely paged out does not look up every chunk.
    static func release(_ object: ObjectRef, first firstPageToFree: Int, count: Int) {
        guard table != nil, object.pointee.swappedPages > 0 else { return }
        FreePath.enter(.swapMetadataFree)
        let key = UnsafeMutableRawPointer(object)
        var page = firstPageToFree
        while page < firstPageToFree + count && object.pointee.swappedPages > 0 {
            let first = firstPage(of: page)
            let end = min(firstPageToFree + count, Int(first) + SwapBlock.pagesPerBlock)
            let emptied: UnsafeMutablePointer<SwapBlock>? = withInterruptsDisabled {
                guard let block = table!.find(key, first) else { return nil }
                for index in page..<end {
                    let slot = block.pointee.slot(index % SwapBlock.pagesPerBlock)
                    if slot != SwapBlock.none {
                        block.pointee.setSlot(index % SwapBlock.pagesPerBlock, SwapBlock.none)
                        SwapDevice.freeBlock(slot)
                        object.pointee.noteUnswapped()
                    }
                }
                guard block.pointee.count == 0 else { return nil }
                table!.remove(block)
                return block
            }
            if let emptied = emptied { Zones.swapBlock.free(UnsafeMutableRawPointer(emptied)) }
            page = end
        }
        FreePath.leave()
    }

    /// The table's shape now: swblocks (now and at most), buckets, the longest chain ever and
    /// the average number of swblocks a lookup looked at.
    struct Statistics {
        var swapBlocks = 0
        var peakSwapBlocks = 0
        var buckets = 0
        var longestChain = 0
        var lookups: UInt64 = 0
        var probes: UInt64 = 0
    }

    static var statistics: Statistics {
        withInterruptsDisabled {
            guard let t = table else { return Statistics() }
            return Statistics(swapBlocks: t.count, peakSwapBlocks: t.peakCount, buckets: t.bucketCount, longestChain: t.longestChain, lookups: t.lookups, probes: t.probes)
        }
    }

    static func logStatistics() {
        let s = statistics
        guard s.buckets > 0 else { return }
        Log.info(.swap, "swap metadata: \(s.swapBlocks) swblocks (at most \(s.peakSwapBlocks)) in \(s.buckets) buckets; longest chain ever \(s.longestChain); \(s.lookups) lookups looked at \(quotient: s.probes, by: s.lookups) swblocks each on average")
    }
}
