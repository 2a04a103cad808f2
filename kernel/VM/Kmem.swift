// Kmem.swift - kmem_alloc and kmem_free: wired kernel memory in a submap; pageable ranges.
//
// kmem_alloc reserves a map entry before locking the map, inserts an entry for a free range
// of the submap, then (with the map unlocked) allocates a page for every page of the range and
// maps it through the pmap. Whatever it cannot get under the caller's rules - a range, a page,
// a PV entry, a page-table page - makes it undo everything and return nil; a submap that is
// full is reported by name.
//
// kmem_free (`free`, `freePageable`) is a free path (kernel/Lib/FreePath.swift): it allocates
// nothing, not even a map entry from the map's stock, whatever the state of the map_entry
// zone. That holds because a free never splits an entry: each allocation is an entry of its
// own (the map never merges neighbours), so freeing all of one removes whole entries, and
// freeing its front or back only trims one. A free strictly inside an entry would need a new
// entry for the second piece; kmem_free refuses it with a panic. `freePart` does it: it
// reserves that entry first, under the caller's AllocationContext - an allocation, made
// before the free path starts, that can wait or fail like any other.
//
// kmem_alloc_pageable inserts an entry backed by a new anonymous memory object and touches no
// page; pages arrive on first touch (kernel/VM/PageFault.swift).

enum Kmem {
    static var allocations: UInt64 = 0
    static var failures: UInt64 = 0

    /// Wired memory: `bytes` (rounded up to pages) at an address aligned to `alignment`.
    static func allocate(_ bytes: UInt64, in map: MapRef = KernelMaps.kmem, alignment: UInt64 = pageSize,
                         _ context: AllocationContext = .ordinary) -> VirtualAddress? {
        FreePath.checkAllocation(.kmem)
        let size = roundUp(bytes, to: pageSize)
        guard let start = insertEntry(map, size: size, alignment: alignment, kind: .wired, context) else { return nil }
        var mapped: UInt64 = 0
        while mapped < size {
            let address = start + mapped
            guard let page = PhysicalMemory.allocate(order: 0, context) else {
                return undo(map, start, size, mapped, "no page")
            }
            PhysicalMemory.setUse(page, .wired)
            var entered = Pmap.enter(address, page: page, protection: .readWrite, context)
            while !entered && context.blocking == .wait && VMWait.isAvailable {
                // A page-table page was short: wait for memory as the caller would for a page.
                VMWait.wait(context, pages: 1)
                entered = Pmap.enter(address, page: page, protection: .readWrite, context)
            }
            guard entered else {
                PhysicalMemory.clearUse(page, .wired)
                PhysicalMemory.free(page)
                return undo(map, start, size, mapped, "no PV entry or page-table page")
            }
            mapped += pageSize
        }
        countEvent(&allocations)
        return start
    }

    /// kmem_free: frees [address, address + bytes) of wired memory - whole allocations, or the
    /// front or the back of one. Allocates nothing. A range strictly inside one allocation
    /// would split its entry: that panics (use `freePart`).
    static func free(_ address: VirtualAddress, _ bytes: UInt64, in map: MapRef = KernelMaps.kmem) {
        var noSpare = EntryReservation()
        removeRange(map, address, roundUp(bytes, to: pageSize), spares: &noSpare, counted: false)
    }

    /// Frees any part of allocations in `map` (wired or pageable), a hole in the middle of one
    /// included. The entry a hole needs is reserved first, under `context` (waiting or failing
    /// as it says); false when it could not be had, and then nothing was freed.
    static func freePart(_ address: VirtualAddress, _ bytes: UInt64, in map: MapRef = KernelMaps.kmem,
                         _ context: AllocationContext) -> Bool {
        let size = roundUp(bytes, to: pageSize)
        // The caller owns the range, so whether it splits an entry cannot change meanwhile.
        map.pointee.lock.lock()
        let splits = map.pointee.map.removalSplitsAnEntry(address, address + size)
        map.pointee.lock.unlock()
        guard splits else {
            free(address, size, in: map)
            return true
        }
        guard var spares = VMMaps.reserve(map, 1, context) else { return false }
        removeRange(map, address, size, spares: &spares, counted: true)
        return true
    }

