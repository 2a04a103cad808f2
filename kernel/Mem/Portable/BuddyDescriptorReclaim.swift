// BuddyDescriptorReclaim.swift - giving pages of buddy descriptors back to the free lists.
//
// A burst of fragmentation grows the descriptor pool by pages taken wherever the smallest free
// block was; once the blocks merge again those pages split the memory around them. A page none
// of whose descriptors (but its own) describes an allocated block can go: the free blocks it
// describes move to descriptors on other pages - only the allocator points to them, from the
// blocks' mem_desc words and the free lists - and the page, described from elsewhere, is freed.
// It takes descriptors, so it is a reclaim (the pageout thread's reap calls it through
// PhysicalMemory.reclaimDescriptorPages), never part of a free: freeing still never allocates.
// docs/memory-descriptors.md, "Giving pages of descriptors back".

extension BuddyAllocator {
    /// Gives back pages of descriptors that describe no allocated block, while the pool keeps
    /// at least `keep` free descriptors. Returns the pages freed.
    ///
    /// The free blocks such a page still describes move first: each gets a descriptor from
    /// another page, its neighbours on its free list and the mem_desc words of its pages are
    /// pointed at it. Then the page, described by one more descriptor from elsewhere (its own
    /// goes with it), is freed and merges like any page. Not a free path, and never called
    /// from one: it takes descriptors. Each page costs the pool descriptorsPerPage in all -
    /// its free descriptors, one per block moved and one for itself - so `keep` is left whole.
    /// The pageout thread's reaping calls it (PhysicalMemory.reclaimDescriptorPages).
    public mutating func reclaimDescriptorPages(keeping keep: Int) -> Int {
        // The budget of a pass is conservative - the pages it frees merge with the blocks
        // around them, and each merge gives a descriptor back - so a pass that used it all is
        // followed by another, until one frees nothing.
        var total = 0
        while true {
            let freed = reclaimDescriptorPagesOnce(keeping: keep)
            if freed == 0 { return total }
            total += freed
        }
    }

    private mutating func reclaimDescriptorPagesOnce(keeping keep: Int) -> Int {
        let costPerPage = BuddyDescriptorPool.descriptorsPerPage
        let spare = descriptors.freeCount - max(keep, descriptors.reserveTarget)
        guard spare >= costPerPage else { return 0 }
        let detached = descriptors.detachMovablePages(limit: spare / costPerPage)
        // Every free block off every detached page first: freeing one page merges it with its
        // free neighbours, and a merge gives the neighbour's descriptor back to the pool - which
        // must not be one on a page about to be freed.
        var page = detached
        while let header = page {
            page = header.pointee.nextPage
            let own = BuddyDescriptorPool.ownDescriptor(of: header)
            for index in 1..<costPerPage where own[index].state == .free {
                moveFreeBlock(own + index, to: descriptors.take(.aboveReserve))
            }
        }
        var freed = 0
        page = detached
        while let header = page {
            page = header.pointee.nextPage
            let own = BuddyDescriptorPool.ownDescriptor(of: header)
            let first = own.pointee.firstPage
            precondition(own.pointee.flags.contains(.descriptorPage) && own.pointee.state == .allocated && own.pointee.order == 0
                         && memDescs[first.int].buddy == own, "buddy: a detached page of descriptors does not describe itself")
            let replacement = descriptors.take(.aboveReserve)
            replacement.pointee.firstPage = first
            replacement.pointee.order = 0
            replacement.pointee.state = .allocated
            memDescs[first.int] = MemDesc(.allocated, replacement)
            free(first, order: 0)
            freed += 1
        }
        return freed
    }

    /// Describes free block `old` with `new` instead: the same block, on the same list at the
    /// same place, every page's mem_desc pointing to `new`. `old` is left unused.
    mutating func moveFreeBlock(_ old: UnsafeMutablePointer<BuddyDescriptor>, to new: UnsafeMutablePointer<BuddyDescriptor>) {
        new.pointee = old.pointee
        let order = Int(new.pointee.order)
        if let previous = new.pointee.prev { previous.pointee.next = new } else { freeHeads[order] = new }
        if let next = new.pointee.next { next.pointee.prev = new }
        tag(new, pages: new.pointee.firstPage.int, count: 1 << order, .free)
        old.pointee = BuddyDescriptor()
    }
}
