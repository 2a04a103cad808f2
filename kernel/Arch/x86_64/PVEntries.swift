// PVEntries.swift - where PV entries come from: the pv_entry zone.
//
// The pmap takes a PV entry for every mapping of a managed page. The zone starts from static
// slabs and keeps a reserve; VM internals and the pageout path take from the reserve, while
// ordinary callers (kmem_alloc on behalf of a normal allocation) may wait for memory instead.

enum PVEntries {
    static var inUse: Int { Zones.pvEntry.inUse }

    /// A PV entry, or nil when none can be had under `privileged`/`blocking`'s rules.
    static func allocate(privileged: Bool = true, blocking: Blocking = .noWait) -> UnsafeMutablePointer<PVEntry>? {
        var flags: ZoneFlags = blocking == .noWait ? .noWait : .wait
        if privileged { flags.insert(.useReserve) }
        return Zones.pvEntry.allocate(flags)?.bindMemory(to: PVEntry.self, capacity: 1)
    }

    static func free(_ entry: UnsafeMutablePointer<PVEntry>) {
        Zones.pvEntry.free(UnsafeMutableRawPointer(entry))
    }
}
