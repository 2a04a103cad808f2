// VMMaps.swift - vm_maps in the kernel: locking, entry reservation, validation.
//
// A map (kernel/VM/Portable/VMMap.swift) never allocates; this file gives it the entries it needs.
// Before an operation takes a map's lock it reserves entries (DragonFly's
// vm_map_entry_reserve): an insert needs 1, an unmap 1 (a split), a protect 2 (both edges).
// They come first from the map's own stock, then from the map_entry zone under the caller's
// AllocationContext - from its reserve for VM internals and the pageout path. After the operation the
// unused ones, and the entries removed from the map, top the stock back up to its target and
// the rest go back to the zone. Free paths reserve nothing, not even from the stock: kmem_free
// never splits an entry (kernel/VM/Kmem.swift) and destroying a submap removes one whole entry;
// a reservation inside a free path panics (kernel/Lib/FreePath.swift). The stock serves the
// allocating operations (inserts, protects, kmem's freePart), so that they seldom reach the zone.
//
// With `mapcheck=on`, every operation ends with the full validator (kernel/VM/Portable/VMMapCheck.swift)
// plus the checks that need the kernel: submap bounds and balanced reservations.

extension LogTag {
    static let vm = LogTag("vm")
}

struct MapControl {
    var map: VMMapState
    var lock: SpinLock
    /// Spare entries kept for the next operations (not for free paths: they need none).
    var stock = EntryReservation()
    var stockTarget: Int
    /// The submap this map is inside of, for bounds checks (nil for kernel_map).
    var parent: UnsafeMutablePointer<MapControl>?
    /// Reservations taken and not yet released.
    var outstandingReservations = 0
    var exhaustionFailures: UInt64 = 0
    var operations: UInt64 = 0
}

typealias MapRef = UnsafeMutablePointer<MapControl>

enum VMMaps {
    static var validateAfterEveryOperation = false
    static let defaultStockTarget = ReserveBounds.mapStockTarget

    static func create(_ name: StaticString, start: VirtualAddress, end: VirtualAddress, parent: MapRef? = nil) -> MapRef {
        let control = MapRef.allocate(capacity: 1)
        control.initialize(to: MapControl(map: VMMapState(name: name, start: start, end: end), lock: SpinLock(name, .underKernelLock),
                                          stockTarget: defaultStockTarget, parent: parent))
        return control
    }

    /// Carves a submap of `size` bytes out of `parent`: an entry of kind .submap in the parent
    /// pointing at a new map over exactly that range.
    static func createSubmap(_ name: StaticString, in parent: MapRef, size: UInt64, _ context: AllocationContext = .system) -> MapRef? {
        guard var spares = reserve(parent, 1, context) else { return nil }
        parent.pointee.lock.lock()
        guard let start = parent.pointee.map.findSpace(size: size, alignment: pageSize) else {
            parent.pointee.lock.unlock()
            release(parent, &spares)
            Log.error(.vm, "submap \(name): \(parent.pointee.map.name) has no free range of \(bytes: size)")
            return nil
        }
        let submap = create(name, start: start, end: start + size, parent: parent)
        let entry = spares.take("submap")
        entry.initialize(to: MapEntry(start: start, end: start + size, kind: .submap, protection: .readWrite))
        entry.pointee.object = UnsafeMutableRawPointer(submap)
        parent.pointee.map.insert(entry)
        parent.pointee.lock.unlock()
        release(parent, &spares)
        finish(parent, "submap")
        return submap
    }

    /// Removes an empty submap from its parent and frees it (test submaps). A free path: the
    /// submap's entry covers exactly the submap, so removing it splits nothing and needs no
    /// spare entry; nothing is reserved or allocated.
    static func destroySubmap(_ submap: MapRef) {
        kassert(submap.pointee.map.count == 0, "destroying submap \(submap.pointee.map.name) with \(submap.pointee.map.count) entries")
        let parent = submap.pointee.parent!
        FreePath.enter(.submapDestroy)
        var spares = EntryReservation()
        parent.pointee.lock.lock()
        kassert(!parent.pointee.map.removalSplitsAnEntry(submap.pointee.map.start, submap.pointee.map.end),
                "submap \(submap.pointee.map.name) is not exactly one entry of \(parent.pointee.map.name)")
        var removed = RemovedRange()
        parent.pointee.map.removeRange(submap.pointee.map.start, submap.pointee.map.end, using: &spares, removed: &removed)
        removed.recycleEntries(into: &spares)
        parent.pointee.lock.unlock()
        release(parent, &spares, counted: false)
        FreePath.leave()
        flushStock(submap)
        submap.deallocate()
    }

    // MARK: - Reservations

