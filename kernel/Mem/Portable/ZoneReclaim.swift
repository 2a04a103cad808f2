// ZoneReclaim.swift - giving a zone's empty slabs back to the page allocator.
//
// Freeing an object never frees its slab (ZoneAllocator.swift): a slab whose last object goes
// stays on the partial list, so an allocate/free pair moves nothing. Empty slabs go back only
// here, in a reclaim pass - the zone's part of the pageout thread's reaping (kernel/VM/
// Pageout.swift runs it over every zone when memory is short), of Zones.destroy, and of tests.
//
// What a pass keeps:
//   - the reserve: it never leaves fewer than reserveTarget free objects (free objects on
//     partial slabs count; a slab is released only if the rest still cover the reserve);
//   - `keepEmpty` empty slabs (the zone's keepEmptySlabs unless told otherwise), so that a
//     zone churning around a slab boundary does not give a page back and take it again at
//     once. Empty static slabs count among them: they come from the kernel image and can
//     never be released.
//
// It runs in two loops, as GNU Mach's zone_gc and braunr's mem_cache_reap do
// (../shared/seeds/gnumach-slab-allocator-irc.txt: "two loops ... to reduce contention and
// avoid deadlocks"):
//   1. with the zone lock held: drain the CPU layer (every CPU's magazines and the depot,
//      ZoneCPUCache.drainAll) onto the slabs, move slabs with no object
//      in use to the empty list, then unlink the empty slabs to release onto a private list
//      (linked through their headers) and settle the zone's counts. When the lock drops, the
//      zone is consistent without them and no other thread can reach them.
//   2. with the lock dropped: hand each slab on the private list to the environment's
//      freeSlab.
// Freeing a slab is not done under the zone lock because it reaches into other layers: a
// direct-map slab goes to the page allocator (which wakes threads waiting for pages), a
// kmem-backed slab (swblock) through kmem_free, which takes the kmem map's lock and unmaps
// its pages, freeing PV entries into another zone. Under the zone lock that would be a lock
// order nothing else uses - and in the kernel the zone lock is "interrupts off", which should
// cover the relinking of a few headers, not the page allocator's work for a whole batch.
// Nothing in either loop allocates.

extension ZoneRef {
    /// Returns empty dynamic slabs to the page allocator, keeping `keepEmpty` empty slabs (the
    /// zone's keepEmptySlabs by default; empty static slabs count among them) and never
    /// leaving fewer free objects than the reserve. Partly used slabs are never touched.
    /// Returns the number of slabs released. Allocates nothing.
    @discardableResult
    public func reclaim(keepEmpty: Int? = nil) -> Int {
        FreePath.enter(.zoneReclaim)
        let keep = keepEmpty ?? state.pointee.keepEmptySlabs
        // Constant for the zone's life: read here so that loop 2 needs nothing from the zone.
        let slabBytes = state.pointee.slabBytes
        let source = state.pointee.source
        let perSlab = state.pointee.objectsPerSlab

        // Loop 1, under the zone lock: collect.
        let token = Environment.lock()
        drainAll()
        var slab = state.pointee.partial.head
        while let current = slab {
            slab = current.pointee.next
            if current.pointee.inUse == 0 { move(current, to: .empty) }
        }
        var collected: UnsafeMutablePointer<SlabHeader>? = nil
        var released = 0
        slab = state.pointee.empty.head
        while let current = slab, state.pointee.empty.count > keep, state.pointee.freeObjects - perSlab >= reserve {
            slab = current.pointee.next
            if current.pointee.isStatic { continue }
            unlink(current, from: .empty)
            // No longer the zone's: a stray free of one of its objects now stops the kernel
            // (slabOf checks the magic) instead of writing into a page someone else owns.
            current.pointee.magic = 0
            current.pointee.next = collected
            collected = current
            state.pointee.freeObjects -= perSlab
            state.pointee.statistics.dynamicSlabs -= 1
            state.pointee.statistics.slabsReleased += 1
            released += 1
        }
        updateCentralShort()
        Environment.unlock(token)

        // Loop 2, without the lock: free. The collected slabs are reachable only from here.
        while let current = collected {
            collected = current.pointee.next
            Environment.freeSlab(UnsafeMutableRawPointer(current), bytes: slabBytes, source: source)
        }
        FreePath.leave()
        return released
    }
}
