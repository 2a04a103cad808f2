// ZoneCPUCache.swift - the per-CPU layer in front of a zone: each CPU's two magazines, the
// zone's depot of full and empty magazines, and the zone of magazines itself.
//
// The layers (Bonwick & Adams 2001, "Magazines and Vmem"; braunr's per-processor pools in
// ../shared/seeds/gnumach-slab-allocator-irc.txt):
//   CPU    - each CPU has a `loaded` and a `previous` magazine: stacks of up to
//            `Magazine.capacity` free objects. An allocate/free pair pops and pushes the loaded
//            one with no lock at all: no shared lock, no atomic instruction, no shared cache
//            line written (the CPUCache slots are a cache line each). In the kernel each is a
//            restartable sequence that leaves interrupts on (ZoneEnvironment.popLoaded; arch.h
//            and kernel/Arch/x86_64/RestartableSequences.swift); elsewhere, interrupts off.
//   depot  - the zone's lists of full and empty magazines, under the zone lock. A CPU whose
//            magazines are both empty swaps one for a full one (or fills it from the slabs);
//            one whose magazines are both full puts one in the depot and takes an empty one.
//   slabs  - ZoneSlabs.swift.
//
// Where the reserve is (issue: "objects in another CPU's magazine are not available to the
// pageout thread"): held centrally. `freeObjects` counts the free objects in the slabs and in
// the depot's full magazines - never those in a CPU's magazines - and everything about the
// reserve (the line, the draws, their bounds, the refills) is about that central count. So:
//   - a CPU's magazine is filled only with objects above the reserve line;
//   - while the central count is below the line (`centralShort`), frees skip the CPU layer and
//     go back to the centre, so the chains that drew the reserve give it back where the next
//     draw looks (the pageout path's own frees run after its draws on the same CPU, so they
//     see the flag it set);
//   - objects in CPU magazines are never needed by a reserve user: at worst they are objects
//     the zone could have lent out, costing the zone an extra slab per CPU.
//
// Magazines come from their own zone (`magazine`, no CPU layer of its own) and are taken on
// the FREE path: a CPU that must park a full magazine and has no empty one takes a free
// magazine object, and if there is none, the object goes straight back to its slab. Taking
// one never grows the magazine zone - freeing allocates no memory (FreePath.swift) - so the
// magazine zone grows on ordinary allocation paths instead (`magazineGrowthDue`, `growMagazines`): an
// allocation that found its CPU with no magazine asks for one more magazine slab, as an
// ordinary non-waiting request. Allocation never needs a magazine, so it never recurses.
//
// Locks: the zone lock (the kernel lock in the kernel) protects the slabs, the depot and the
// central counts. A CPU's slot (its two magazines and counters) has no lock: only its own CPU
// writes it: in a fast-path sequence (restarted if interrupted), with interrupts off, or with
// the zone lock held for the slow paths. Outside the
// zone lock the owner changes `loaded` and `previous` only by exchanging two magazines it
// holds, never by taking one from nowhere, so a slot whose magazines are both nil stays so
// until its owner gets the zone lock. Another CPU that needs a slot's magazines (drainAll,
// validate) holds the zone lock and asks the owner to hand them over
// (ZoneEnvironment.askOtherCPUs: an IPI in the kernel, answered when the owner has interrupts
// on; one that lands inside a fast-path sequence restarts it first, so the sequence sees the
// magazines gone); the owner moves them to the slot's `handed` fields and
// leaves its own nil. Before: a per-slot lock word, taken by the owner on every operation
// (an atomic compare-and-swap and a store per operation, 8 instructions per pair).

/// A stack of free objects of one zone. `rounds` follow the header in the same object.
public struct Magazine {
    /// How many objects a magazine holds.
    public static let capacity = 32
    /// The size of a magazine object in the magazine zone.
    public static let bytes = MemoryLayout<Magazine>.stride + capacity * MemoryLayout<UnsafeMutableRawPointer>.stride

