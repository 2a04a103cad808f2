// VMMap.swift - a vm_map: non-overlapping entries over a range of virtual addresses.
//
// The operations here never allocate. Whatever needs a new entry - inserting, or clipping an
// entry in two when a range is removed or protected in its middle - takes it from an
// EntryReservation the caller filled before taking the map's lock (DragonFly's
// vm_map_entry_reserve), and entries that leave the map go back into that reservation. This
// is what lets unmapping - a free path - work without calling an allocator while holding
// the lock: "unmap can easily end up splitting one entry in two"
// (../shared/seeds/gnumach-slab-allocator-irc.txt).
//
// Invariants (checked by `validate`): entries are sorted, non-overlapping, non-empty and
// inside [start, end); the address-order list matches the tree; every gapAfter is the real
// distance to the next entry (or the map's end) and every maxGap the largest gapAfter of its
// subtree; the tree is a valid red-black tree; `count` and `mappedBytes` are right.

/// Spare entries for one map operation, taken before the map is locked.
public struct EntryReservation {
    public private(set) var head: EntryPointer? = nil
    public private(set) var count = 0
    /// Entries taken from the reservation by the map operation.
    public private(set) var used = 0

    public init() {}

    public mutating func add(_ entry: EntryPointer) {
        entry.pointee.next = head
        head = entry
        count += 1
    }

    /// A spare entry; a map operation that needs more than it reserved is a bug, and stops.
    public mutating func take(_ operation: StaticString) -> EntryPointer {
        guard let entry = head else { preconditionFailure("vm_map: an operation needed more entries than it reserved") }
        head = entry.pointee.next
        entry.pointee.next = nil
        count -= 1
        used += 1
        return entry
    }

    public mutating func takeAny() -> EntryPointer? {
        guard let entry = head else { return nil }
        head = entry.pointee.next
        entry.pointee.next = nil
        count -= 1
        return entry
    }
}

/// What a removeRange took out of a map: whole entries, linked through `next`, and the
/// pieces cut off entries that stayed (at most two: one at each edge of the range).
public struct RemovedRange {
    public private(set) var entries: EntryPointer? = nil
    public private(set) var entryCount = 0
    public private(set) var firstPiece: MapEntry? = nil
    public private(set) var secondPiece: MapEntry? = nil

    public init() {}

    mutating func addEntry(_ entry: EntryPointer) {
        entry.pointee.next = entries
        entries = entry
        entryCount += 1
    }

    mutating func addPiece(_ piece: MapEntry) {
        if firstPiece == nil { firstPiece = piece } else { secondPiece = piece }
    }

    /// Every removed range of addresses: the pieces, then the whole entries.
    public func forEach(_ body: (MapEntry) -> Void) {
        if let piece = firstPiece { body(piece) }
        if let piece = secondPiece { body(piece) }
        var current = entries
        while let entry = current {
            body(entry.pointee)
            current = entry.pointee.next
        }
    }

    /// Hands the removed entries over for reuse (into a reservation) and forgets them.
    public mutating func recycleEntries(into spares: inout EntryReservation) {
        while let entry = entries {
            entries = entry.pointee.next
            spares.add(entry)
        }
        entryCount = 0
    }
}

public struct VMMapState {
    public let name: StaticString
    public let start: VirtualAddress
    public let end: VirtualAddress
    public var root: EntryPointer? = nil
    public var first: EntryPointer? = nil
    public var last: EntryPointer? = nil
    public var count = 0
    public var mappedBytes: UInt64 = 0
    /// Free space between `start` and the first entry (the whole map when empty).
    public var leadingGap: UInt64

    public init(name: StaticString, start: VirtualAddress, end: VirtualAddress) {
        precondition(start < end, "vm_map: empty range")
        self.name = name
        self.start = start
        self.end = end
        leadingGap = end - start
    }

    public var size: UInt64 { end - start }

    // MARK: - Finding space

    /// The lowest address where `size` bytes aligned to `alignment` fit, or nil. Exact for
    /// page alignment; for larger alignments it looks for a gap of size + alignment - page,
    /// which always holds an aligned run, and so stays O(log n) - at the price of passing over
    /// a smaller gap that happens to be aligned already.
    public func findSpace(size: UInt64, alignment: UInt64, pageSize: UInt64 = 4096) -> VirtualAddress? {
        precondition(size > 0 && alignment >= pageSize && alignment & (alignment - 1) == 0, "vm_map: bad findSpace request")
        let need = size + alignment - pageSize
        let leadingStart = start.roundedUp(to: alignment)
        let firstStart = first?.pointee.start ?? end
        if leadingStart >= start && leadingStart <= firstStart && firstStart - leadingStart >= size { return leadingStart }
        guard let entry = lowestGap(atLeast: need) else { return nil }
        let gapStart = entry.pointee.end
        let aligned = gapStart.roundedUp(to: alignment)
        precondition(aligned + size <= gapStart + entry.pointee.gapAfter, "vm_map: gap search found a gap that does not fit")
        return aligned
    }

