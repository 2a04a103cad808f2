// PVEntries.swift - where PV entries come from.
//
// For now a fixed pool taken at boot: a free list threaded through the entries themselves.
// The slab zones replace it with the pv_entry zone, which starts from static slabs and keeps
// a reserve for the pageout path.

enum PVEntries {
    static var freeList: UnsafeMutablePointer<PVEntry>? = nil
    static var capacity = 0
    static var inUse = 0

    static func bootstrap(pages: Int) {
        let base = PhysicalWindow.pointer(to: BootPageAllocator.steal(pages: pages))
        capacity = pages * Int(pageSize) / MemoryLayout<PVEntry>.stride
        let entries = base.bindMemory(to: PVEntry.self, capacity: capacity)
        for index in 0..<capacity {
            entries[index] = PVEntry(pmap: nil, virtualAddress: 0)
            entries[index].next = index + 1 < capacity ? entries + index + 1 : nil
        }
        freeList = entries
    }

    static func allocate() -> UnsafeMutablePointer<PVEntry>? {
        withInterruptsDisabled {
            guard let entry = freeList else { return nil }
            freeList = entry.pointee.next
            entry.pointee.next = nil
            inUse += 1
            FreePath.noteAllocation()
            return entry
        }
    }

    static func free(_ entry: UnsafeMutablePointer<PVEntry>) {
        withInterruptsDisabled {
            entry.pointee.next = freeList
            freeList = entry
            inUse -= 1
        }
    }
}