    /// The next magazine on a depot list.
    public var next: UnsafeMutablePointer<Magazine>?
    public var count: Int

    @inline(__always)
    public static func rounds(_ magazine: UnsafeMutablePointer<Magazine>) -> UnsafeMutablePointer<UnsafeMutableRawPointer> {
        UnsafeMutableRawPointer(magazine + 1).assumingMemoryBound(to: UnsafeMutableRawPointer.self)
    }
}

/// A depot list of magazines, linked through `next`.
public struct MagazineList {
    public var head: UnsafeMutablePointer<Magazine>? = nil
    public var count = 0
    /// The fewest magazines the list held since the last working-set trim: that many were not
    /// needed in the interval, so the trim gives them back (Bonwick's working set).
    public var lowest = 0
    public init() {}

    public mutating func push(_ magazine: UnsafeMutablePointer<Magazine>) {
        magazine.pointee.next = head
        head = magazine
        count += 1
    }

    public mutating func pop() -> UnsafeMutablePointer<Magazine>? {
        guard let magazine = head else { return nil }
        head = magazine.pointee.next
        magazine.pointee.next = nil
        count -= 1
        if count < lowest { lowest = count }
        return magazine
    }
}

/// One CPU's cache of a zone: a cache line, written by that CPU alone (ZoneCPUCache's
/// "Locks").
public struct CPUCache {
    public var loaded: UnsafeMutablePointer<Magazine>? = nil
    public var previous: UnsafeMutablePointer<Magazine>? = nil
    /// Operations served by this CPU's magazines, summed into the zone's statistics when read.
    public var allocations: UInt64 = 0
    public var frees: UInt64 = 0
    /// The magazines the owner handed over at another CPU's request (ZoneCPUDrain.swift);
    /// nil but while that CPU holds the zone lock and works on them.
    public var handedLoaded: UnsafeMutablePointer<Magazine>? = nil
    public var handedPrevious: UnsafeMutablePointer<Magazine>? = nil
    var padding: (UInt64, UInt64) = (0, 0)

    public init() {}

    /// Objects in the two magazines (on the owning CPU, or the caller accepts a racy figure).
    public var objects: Int { (loaded?.pointee.count ?? 0) + (previous?.pointee.count ?? 0) }

    /// How many CPUs a zone has a cache slot for: as many as the kernel can run (the kernel
    /// checks at boot that its per-CPU capacity is not larger).
    public static let slots = 64
}

/// Whether a zone's CPU layer is in use.
public enum ZoneCaching: UInt8 {
    /// Zones with debug checks (every free must reach the checks) and the magazine zone.
    case never
    case enabled
    /// Drained and off for now: a test scene that sets exact central counts
    /// (kernel/Test/ReserveBoundTests.swift) turns it off for its zones.
    case suspended
}

extension ZoneRef {
    // MARK: - The CPU layer

    /// The running CPU's cache slot (interrupts are off).
    @inline(__always)
    func currentCache() -> UnsafeMutablePointer<CPUCache>? {
        state.pointee.caches + Environment.cpuIndex
    }

    /// Objects sitting in the CPUs' magazines: free, but not the centre's. A racy sum (the
    /// owners keep popping and pushing): for tables and for `inUse`, never for a decision.
    public var cachedObjects: Int {
        var total = 0
        for index in 0..<Environment.cpuCount where index < CPUCache.slots { total += state.pointee.caches[index].objects }
        return total
    }

    /// The allocation fast path's second chance, with no shared lock: the loaded magazine is
    /// empty and the previous one has objects, so they trade places (Bonwick's exchange).
    /// Returns an object, or nil when both are empty.
    @inline(never)
    func allocateFromPrevious() -> UnsafeMutableRawPointer? {
        let token = Environment.enterCPU()
        guard let cache = currentCache() else { Environment.leaveCPU(token); return nil }
        var object: UnsafeMutableRawPointer? = nil
        if let previous = cache.pointee.previous, previous.pointee.count > 0 {
            cache.pointee.previous = cache.pointee.loaded
            cache.pointee.loaded = previous
            previous.pointee.count -= 1
            object = Magazine.rounds(previous)[previous.pointee.count]
            cache.pointee.allocations &+= 1
        }
        Environment.leaveCPU(token)
        return object
    }