    // MARK: - Insertion and removal

    /// Inserts `entry` ([start, end) must be free and inside the map).
    public mutating func insert(_ entry: EntryPointer) {
        let entryStart = entry.pointee.start, entryEnd = entry.pointee.end
        precondition(entryStart < entryEnd && entryStart >= start && entryEnd <= end, "vm_map: entry outside the map")
        let previous = floorEntry(entryStart)
        // (Not `previous?.pointee.next ?? first`: a last entry's nil next must stay nil.)
        let next = previous != nil ? previous!.pointee.next : first
        precondition(previous == nil || previous!.pointee.end <= entryStart, "vm_map: entry overlaps its predecessor")
        precondition(next == nil || next!.pointee.start >= entryEnd, "vm_map: entry overlaps its successor")
        // Address-order links and gaps.
        entry.pointee.prev = previous
        entry.pointee.next = next
        if let previous = previous { previous.pointee.next = entry } else { first = entry }
        if let next = next { next.pointee.prev = entry } else { last = entry }
        entry.pointee.gapAfter = (next?.pointee.start ?? end) - entryEnd
        if let previous = previous {
            previous.pointee.gapAfter = entryStart - previous.pointee.end
            VMMapState.propagateMaxGap(from: previous)
        } else {
            leadingGap = entryStart - start
        }
        // Tree position: the right child of the predecessor if it has none; otherwise the
        // successor is the leftmost node of the predecessor's right subtree (or the map's first
        // entry when there is no predecessor) and has no left child.
        if let previous = previous, previous.pointee.right == nil {
            treeInsert(entry, parent: previous, asLeft: false)
        } else if let next = next {
            precondition(next.pointee.left == nil, "vm_map: successor has a left child")
            treeInsert(entry, parent: next, asLeft: true)
        } else {
            treeInsert(entry, parent: nil, asLeft: false)
        }
        count += 1
        mappedBytes += entryEnd - entryStart
    }

    /// Unlinks `entry` from the map (it stays valid; the caller decides where it goes).
    public mutating func remove(_ entry: EntryPointer) {
        let previous = entry.pointee.prev, next = entry.pointee.next
        treeRemove(entry)
        if let previous = previous { previous.pointee.next = next } else { first = next }
        if let next = next { next.pointee.prev = previous } else { last = previous }
        if let previous = previous {
            previous.pointee.gapAfter = (next?.pointee.start ?? end) - previous.pointee.end
            VMMapState.propagateMaxGap(from: previous)
        } else {
            leadingGap = (next?.pointee.start ?? end) - start
        }
        entry.pointee.prev = nil
        entry.pointee.next = nil
        count -= 1
        mappedBytes -= entry.pointee.end - entry.pointee.start
    }

    /// Splits `entry` at `address` (strictly inside it): `entry` keeps [start, address) and a
    /// new entry from the reservation takes [address, end), with the same kind, object and
    /// protection, and the object offset moved on. Returns the new upper entry.
    @discardableResult
    public mutating func clip(_ entry: EntryPointer, at address: VirtualAddress, using spares: inout EntryReservation) -> EntryPointer {
        precondition(address > entry.pointee.start && address < entry.pointee.end, "vm_map: clip outside the entry")
        let upper = spares.take("clip")
        var copy = entry.pointee
        copy.offset += address - entry.pointee.start
        copy.start = address
        // The lower part shrinks in place: its gap grows to the new entry's start (0).
        entry.pointee.end = address
        entry.pointee.gapAfter = 0
        VMMapState.propagateMaxGap(from: entry)
        mappedBytes -= copy.end - address
        upper.pointee = MapEntry(start: copy.start, end: copy.end, kind: copy.kind, protection: copy.protection)
        upper.pointee.object = copy.object
        upper.pointee.offset = copy.offset
        upper.pointee.flags = copy.flags
        insert(upper)
        return upper
    }

