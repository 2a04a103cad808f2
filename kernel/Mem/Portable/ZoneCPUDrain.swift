// ZoneCPUDrain.swift - getting objects out of a zone's CPU layer (ZoneCPUCache.swift): other
// CPUs' magazines handed over on request, drains of every CPU and the depot, the depot's
// working-set trim, and caching switched off and on.
//
// A CPU's slot has no lock (ZoneCPUCache.swift, "Locks"), so another CPU never takes its
// magazines: holding the zone lock, it asks the owner (ZoneEnvironment.askOtherCPUs - an IPI in
// the kernel, kernel/Mem/ZoneCacheRequests.swift) to move them to the slot's `handed` fields,
// and a validation asks it to take them back afterwards.

extension CPUCache {
    /// What another CPU, holding the zone lock, asks a slot's owner to do with its magazines.
    public enum Request: UInt8 {
        /// Move `loaded` and `previous` to the `handed` fields, leaving its own nil.
        case handOver
        /// Take the handed magazines back (its own are nil: it could not fill them while the
        /// asking CPU held the zone lock).
        case takeBack
    }

    /// Whether the owner of `cache` has anything to do for `request`: the asking CPU skips the
    /// others (a racy read that cannot miss - see "Locks": a slot with both magazines nil
    /// stays so while the asker holds the zone lock).
    public static func concerns(_ request: Request, _ cache: UnsafeMutablePointer<CPUCache>) -> Bool {
        switch request {
        case .handOver: return cache.pointee.loaded != nil || cache.pointee.previous != nil
        case .takeBack: return cache.pointee.handedLoaded != nil || cache.pointee.handedPrevious != nil
        }
    }

    /// The owner's answer to `request`, run on the owning CPU with interrupts off (or, for a
    /// CPU that is not running, by the asking CPU): the slot's own pair of magazines and its
    /// handed pair trade places, provided the pair they go to is empty. Returns whether it
    /// was; if not, nothing moves and the asking CPU fails the zone (ZoneRef.askOtherCPUs).
    @discardableResult
    public static func answer(_ request: Request, _ cache: UnsafeMutablePointer<CPUCache>) -> Bool {
        let destinationEmpty = request == .handOver ? !concerns(.takeBack, cache) : !concerns(.handOver, cache)
        guard destinationEmpty else { return false }
        swap(&cache.pointee.loaded, &cache.pointee.handedLoaded)
        swap(&cache.pointee.previous, &cache.pointee.handedPrevious)
        return true
    }
}

extension ZoneRef {
    /// Asks every other CPU to hand over (or take back) its magazines of this zone, and
    /// returns once each has (the zone lock is held, interrupts off). This CPU's own slot is
    /// not touched: the caller works on it directly.
    func askOtherCPUs(_ request: CPUCache.Request) {
        Environment.askOtherCPUs(state, request)
        // What each owner answered is checked here, once, for every environment.
        let me = Environment.cpuIndex
        for index in 0..<Environment.cpuCount where index < CPUCache.slots && index != me {
            let cache = state.pointee.caches + index
            if CPUCache.concerns(request, cache) { Environment.fail("zone \(state.pointee.name): cpu \(index) still holds magazines after being asked to \(request == .handOver ? "hand them over" : "take them back")") }
        }
    }

    /// The magazines CPU `index` works with, once askOtherCPUs(.handOver) returned: its own
    /// for this CPU, the handed ones for the others.
    func heldMagazines(_ index: Int) -> (loaded: UnsafeMutablePointer<Magazine>?, previous: UnsafeMutablePointer<Magazine>?) {
        let cache = state.pointee.caches + index
        if index == Environment.cpuIndex { return (cache.pointee.loaded, cache.pointee.previous) }
        return (cache.pointee.handedLoaded, cache.pointee.handedPrevious)
    }

    /// Empties every CPU's magazines and the whole depot onto the slabs, and gives every
    /// magazine back to the magazine zone (the zone lock is held). Afterwards the centre holds
    /// every free object. For reclaim passes, scenes and zone destruction.
    func drainAll() {
        askOtherCPUs(.handOver)
        for index in 0..<Environment.cpuCount where index < CPUCache.slots {
            let (loaded, previous) = heldMagazines(index)
            // Each object is validated as it goes to its slab (flushToSlabs).
            if let loaded = loaded { flushToSlabs(loaded); returnMagazine(loaded) }
            if let previous = previous { flushToSlabs(previous); returnMagazine(previous) }
            let cache = state.pointee.caches + index
            // The other CPUs' own fields are nil already (they handed them over).
            if index == Environment.cpuIndex {
                cache.pointee.loaded = nil
                cache.pointee.previous = nil
            }
            cache.pointee.handedLoaded = nil
            cache.pointee.handedPrevious = nil
        }
        trimDepot(keepingFull: 0, keepingEmpty: 0)
    }

    /// Gives depot magazines back until `keepingFull` full and `keepingEmpty` empty ones are
    /// left (the zone lock is held): full ones' objects to their slabs, the magazines to the
    /// magazine zone.
    func trimDepot(keepingFull: Int, keepingEmpty: Int) {
        while state.pointee.depotFull.count > keepingFull, let full = state.pointee.depotFull.pop() {
            // Their objects were the centre's already: flushToSlabs counts them again.
            state.pointee.freeObjects -= full.pointee.count
            state.pointee.inUse += full.pointee.count
            flushToSlabs(full)
            returnMagazine(full)
        }
        while state.pointee.depotEmpty.count > keepingEmpty, let empty = state.pointee.depotEmpty.pop() {
            returnMagazine(empty)
        }
        state.pointee.depotFull.lowest = state.pointee.depotFull.count
        state.pointee.depotEmpty.lowest = state.pointee.depotEmpty.count
        updateCentralShort()
    }

    /// Gives back the depot magazines that went unused since the last trim (the fewest each
    /// list held meanwhile): the depot follows the zone's working set. The pageout thread
    /// calls it on each of its periodic passes; a reclaim under pressure drains everything.
    public func trimDepotToWorkingSet() {
        let token = Environment.lock()
        trimDepot(keepingFull: state.pointee.depotFull.count - state.pointee.depotFull.lowest,
                  keepingEmpty: state.pointee.depotEmpty.count - state.pointee.depotEmpty.lowest)
        Environment.unlock(token)
    }

    /// Turns the CPU layer off (draining it, so the centre holds every free object) or back
    /// on. Zones with debug checks and the magazine zone never cache.
    public func setCaching(_ on: Bool) {
        let token = Environment.lock()
        if state.pointee.caching != .never {
            if !on { drainAll() }
            state.pointee.caching = on ? .enabled : .suspended
        }
        Environment.unlock(token)
    }
}
