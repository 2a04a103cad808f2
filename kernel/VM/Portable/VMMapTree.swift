// VMMapTree.swift - the red-black tree behind a vm_map, augmented with free gaps.
//
// Entries are ordered by start address in a red-black tree (parent pointers, nil leaves) and
// also linked in address order through prev/next. Each entry records the free space after it
// (`gapAfter`, up to the next entry or the map's end) and the largest such gap in its subtree
// (`maxGap`). That augmentation is what makes finding free space O(log n): a subtree whose
// maxGap is too small is never entered. Rotations and gap changes update maxGap bottom-up.
//
// This file is only the tree; VMMap.swift builds the map operations on it.

public typealias EntryPointer = UnsafeMutablePointer<MapEntry>

extension VMMapState {
    // MARK: - Augmentation

    @inline(__always)
    static func subtreeMaxGap(_ node: EntryPointer?) -> UInt64 { node?.pointee.maxGap ?? 0 }

    /// Recomputes one node's maxGap from its own gap and its children's.
    @inline(__always)
    static func updateMaxGap(_ node: EntryPointer) {
        node.pointee.maxGap = max(node.pointee.gapAfter, max(subtreeMaxGap(node.pointee.left), subtreeMaxGap(node.pointee.right)))
    }

    /// Recomputes maxGap from `node` up to the root.
    static func propagateMaxGap(from node: EntryPointer?) {
        var current = node
        while let entry = current {
            updateMaxGap(entry)
            current = entry.pointee.parent
        }
    }

    // MARK: - Rotations

    /// Rotating toward .left lifts the right child into the node's place (a left rotation).
    /// The rebalancing cases come in mirrored pairs; writing them once with a side keeps the
    /// two halves from drifting apart.
    enum Side {
        case left, right
        var opposite: Side { self == .left ? .right : .left }
    }

    @inline(__always)
    static func child(_ node: EntryPointer, _ side: Side) -> EntryPointer? {
        side == .left ? node.pointee.left : node.pointee.right
    }

    @inline(__always)
    static func setChild(_ node: EntryPointer, _ side: Side, _ child: EntryPointer?) {
        if side == .left { node.pointee.left = child } else { node.pointee.right = child }
    }

    @inline(__always)
    static func isRed(_ node: EntryPointer?) -> Bool { node?.pointee.isRed ?? false }

    mutating func rotate(_ x: EntryPointer, toward side: Side) {
        let y = VMMapState.child(x, side.opposite)!
        let inner = VMMapState.child(y, side)
        VMMapState.setChild(x, side.opposite, inner)
        inner?.pointee.parent = x
        y.pointee.parent = x.pointee.parent
        replaceChild(of: x.pointee.parent, old: x, new: y)
        VMMapState.setChild(y, side, x)
        x.pointee.parent = y
        VMMapState.updateMaxGap(x)
        VMMapState.updateMaxGap(y)
    }

    mutating func replaceChild(of parent: EntryPointer?, old: EntryPointer, new: EntryPointer?) {
        guard let parent = parent else {
            root = new
            return
        }
        if parent.pointee.left == old { parent.pointee.left = new } else { parent.pointee.right = new }
    }

    // MARK: - Insertion

    /// Links `entry` into the tree under `parent` (its in-order neighbour found by the caller)
    /// and rebalances. Gaps must already be set; maxGap is recomputed on the way.
    mutating func treeInsert(_ entry: EntryPointer, parent: EntryPointer?, asLeft: Bool) {
        entry.pointee.left = nil
        entry.pointee.right = nil
        entry.pointee.parent = parent
        entry.pointee.isRed = true
        entry.pointee.maxGap = entry.pointee.gapAfter
        if let parent = parent {
            if asLeft { parent.pointee.left = entry } else { parent.pointee.right = entry }
        } else {
            root = entry
        }
        VMMapState.propagateMaxGap(from: parent)
        var z = entry
        while let p = z.pointee.parent, p.pointee.isRed {
            let g = p.pointee.parent!
            let side: Side = p == g.pointee.left ? .left : .right   // where the parent hangs
            if let uncle = VMMapState.child(g, side.opposite), uncle.pointee.isRed {
                p.pointee.isRed = false
                uncle.pointee.isRed = false
                g.pointee.isRed = true
                z = g
            } else {
                if z == VMMapState.child(p, side.opposite) {   // inner grandchild: make it outer
                    z = p
                    rotate(z, toward: side)
                }
                z.pointee.parent!.pointee.isRed = false
                g.pointee.isRed = true
                rotate(g, toward: side.opposite)
            }
        }
        root!.pointee.isRed = false
    }