    /// Removes [rangeStart, rangeEnd). Entries inside go away whole; an entry overlapping an
    /// edge is trimmed in place; only a range strictly inside one entry splits it, taking one
    /// spare entry. What was removed comes back in `removed` - whole entries (still valid, to
    /// be released and reused) and at most two edge pieces - so the caller can release it
    /// after unlocking the map. Allocates nothing.
    public mutating func removeRange(_ rangeStart: VirtualAddress, _ rangeEnd: VirtualAddress, using spares: inout EntryReservation,
                                     removed: inout RemovedRange) {
        precondition(rangeStart < rangeEnd, "vm_map: empty range to remove")
        if let entry = lookup(rangeStart), entry.pointee.start < rangeStart, entry.pointee.end > rangeEnd {
            clip(entry, at: rangeEnd, using: &spares)
            removed.addPiece(trimEnd(entry, to: rangeStart))
            return
        }
        if let entry = lookup(rangeStart), entry.pointee.start < rangeStart {
            removed.addPiece(trimEnd(entry, to: rangeStart))
        }
        var current = firstEntry(atOrAfter: rangeStart)
        while let entry = current, entry.pointee.end <= rangeEnd {
            let next = entry.pointee.next
            remove(entry)
            removed.addEntry(entry)
            current = next
        }
        if let entry = current, entry.pointee.start < rangeEnd {
            removed.addPiece(trimStart(entry, to: rangeEnd))
        }
    }

    /// Whether entries cover every byte of [rangeStart, rangeEnd), with no hole.
    public func covers(_ rangeStart: VirtualAddress, _ rangeEnd: VirtualAddress) -> Bool {
        guard var entry = lookup(rangeStart) else { return false }
        while entry.pointee.end < rangeEnd {
            guard let next = entry.pointee.next, next.pointee.start == entry.pointee.end else { return false }
            entry = next
        }
        return true
    }

    /// Whether removing [rangeStart, rangeEnd) would split an entry in two (and so need a spare).
    public func removalSplitsAnEntry(_ rangeStart: VirtualAddress, _ rangeEnd: VirtualAddress) -> Bool {
        guard let entry = lookup(rangeStart) else { return false }
        return entry.pointee.start < rangeStart && entry.pointee.end > rangeEnd
    }

    /// Shortens `entry` to end at `newEnd`; returns the piece cut off.
    mutating func trimEnd(_ entry: EntryPointer, to newEnd: VirtualAddress) -> MapEntry {
        var piece = entry.pointee
        piece.offset += newEnd - piece.start
        piece.start = newEnd
        mappedBytes -= entry.pointee.end - newEnd
        entry.pointee.gapAfter += entry.pointee.end - newEnd
        entry.pointee.end = newEnd
        VMMapState.propagateMaxGap(from: entry)
        return piece
    }

    /// Shortens `entry` to start at `newStart`; returns the piece cut off. The entry keeps its
    /// place in the tree (its order relative to the others does not change).
    mutating func trimStart(_ entry: EntryPointer, to newStart: VirtualAddress) -> MapEntry {
        var piece = entry.pointee
        piece.end = newStart
        let cut = newStart - entry.pointee.start
        mappedBytes -= cut
        entry.pointee.start = newStart
        entry.pointee.offset += cut
        if let previous = entry.pointee.prev {
            previous.pointee.gapAfter += cut
            VMMapState.propagateMaxGap(from: previous)
        } else {
            leadingGap += cut
        }
        return piece
    }

    /// Sets the protection of [rangeStart, rangeEnd), clipping entries at its edges. Needs at
    /// most 2 spare entries. Calls `changed` for each entry it changed.
    public mutating func protect(_ rangeStart: VirtualAddress, _ rangeEnd: VirtualAddress, _ protection: Protection,
                                 using spares: inout EntryReservation, _ changed: (MapEntry) -> Void) {
        clipRange(rangeStart, rangeEnd, using: &spares)
        var current = firstEntry(atOrAfter: rangeStart)
        while let entry = current, entry.pointee.start < rangeEnd {
            entry.pointee.protection = protection
            changed(entry.pointee)
            current = entry.pointee.next
        }
    }

    /// The entry containing `address`, or else the first entry after it.
    public func firstEntry(atOrAfter address: VirtualAddress) -> EntryPointer? {
        guard let floor = floorEntry(address) else { return first }
        return floor.pointee.end > address ? floor : floor.pointee.next
    }

    /// Makes rangeStart and rangeEnd entry boundaries wherever they fall inside an entry.
    mutating func clipRange(_ rangeStart: VirtualAddress, _ rangeEnd: VirtualAddress, using spares: inout EntryReservation) {
        if let entry = lookup(rangeStart), entry.pointee.start < rangeStart { clip(entry, at: rangeStart, using: &spares) }
        if let entry = lookup(rangeEnd), entry.pointee.start < rangeEnd { clip(entry, at: rangeEnd, using: &spares) }
    }

    /// Calls `body` on each entry in address order.
    public func forEach(_ body: (EntryPointer) -> Void) {
        var current = first
        while let entry = current {
            let next = entry.pointee.next
            body(entry)
            current = next
        }
    }
}