    /// The free fast path's second chance: the loaded magazine is full (or missing) and the
    /// previous one is empty, so they trade places and `object` goes on the new loaded one.
    /// Returns whether it did. Never while the centre is short of its reserve.
    @inline(never)
    func freeToPrevious(_ object: UnsafeMutableRawPointer) -> Bool {
        let token = Environment.enterCPU()
        guard let cache = currentCache() else { Environment.leaveCPU(token); return false }
        var done = false
        if !state.pointee.centralShort, let previous = cache.pointee.previous, previous.pointee.count == 0 {
            cache.pointee.previous = cache.pointee.loaded
            cache.pointee.loaded = previous
            Magazine.rounds(previous)[0] = object
            previous.pointee.count = 1
            cache.pointee.frees &+= 1
            done = true
        }
        Environment.leaveCPU(token)
        return done
    }

    /// Whether the CPU layer may take objects from the centre or park freed ones now (the zone
    /// lock is held): caching on, and a dynamic slab in the zone - allocations from static
    /// slabs and before the page allocator are counted one by one (ZoneStatistics).
    var mayCache: Bool {
        state.pointee.caching == .enabled && state.pointee.statistics.dynamicSlabs > 0 && Environment.canGrow
    }

    /// The allocation slow path's first try, with the zone lock held and interrupts off: fill
    /// this CPU's empty loaded magazine from the centre, with objects above the reserve line
    /// only, and take one from it - so that the next allocations take the fast path. A full
    /// depot magazine is swapped in whole when the centre can spare all of it; otherwise up to
    /// half a magazine comes from the slabs, a run of one slab's free list at a time. Counts
    /// move from free to in use. Nil when this CPU has no empty magazine (magazines come on
    /// the free path) or nothing is above the line: the caller takes one object centrally.
    func fillCurrentCacheAndTake() -> UnsafeMutableRawPointer? {
        guard mayCache, let cache = currentCache() else { return nil }
        let spare = state.pointee.freeObjects - reserve
        guard spare > 0 else { return nil }
        guard let loaded = cache.pointee.loaded, loaded.pointee.count == 0 else { return nil }
        var magazine = loaded
        if let full = state.pointee.depotFull.head, full.pointee.count <= spare {
            _ = state.pointee.depotFull.pop()
            state.pointee.depotEmpty.push(loaded)
            cache.pointee.loaded = full
            state.pointee.freeObjects -= full.pointee.count
            state.pointee.inUse += full.pointee.count
            state.pointee.statistics.depotExchanges &+= 1
            magazine = full
        } else {
            let slabFree = state.pointee.freeObjects - depotRounds
            let wanted = min(Magazine.capacity / 2, spare, slabFree)
            guard wanted > 0 else { return nil }
            fillFromSlabs(loaded, count: wanted)
            state.pointee.freeObjects -= wanted
            state.pointee.inUse += wanted
        }
        magazine.pointee.count -= 1
        cache.pointee.allocations &+= 1
        return Magazine.rounds(magazine)[magazine.pointee.count]
    }

    /// Objects in the depot's full magazines (the zone lock is held).
    var depotRounds: Int { state.pointee.depotFull.count * Magazine.capacity }