    /// The size of the wired allocation that starts exactly at `address` in `map`, or nil when
    /// none does (kfree uses it to free what kmalloc took from kmem).
    static func allocationSize(at address: VirtualAddress, in map: MapRef = KernelMaps.kmem) -> UInt64? {
        map.pointee.lock.lock()
        defer { map.pointee.lock.unlock() }
        guard let entry = map.pointee.map.lookup(address), entry.pointee.start == address, entry.pointee.kind == .wired else { return nil }
        return entry.pointee.end - entry.pointee.start
    }

    /// Pageable memory: an address range backed by a new anonymous object, no pages yet.
    static func allocatePageable(_ bytes: UInt64, owner: UInt64 = 0, _ context: AllocationContext = .ordinary) -> VirtualAddress? {
        FreePath.checkAllocation(.kmem)
        let size = roundUp(bytes, to: pageSize)
        guard let object = MemoryObjects.create(pages: Int(size / pageSize)) else { return nil }
        object.pointee.owner = owner
        guard let start = insertEntry(KernelMaps.pageable, size: size, alignment: pageSize, kind: .anonymous, context, object: object) else {
            MemoryObjects.destroy(object)
            return nil
        }
        return start
    }

    /// Runs `body` with the anonymous object behind pageable `address` and the page's index in
    /// it, under the pageable map's lock (the entry, and so the object, cannot go meanwhile);
    /// nil when `address` is not in pageable memory.
    static func withPageableObject<R>(at address: VirtualAddress, _ body: (ObjectRef, Int) -> R) -> R? {
        let map = KernelMaps.pageable
        map.pointee.lock.lock()
        defer { map.pointee.lock.unlock() }
        guard let entry = map.pointee.map.lookup(address), entry.pointee.kind == .anonymous,
              let raw = entry.pointee.object else { return nil }
        return body(raw.assumingMemoryBound(to: MemoryObject.self), Int((address - entry.pointee.start + entry.pointee.offset) / pageSize))
    }

    /// kmem_free for pageable memory: the same rules as `free`.
    static func freePageable(_ address: VirtualAddress, _ bytes: UInt64) {
        free(address, bytes, in: KernelMaps.pageable)
    }

    /// Address space only: an entry with nothing behind it (pager windows). Free with `free`.
    static func reserveRange(_ map: MapRef, _ bytes: UInt64, _ context: AllocationContext) -> VirtualAddress? {
        insertEntry(map, size: roundUp(bytes, to: pageSize), alignment: pageSize, kind: .reserved, context)
    }

    // MARK: - Steps

    /// Reserves an entry, finds space, inserts the entry. Returns the range's start.
    private static func insertEntry(_ map: MapRef, size: UInt64, alignment: UInt64, kind: MapEntryKind,
                                    _ context: AllocationContext, object: ObjectRef? = nil) -> VirtualAddress? {
        guard var spares = VMMaps.reserve(map, 1, context) else {
            countEvent(&failures)
            // An ordinary caller that chose not to wait (a page fault holding a busy page)
            // expects shortages and waits afterwards; anyone else failing here is news.
            if context == .ordinaryNoWait {
                Log.debug(.vm, "kmem: no map entry for \(map.pointee.map.name) without waiting")
            } else {
                Log.warn(.vm, "kmem: no map entry for \(map.pointee.map.name) (the map_entry zone is exhausted)")
            }
            return nil
        }
        map.pointee.lock.lock()
        guard let start = map.pointee.map.findSpace(size: size, alignment: alignment) else {
            map.pointee.exhaustionFailures += 1
            let used = map.pointee.map.mappedBytes, total = map.pointee.map.size
            map.pointee.lock.unlock()
            VMMaps.release(map, &spares)
            countEvent(&failures)
            Log.warn(.vm, "kmem: submap \(map.pointee.map.name) has no free range of \(bytes: size) (\(bytes: used) of \(bytes: total) in use)")
            return nil
        }
        let entry = spares.take("kmem insert")
        entry.initialize(to: MapEntry(start: start, end: start + size, kind: kind, protection: .readWrite))
        entry.pointee.object = object.map { UnsafeMutableRawPointer($0) }
        map.pointee.map.insert(entry)
        map.pointee.lock.unlock()
        VMMaps.release(map, &spares)
        VMMaps.finish(map, "kmem insert")
        return start
    }

