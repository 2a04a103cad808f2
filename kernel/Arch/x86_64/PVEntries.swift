// PVEntries.swift - where PV entries come from: the pv_entry zone.
//
// The pmap takes a PV entry for every mapping of a managed page. The zone starts from static
// slabs and keeps a reserve; the caller's AllocationContext decides: VM internals and the
// pageout path take from the reserve, while ordinary callers (kmem_alloc on behalf of an
// ordinary allocation, a page fault) may wait for memory instead.

enum PVEntries {
    static var inUse: Int { Zones.pvEntry.inUse }

    /// A PV entry, or nil when none can be had under `context`'s rules.
    static func allocate(_ context: AllocationContext) -> UnsafeMutablePointer<PVEntry>? {
        Zones.pvEntry.allocate(context)?.bindMemory(to: PVEntry.self, capacity: 1)
    }

    static func free(_ entry: UnsafeMutablePointer<PVEntry>) {
        Zones.pvEntry.free(UnsafeMutableRawPointer(entry))
    }
}