    /// Moves `count` free objects from the slabs onto `magazine` (the lock is held; the slabs
    /// have that many). Each object's free-list link is checked; a slab's count and lists
    /// change once per run of its objects.
    func fillFromSlabs(_ magazine: UnsafeMutablePointer<Magazine>, count wanted: Int) {
        let rounds = Magazine.rounds(magazine)
        let perSlab = state.pointee.objectsPerSlab
        var count = magazine.pointee.count
        let target = count + wanted
        while count < target {
            let slab = state.pointee.partial.head ?? state.pointee.empty.head!
            let run = min(target - count, perSlab - Int(slab.pointee.inUse))
            var item = slab.pointee.freeList
            for offset in 0..<run {
                let object = item!
                let next = object.load(as: UnsafeMutableRawPointer?.self)
                if let next = next, indexIfObject(next, in: slab) == nil { corruptFreeList(slab, object, next) }
                rounds[count &+ offset] = object
                item = next
            }
            slab.pointee.freeList = item
            slab.pointee.inUse += UInt32(run)
            count += run
            if Int(slab.pointee.inUse) == perSlab { move(slab, to: .full) }
            else if slab.pointee.list == .empty { move(slab, to: .partial) }
        }
        magazine.pointee.count = count
    }

    /// The free slow path's CPU part, with the zone lock held and interrupts off: park
    /// `object` in this CPU's magazines, moving a full magazine to the depot and taking an
    /// empty one (from the depot, else from the magazine zone without growing it). Returns
    /// false when the object must go to its slab instead: the centre is short of its reserve,
    /// caching is off, or no empty magazine could be had.
    func parkInCurrentCache(_ object: UnsafeMutableRawPointer) -> Bool {
        guard mayCache, !state.pointee.centralShort, let cache = currentCache() else { return false }
        if let loaded = cache.pointee.loaded, loaded.pointee.count < Magazine.capacity {
            push(object, on: loaded, cache)
            return true
        }
        if let previous = cache.pointee.previous, previous.pointee.count == 0 {
            cache.pointee.previous = cache.pointee.loaded
            cache.pointee.loaded = previous
            push(object, on: previous, cache)
            return true
        }
        guard let empty = state.pointee.depotEmpty.pop() ?? takeMagazine() else {
            // Ordinary allocations grow the magazine zone until this is met (magazineGrowthDue).
            state.pointee.objectsWithoutMagazine &+= 1
            return false
        }
        empty.pointee.count = 0
        if let previous = cache.pointee.previous { parkInDepot(previous) }
        cache.pointee.previous = cache.pointee.loaded
        cache.pointee.loaded = empty
        push(object, on: empty, cache)
        return true
    }

    @inline(__always)
    private func push(_ object: UnsafeMutableRawPointer, on magazine: UnsafeMutablePointer<Magazine>, _ cache: UnsafeMutablePointer<CPUCache>) {
        Magazine.rounds(magazine)[magazine.pointee.count] = object
        magazine.pointee.count += 1
        cache.pointee.frees &+= 1
    }

    /// Puts a full magazine from a CPU into the depot (the zone lock is held): its objects
    /// become the centre's free objects. Each is validated on the way - a pointer that is not
    /// an object of this zone stops the kernel here, when it leaves the CPU that freed it.
    func parkInDepot(_ magazine: UnsafeMutablePointer<Magazine>) {
        let rounds = Magazine.rounds(magazine)
        for index in 0..<magazine.pointee.count {
            let object = rounds[index]
            _ = objectIndex(object, in: slabOf(object))
        }
        if magazine.pointee.count == Magazine.capacity {
            state.pointee.depotFull.push(magazine)
            state.pointee.freeObjects += magazine.pointee.count
            state.pointee.inUse -= magazine.pointee.count
        } else {
            // A partly filled magazine (a drain): its objects go to their slabs.
            flushToSlabs(magazine)
            state.pointee.depotEmpty.push(magazine)
        }
        updateCentralShort()
    }