    /// Undoes a partly built wired allocation and reports why.
    private static func undo(_ map: MapRef, _ start: VirtualAddress, _ size: UInt64, _ mapped: UInt64, _ why: StaticString) -> VirtualAddress? {
        countEvent(&failures)
        Log.debug(.vm, "kmem: allocation of \(bytes: size) in \(map.pointee.map.name) undone: \(why) after \(mapped / pageSize) pages")
        var noSpare = EntryReservation()
        removeRange(map, start, size, spares: &noSpare, counted: false)   // all of it: no split
        return nil
    }

    /// Removes [start, start + size) from `map` and releases what was behind it: the kmem free
    /// path, which allocates nothing. `spares` holds the entry a split needs (reserved by
    /// `freePart`, `counted` as a reservation) or nothing, and then the range must not split.
    private static func removeRange(_ map: MapRef, _ start: VirtualAddress, _ size: UInt64,
                                    spares: inout EntryReservation, counted: Bool) {
        map.pointee.lock.lock()
        if !map.pointee.map.covers(start, start + size) {
            panic("kmem_free of \(address: start) - \(address: start + size) in \(map.pointee.map.name): not all of it is allocated there")
        }
        if map.pointee.map.removalSplitsAnEntry(start, start + size) && spares.count == 0 {
            panic("kmem_free of \(address: start) - \(address: start + size) in \(map.pointee.map.name) would split an allocation in two: a free path takes no map entry (free whole allocations, or use Kmem.freePart)")
        }
        FreePath.enter(.kmemFree)
        var removed = RemovedRange()
        map.pointee.map.removeRange(start, start + size, using: &spares, removed: &removed)
        // Unmapped before the lock is dropped: once it is, the addresses can be handed out
        // again, and a late unmap would tear down the next owner's mappings.
        removed.forEach { unmapPiece($0) }
        map.pointee.lock.unlock()
        // Anonymous pages are released outside the lock: one may be busy (being written to
        // swap) and has to be waited for.
        removed.forEach { piece in
            if piece.kind == .anonymous {
                MemoryObjects.unmapPages(piece.object!.assumingMemoryBound(to: MemoryObject.self),
                                         first: Int(piece.offset / pageSize), count: Int((piece.end - piece.start) / pageSize))
            }
        }
        removed.recycleEntries(into: &spares)
        VMMaps.release(map, &spares, counted: counted)
        FreePath.leave()
        VMMaps.finish(map, "kmem remove")
    }

    /// Unmaps a removed piece (the map lock is held; nothing here sleeps). Wired pages are
    /// freed right away; anonymous pages are left to their object.
    private static func unmapPiece(_ piece: MapEntry) {
        let pages = Int((piece.end - piece.start) / pageSize)
        switch piece.kind {
        case .wired:
            var address = piece.start
            while address < piece.end {
                if let physical = Pmap.extract(address), let page = PhysicalMemory.index(of: physical) {
                    Pmap.remove(address, pages: 1)
                    PhysicalMemory.clearUse(page, .wired)
                    PhysicalMemory.free(page)
                }
                address += pageSize
            }
        case .anonymous, .reserved:
            // A reserved range (a pager window) only borrowed its page; it is not freed here.
            Pmap.remove(piece.start, pages: pages)
        case .submap:
            break
        }
    }
}