    // MARK: - Deletion

    static func minimum(_ node: EntryPointer) -> EntryPointer {
        var current = node
        while let left = current.pointee.left { current = left }
        return current
    }

    /// Moves `new` into `old`'s place in the tree (not its colour).
    mutating func transplant(_ old: EntryPointer, _ new: EntryPointer?) {
        replaceChild(of: old.pointee.parent, old: old, new: new)
        new?.pointee.parent = old.pointee.parent
    }

    /// Unlinks `z` from the tree and rebalances. The address-order links are the caller's.
    mutating func treeRemove(_ z: EntryPointer) {
        var x: EntryPointer?
        var xParent: EntryPointer?
        var removedRed = z.pointee.isRed
        if z.pointee.left == nil {
            x = z.pointee.right
            xParent = z.pointee.parent
            transplant(z, z.pointee.right)
        } else if z.pointee.right == nil {
            x = z.pointee.left
            xParent = z.pointee.parent
            transplant(z, z.pointee.left)
        } else {
            let y = VMMapState.minimum(z.pointee.right!)
            removedRed = y.pointee.isRed
            x = y.pointee.right
            if y.pointee.parent == z {
                xParent = y
            } else {
                xParent = y.pointee.parent
                transplant(y, y.pointee.right)
                y.pointee.right = z.pointee.right
                y.pointee.right?.pointee.parent = y
            }
            transplant(z, y)
            y.pointee.left = z.pointee.left
            y.pointee.left?.pointee.parent = y
            y.pointee.isRed = z.pointee.isRed
        }
        // Everything from the lowest changed node up needs its maxGap recomputed.
        VMMapState.propagateMaxGap(from: xParent)
        z.pointee.left = nil
        z.pointee.right = nil
        z.pointee.parent = nil
        if !removedRed { removeFixup(x, parent: xParent) }
    }

    mutating func removeFixup(_ start: EntryPointer?, parent startParent: EntryPointer?) {
        var x = start
        var parent = startParent
        while x != root && (x == nil || !x!.pointee.isRed) {
            guard let p = parent else { break }
            let side: Side = x == p.pointee.left ? .left : .right   // where the short side is
            var w = VMMapState.child(p, side.opposite)!             // the sibling
            if w.pointee.isRed {
                w.pointee.isRed = false
                p.pointee.isRed = true
                rotate(p, toward: side)
                w = VMMapState.child(p, side.opposite)!
            }
            let nearBlack = !VMMapState.isRed(VMMapState.child(w, side))
            let farBlack = !VMMapState.isRed(VMMapState.child(w, side.opposite))
            if nearBlack && farBlack {
                w.pointee.isRed = true
                x = p
                parent = p.pointee.parent
            } else {
                if farBlack {
                    VMMapState.child(w, side)?.pointee.isRed = false
                    w.pointee.isRed = true
                    rotate(w, toward: side.opposite)
                    w = VMMapState.child(p, side.opposite)!
                }
                w.pointee.isRed = p.pointee.isRed
                p.pointee.isRed = false
                VMMapState.child(w, side.opposite)?.pointee.isRed = false
                rotate(p, toward: side)
                x = root
                parent = nil
            }
        }
        x?.pointee.isRed = false
    }

    // MARK: - Searching

    /// The entry containing `address`, or nil. O(log n).
    public func lookup(_ address: VirtualAddress) -> EntryPointer? {
        var node = root
        while let entry = node {
            if address < entry.pointee.start { node = entry.pointee.left }
            else if address >= entry.pointee.end { node = entry.pointee.right }
            else { return entry }
        }
        return nil
    }

    /// The last entry starting at or below `address`, or nil. O(log n).
    public func floorEntry(_ address: VirtualAddress) -> EntryPointer? {
        var node = root
        var best: EntryPointer? = nil
        while let entry = node {
            if entry.pointee.start <= address {
                best = entry
                node = entry.pointee.right
            } else {
                node = entry.pointee.left
            }
        }
        return best
    }

    /// The lowest-addressed entry whose gapAfter is at least `need`. O(log n): it only goes
    /// left when the left subtree's maxGap proves a fit is there.
    func lowestGap(atLeast need: UInt64) -> EntryPointer? {
        var node = root
        while let entry = node {
            if let left = entry.pointee.left, left.pointee.maxGap >= need {
                node = left
            } else if entry.pointee.gapAfter >= need {
                return entry
            } else if let right = entry.pointee.right, right.pointee.maxGap >= need {
                node = right
            } else {
                return nil
            }
        }
        return nil
    }
}