    /// Returns every object of `magazine` to its slab, newest first, and leaves it empty (the
    /// zone lock is held). The objects move from in use to free for the centre.
    func flushToSlabs(_ magazine: UnsafeMutablePointer<Magazine>) {
        let rounds = Magazine.rounds(magazine)
        var count = magazine.pointee.count
        let moved = count
        while count > 0 {
            let slab = slabOf(rounds[count &- 1])
            var freeList = slab.pointee.freeList
            var run: UInt32 = 0
            while count > 0 {
                let object = rounds[count &- 1]
                // The slab's magic and zone were checked by slabOf for the run's first object;
                // a later one of another slab ends the run (and is checked as the next's first).
                if Int(bitPattern: object) & ~(state.pointee.slabBytes - 1) != Int(bitPattern: slab) { break }
                _ = objectIndex(object, in: slab)
                object.storeBytes(of: freeList, as: UnsafeMutableRawPointer?.self)
                freeList = object
                run &+= 1
                count &-= 1
            }
            slab.pointee.freeList = freeList
            slab.pointee.inUse -= run
            // A full slab becomes partial; one that becomes empty stays partial until reclaim.
            if slab.pointee.list == .full { move(slab, to: .partial) }
        }
        magazine.pointee.count = 0
        state.pointee.freeObjects += moved
        state.pointee.inUse -= moved
    }

    /// Sets `centralShort` from the central count (the zone lock is held): frees bypass the CPU
    /// layer while it is true.
    @inline(__always)
    func updateCentralShort() {
        state.pointee.centralShort = state.pointee.freeObjects < reserve
    }

    // MARK: - The magazine zone

    /// The magazine zone, or nil for the magazine zone itself and before it exists.
    var magazineZone: ZoneRef<Environment>? {
        guard let magazines = Environment.magazineZone, magazines != state else { return nil }
        return ZoneRef(magazines)
    }

    /// A free magazine object, taken without growing the magazine zone (the zone lock is held;
    /// the same lock covers every zone). Nil when it has none: the caller frees to the slab.
    func takeMagazine() -> UnsafeMutablePointer<Magazine>? {
        guard let magazines = magazineZone, magazines.state.pointee.freeObjects > 0 else { return nil }
        let object = magazines.takeObject()
        magazines.state.pointee.statistics.allocations &+= 1
        state.pointee.statistics.magazinesTaken &+= 1
        let magazine = object.bindMemory(to: Magazine.self, capacity: 1)
        magazine.pointee = Magazine(next: nil, count: 0)
        return magazine
    }

    /// Gives an empty magazine back to the magazine zone's slab (the zone lock is held).
    func returnMagazine(_ magazine: UnsafeMutablePointer<Magazine>) {
        guard let magazines = magazineZone else { return }
        let object = UnsafeMutableRawPointer(magazine)
        let slab = magazines.slabOf(object)
        magazines.returnToSlab(object, slab: slab, index: magazines.objectIndex(object, in: slab))
        magazines.state.pointee.statistics.frees &+= 1
        state.pointee.statistics.magazinesReturned &+= 1
    }

    /// Whether the magazine zone should grow now, asked by an allocation's slow path with the
    /// zone lock held: an ordinary request, and frees went to their slabs for want of a
    /// magazine (`objectsWithoutMagazine`), or this CPU has none at all and the magazine zone
    /// has none free. Each growth is counted against the want (a slab of magazines holds
    /// that many objects), so a zone grows magazines as far as its frees asked, and no
    /// further. The caller grows it after dropping the lock (`growMagazines`).
    func magazineGrowthDue(_ context: AllocationContext) -> Bool {
        guard context.requester == .ordinary, mayCache, let magazines = magazineZone else { return false }
        let want = state.pointee.objectsWithoutMagazine
        let spare = magazines.state.pointee.freeObjects
        let first = spare == 0 && currentCache().map { $0.pointee.loaded == nil } == true
        guard want > spare * Magazine.capacity || first else { return false }
        state.pointee.objectsWithoutMagazine = max(0, want - magazines.state.pointee.objectsPerSlab * Magazine.capacity)
        return true
    }

    /// Grows the magazine zone by a slab, as an ordinary request that never waits (no lock
    /// held), so that the next frees can take a magazine. Allocation never needs one, so this
    /// never recurses.
    func growMagazines() {
        guard let magazines = magazineZone else { return }
        FreePath.checkAllocation(.zone, magazines.name)
        magazines.addOneSlab(.ordinaryNoWait)
    }
}
