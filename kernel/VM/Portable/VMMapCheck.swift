// VMMapCheck.swift - the vm_map validator.
//
// Recomputes everything the map maintains incrementally and compares: order, bounds and
// overlap of entries, the address-order list against an in-order walk of the tree, every
// gapAfter and maxGap, the red-black properties (no red node with a red child, the same
// number of black nodes on every path), the entry count and mapped bytes. Returns a
// description of the first problem, or nil. `mapcheck=on` runs it after every operation.

extension VMMapState {
    public func validate() -> LogMessage? {
        var count = 0
        var mapped: UInt64 = 0
        var previousEnd = start
        var previous: EntryPointer? = nil
        var entry = first
        let expectedLeading = (first?.pointee.start ?? end) - start
        guard leadingGap == expectedLeading else { return "leading gap \(leadingGap), expected \(expectedLeading)" }
        while let current = entry {
            let e = current.pointee
            guard e.start < e.end else { return "empty entry at \(hex: e.start)" }
            guard e.start >= previousEnd else { return "entry \(hex: e.start)-\(hex: e.end) overlaps or is out of order" }
            guard e.end <= end else { return "entry \(hex: e.start)-\(hex: e.end) ends past the map" }
            guard e.prev == previous else { return "entry \(hex: e.start) has a wrong prev link" }
            let expectedGap = (e.next?.pointee.start ?? end) - e.end
            guard e.gapAfter == expectedGap else { return "entry \(hex: e.start) gapAfter \(e.gapAfter), expected \(expectedGap)" }
            count += 1
            mapped += e.end - e.start
            previousEnd = e.end
            previous = current
            entry = e.next
        }
        guard last == previous else { return "last entry link is wrong" }
        guard count == self.count else { return "\(count) entries in the list, count says \(self.count)" }
        guard mapped == mappedBytes else { return "\(mapped) bytes mapped, mappedBytes says \(mappedBytes)" }
        if let root = root {
            guard root.pointee.parent == nil else { return "root has a parent" }
            guard !root.pointee.isRed else { return "root is red" }
        }
        var visited = 0
        var inorder = first
        var problem: LogMessage? = nil
        _ = checkSubtree(root, low: start, high: end, visited: &visited, inorder: &inorder, problem: &problem)
        if let problem = problem { return problem }
        guard visited == count else { return "\(visited) entries in the tree, \(count) in the list" }
        return nil
    }

    /// Returns the black height of the subtree; records the first problem found.
    private func checkSubtree(_ node: EntryPointer?, low: VirtualAddress, high: VirtualAddress, visited: inout Int,
                              inorder: inout EntryPointer?, problem: inout LogMessage?) -> Int {
        guard let node = node, problem == nil else { return 1 }
        let e = node.pointee
        if let left = e.left, left.pointee.parent != node { problem = "entry \(hex: left.pointee.start) has a wrong parent" }
        if let right = e.right, right.pointee.parent != node { problem = "entry \(hex: right.pointee.start) has a wrong parent" }
        if e.isRed && ((e.left?.pointee.isRed ?? false) || (e.right?.pointee.isRed ?? false)) {
            problem = "red entry \(hex: e.start) has a red child"
        }
        if e.start < low || e.end > high { problem = "entry \(hex: e.start) is out of tree order" }
        let leftHeight = checkSubtree(e.left, low: low, high: e.start, visited: &visited, inorder: &inorder, problem: &problem)
        if inorder != node && problem == nil { problem = "tree order and list order differ at \(hex: e.start)" }
        inorder = inorder?.pointee.next
        visited += 1
        let rightHeight = checkSubtree(e.right, low: e.end, high: high, visited: &visited, inorder: &inorder, problem: &problem)
        let expectedMax = max(e.gapAfter, max(e.left?.pointee.maxGap ?? 0, e.right?.pointee.maxGap ?? 0))
        if e.maxGap != expectedMax && problem == nil { problem = "entry \(hex: e.start) maxGap \(e.maxGap), expected \(expectedMax)" }
        if leftHeight != rightHeight && problem == nil { problem = "black heights differ below \(hex: e.start)" }
        return leftHeight + (e.isRed ? 0 : 1)
    }
}