    /// `count` spare entries for one operation on `map`, taken before its lock: from the
    /// map's stock first (privileged callers only), then from the map_entry zone under
    /// `context`'s rules. Also tops the stock up when the caller is allowed to allocate. Nil
    /// when entries cannot be had.
    ///
    /// Why an ordinary caller never takes a stocked entry: privileged callers (the pageout
    /// step, a swblock refill) top the stock up from the map_entry reserve. An ordinary
    /// caller that took those entries and kept them - a page-in sleeping on its read - would
    /// let the next privileged top-up draw the reserve again, one entry per such caller, with
    /// no bound (docs/reserves.md, section 3). Served from the zone, an ordinary caller stops
    /// at the reserve line like any ordinary allocation.
    static func reserve(_ map: MapRef, _ count: Int, _ context: AllocationContext, topUpStock: Bool = true) -> EntryReservation? {
        // A reservation is an allocation even when the stock serves it: a free path that took
        // from the stock would leave the next free path without its entry.
        FreePath.checkAllocation(.mapEntryReservation)
        let mayTakeStock = context.mayUseZoneReserves
        var spares = EntryReservation()
        while spares.count < count {
            if mayTakeStock, let entry = withInterruptsDisabled({ map.pointee.stock.takeAny() }) {
                spares.add(entry)
            } else if let memory = Zones.mapEntry.allocate(context) {
                spares.add(memory.bindMemory(to: MapEntry.self, capacity: 1))
            } else {
                release(map, &spares, counted: false)
                return nil
            }
        }
        if topUpStock {
            // Allocating paths keep the stock full for the free paths that follow.
            while map.pointee.stock.count < map.pointee.stockTarget, let memory = Zones.mapEntry.allocate(context.withoutWaiting) {
                withInterruptsDisabled { map.pointee.stock.add(memory.bindMemory(to: MapEntry.self, capacity: 1)) }
            }
        }
        withInterruptsDisabled { map.pointee.outstandingReservations += 1 }
        return spares
    }

    /// Puts the reservation's remaining entries back: into the stock up to its target, the
    /// rest to the zone. Never allocates.
    static func release(_ map: MapRef, _ spares: inout EntryReservation, counted: Bool = true) {
        while let entry = spares.takeAny() {
            let kept: Bool = withInterruptsDisabled {
                guard map.pointee.stock.count < map.pointee.stockTarget else { return false }
                map.pointee.stock.add(entry)
                return true
            }
            if !kept { Zones.mapEntry.free(UnsafeMutableRawPointer(entry)) }
        }
        if counted { withInterruptsDisabled { map.pointee.outstandingReservations -= 1 } }
    }

    /// Gives every stocked entry back to the zone.
    static func flushStock(_ map: MapRef) {
        while let entry = withInterruptsDisabled({ map.pointee.stock.takeAny() }) {
            Zones.mapEntry.free(UnsafeMutableRawPointer(entry))
        }
    }

    // MARK: - Validation

    /// Called at the end of every map operation; with mapcheck=on, validates the map.
    static func finish(_ map: MapRef, _ operation: StaticString) {
        map.pointee.operations += 1
        guard validateAfterEveryOperation else { return }
        if let problem = validate(map) {
            panic("vm_map \(map.pointee.map.name): invalid after \(operation): \(message: problem)")
        }
    }

    /// Everything the portable validator (VMMapCheck.swift) checks, plus submap bounds and balanced reservations.
    static func validate(_ map: MapRef) -> LogMessage? {
        map.pointee.lock.lock()
        defer { map.pointee.lock.unlock() }
        if let problem = map.pointee.map.validate() { return problem }
        if map.pointee.outstandingReservations != 0 {
            return "\(map.pointee.outstandingReservations) entry reservations not released"
        }
        if map.pointee.stock.count > map.pointee.stockTarget {
            return "stock holds \(map.pointee.stock.count) entries, more than its target \(map.pointee.stockTarget)"
        }
        var problem: LogMessage? = nil
        map.pointee.map.forEach { entry in
            guard problem == nil, entry.pointee.kind == .submap, let object = entry.pointee.object else { return }
            let submap = object.assumingMemoryBound(to: MapControl.self)
            if submap.pointee.map.start != entry.pointee.start || submap.pointee.map.end != entry.pointee.end {
                problem = "submap \(submap.pointee.map.name) covers \(hex: submap.pointee.map.start)-\(hex: submap.pointee.map.end) but its entry \(hex: entry.pointee.start)-\(hex: entry.pointee.end)"
            }
            if submap.pointee.parent != map { problem = "submap \(submap.pointee.map.name) does not name this map as its parent" }
        }
        if problem == nil, let parent = map.pointee.parent {
            if let first = map.pointee.map.first, first.pointee.start < map.pointee.map.start { problem = "entry below the submap" }
            if let last = map.pointee.map.last, last.pointee.end > map.pointee.map.end { problem = "entry above the submap" }
            let inParent = parent.pointee.map.lookup(map.pointee.map.start)
            if inParent == nil || inParent!.pointee.kind != .submap { problem = "the parent map has no submap entry for this map" }
        }
        return problem
    }
}
