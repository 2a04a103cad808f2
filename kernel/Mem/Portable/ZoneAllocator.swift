// ZoneAllocator.swift - allocating from and freeing to a zone.
//
// Every operation works through a pointer to the zone's state and takes the environment's
// lock around each change, never across a call that can block or re-enter the allocator:
// growing a zone can sleep (an ordinary allocation waiting for pages) or allocate from other
// zones (a kmem-backed slab needs a map entry and PV entries), and another thread may use the
// same zone meanwhile.
//
// Allocation takes the caller's AllocationContext (AllocationContext.swift), in order:
//   1. take a free object if the caller may: anyone while more than reserveTarget are free,
//      only callers whose context may use zone reserves (system, pageout) below that - except
//      that in a zone whose reserveOrder is growFirstForPageout the pageout requester first
//      tries step 2 and draws the reserve only if growing failed;
//   2. otherwise grow by one slab and retry, asking for the slab's pages under the caller's
//      own context: an ordinary caller may wait unless it said noWait, a system caller never
//      takes a page below free_min, only the pageout path takes the last pages;
//   3. after taking, if fewer than reserveTarget objects are free, refill: system-context
//      slab allocations (never waiting, never below free_min) until the reserve is full
//      again or one fails (the pageout thread also refills the entry zones under its own
//      context: Zones.topUpEntryReserves). A failed refill leaves the zone as it was; the next allocation (or
//      `refill()` from the pageout thread) tries again. A zone is never refilled from inside
//      its own refill.
// Freeing puts the object back on its slab and never allocates anything; empty slabs go back
// to the page allocator only in a `reclaim` pass (ZoneReclaim.swift), which the pageout thread
// runs over every zone when memory is short.

public struct ZoneRef<Environment: ZoneEnvironment> {
    public let state: UnsafeMutablePointer<ZoneState>

    public init(_ state: UnsafeMutablePointer<ZoneState>) { self.state = state }

    public var name: StaticString { state.pointee.name }
    /// The centre's free objects: the slabs' and the depot's, not the CPUs' magazines'.
    public var freeObjects: Int { state.pointee.freeObjects }
    /// Objects the zone's callers hold (the centre's in-use count less the CPUs' magazines:
    /// a racy sum while other CPUs run).
    public var inUse: Int { state.pointee.inUse - cachedObjects }
    /// The zone's statistics with the CPUs' counts of fast-path operations added in.
    public var statistics: ZoneStatistics {
        var total = state.pointee.statistics
        for index in 0..<Environment.cpuCount where index < CPUCache.slots {
            total.allocations &+= state.pointee.caches[index].allocations
            total.frees &+= state.pointee.caches[index].frees
        }
        return total
    }

    var reserve: Int { Environment.reservesEnabled ? state.pointee.reserveTarget : 0 }

    // MARK: - Allocation

    /// An object, or nil when none can be had under `context`'s rules.
    ///
    /// The fast path - the one a warm allocate/free pair takes - pops this CPU's loaded
    /// magazine with no lock: no atomic instruction, no shared cache line written
    /// (ZoneCPUCache.swift, "Locks"; Environment.popLoaded, in the kernel a restartable
    /// sequence with interrupts left on). An object in a CPU's magazine is above
    /// the reserve line by construction - the centre fills magazines only with objects above
    /// it - so any context may take it and the context is not even looked at. Next the
    /// previous magazine (an exchange, still without a shared lock), then `allocateSlowly`,
    /// outlined so that none of it (nor its messages) costs the fast path a register or an
    /// instruction. Counters wrap (&+=): they are statistics, and an overflow trap on them
    /// would be a check that cannot fire.
    @inline(__always)
    public func allocate(_ context: AllocationContext) -> UnsafeMutableRawPointer? {
        Environment.checkAllocation(state)
        if let object = Environment.popLoaded(state.pointee.caches) { return object }
        if let object = allocateFromPrevious() { return object }
        return allocateSlowly(context)
    }

    /// The slow path of `allocate`: the rules of the top of this file, in full, on the
    /// centre's count (free objects in the slabs and the depot's full magazines).
    @inline(never)
    func allocateSlowly(_ context: AllocationContext) -> UnsafeMutableRawPointer? {
        let mayUseReserve = context.mayUseZoneReserves && Environment.reservesEnabled
        var token = Environment.lock()
        // Set once this allocation has tried to grow: a grow-first requester may now draw the
        // reserve (one attempt per allocation, successful or not - a slab smaller than the
        // reserve leaves the rest to the refill).
        var triedGrowing = false
        while true {
            let free = state.pointee.freeObjects
            // Above the line: through this CPU's magazine, filled from the centre.
            if free > reserve, let object = fillCurrentCacheAndTake() {
                if state.pointee.freeObjects < state.pointee.statistics.lowestFree { state.pointee.statistics.lowestFree = state.pointee.freeObjects }
                updateCentralShort()
                let growMagazinesNow = magazineGrowthDue(context)
                Environment.unlock(token)
                if growMagazinesNow { growMagazines() }
                return object
            }
            if free > reserve || (free > 0 && mayUseReserve && (triedGrowing || !growsBeforeDrawing(context))) {
                let object = takeCentralObject()
                noteAllocation(context)
                updateCentralShort()
                let wantsRefill = state.pointee.freeObjects < reserve && !state.pointee.refilling && Environment.canGrow
                let growMagazinesNow = magazineGrowthDue(context)
                Environment.unlock(token)
                if wantsRefill { refill() }
                if growMagazinesNow { growMagazines() }
                return object
            }
            Environment.unlock(token)
            // Growing first while the reserve could serve must not wait: the reserve is there
            // for exactly the case where the pages are not (a pageout requester that may wait
            // - reserves= without nowait - would otherwise sleep for a page only it can free).
            let growingContext = free > 0 && mayUseReserve ? context.withoutWaiting : context
            let memory = grow(growingContext)
            triedGrowing = true
            guard let memory = memory else {
                token = Environment.lock()
                if mayUseReserve && state.pointee.freeObjects > 0 { continue }
                state.pointee.statistics.failures += 1
                let slabs = state.pointee.statistics.staticSlabs
                Environment.unlock(token)
                if context.blocking == .wait && !Environment.canGrow { staticSlabsExhausted(slabs) }
                return nil
            }
            token = Environment.lock()
            addSlab(memory, isStatic: false)
        }
    }

    /// One free object of the centre (the lock is held; freeObjects > 0): from the slabs, or,
    /// when every free object is in the depot, from a full magazine, whose other objects go
    /// to their slabs (the depot holds only full magazines).
    func takeCentralObject() -> UnsafeMutableRawPointer {
        if state.pointee.freeObjects == depotRounds, let full = state.pointee.depotFull.pop() {
            state.pointee.freeObjects -= full.pointee.count
            state.pointee.inUse += full.pointee.count
            flushToSlabs(full)
            state.pointee.depotEmpty.push(full)
        }
        return takeObject()
    }

    @inline(never)
    private func staticSlabsExhausted(_ slabs: Int) -> Never {
        Environment.fail("zone \(name): its \(slabs) static slabs are exhausted and there is no page allocator yet")
    }

    /// Whether `context` tries to grow the zone before it draws the reserve (ReserveOrder).
    @inline(__always)
    private func growsBeforeDrawing(_ context: AllocationContext) -> Bool {
        context.requester == .pageout && state.pointee.reserveOrder == .growFirstForPageout && Environment.canGrow
    }

    @inline(__always)
    private func noteAllocation(_ context: AllocationContext) {
        let free = state.pointee.freeObjects
        state.pointee.statistics.allocations &+= 1
        if free < state.pointee.statistics.lowestFree { state.pointee.statistics.lowestFree = free }
        if state.pointee.statistics.dynamicSlabs == 0 {
            state.pointee.statistics.allocationsBeforeDynamicSlabs &+= 1
            if !Environment.canGrow { state.pointee.statistics.allocationsBeforePageAllocator &+= 1 }
        }
        if free < reserve {
            let depth = reserve - free
            if context.mayUseZoneReserves { state.pointee.statistics.reserveAllocations &+= 1 }
            noteReserveDraw(depth)
        }
    }

    /// Records a draw `depth` below the reserve line (and its chain, if the deepest yet) and
    /// panics when it is beyond the derived bound: the analysis in docs/reserves.md missed a
    /// chain. The zone lock is held; the panic's backtrace is the chain that drew.
    @inline(never)
    private func noteReserveDraw(_ depth: Int) {
        let bound = state.pointee.reserveBound
        guard ReserveDraws.note(depth, bound: bound, deepest: &state.pointee.statistics.deepestReserveUse,
                                chain: &state.pointee.statistics.deepestReserveChain, caller: { Environment.callChain() }) else {
            Environment.fail("zone \(name): reserve draw \(depth) is beyond its derived bound \(bound) (ReserveBounds.bound, docs/reserves.md): a chain the derivation misses - the backtrace below")
        }
    }

    /// Gets memory for one more slab; nil when none can be had under `context`'s rules.
    private func grow(_ context: AllocationContext) -> UnsafeMutableRawPointer? {
        guard Environment.canGrow else { return nil }
        let thread = Environment.currentThread
        var token = Environment.lock()
        if state.pointee.growingThread == thread {
            Environment.fail("zone \(name): recursive growth - growing the zone needed an object of the zone itself")
        }
        let outermost = state.pointee.growingThread == 0
        if outermost { state.pointee.growingThread = thread }
        state.pointee.statistics.grows += 1
        Environment.unlock(token)

        let depth = Environment.growthDepth()
        depth.pointee += 1
        if depth.pointee > ZoneGrowth.deepestChain { ZoneGrowth.deepestChain = depth.pointee }
        let memory = Environment.allocateSlab(for: name, bytes: state.pointee.slabBytes, source: state.pointee.source, context)
        depth.pointee -= 1

        token = Environment.lock()
        if outermost { state.pointee.growingThread = 0 }
        if memory == nil { state.pointee.statistics.growFailures += 1 }
        Environment.unlock(token)
        if let memory = memory, Int(bitPattern: memory) & (state.pointee.slabBytes - 1) != 0 {
            Environment.fail("zone \(name): slab memory \(hex: UInt64(UInt(bitPattern: memory))) is not aligned to \(state.pointee.slabBytes)")
        }
        return memory
    }

    /// Refills the reserve with slab allocations that never wait: system-context ones (never
    /// below free_min) unless the caller says otherwise, and whatever else the slab's memory
    /// needs (a kmem-backed slab's map entry, PV entries, page tables) is asked for under the
    /// same context. The pageout thread passes its own context to give back, from the pages
    /// below free_min, what its chains drew from a direct-map zone (Zones.topUpEntryReserves).
    public func refill(_ context: AllocationContext = .system) {
        let context = context.withoutWaiting
        var token = Environment.lock()
        guard !state.pointee.refilling, Environment.canGrow, state.pointee.freeObjects < reserve else {
            Environment.unlock(token)
            return
        }
        state.pointee.refilling = true
        state.pointee.statistics.refills += 1
        Environment.unlock(token)
        while true {
            token = Environment.lock()
            let done = state.pointee.freeObjects >= reserve
            Environment.unlock(token)
            if done { break }
            guard let memory = grow(context) else {
                token = Environment.lock()
                state.pointee.statistics.failedRefills += 1
                Environment.unlock(token)
                break
            }
            token = Environment.lock()
            addSlab(memory, isStatic: false)
            Environment.unlock(token)
        }
        token = Environment.lock()
        state.pointee.refilling = false
        Environment.unlock(token)
    }

    /// Grows the zone by one slab under `context`, whatever its free count; false when no
    /// memory could be had. (The magazine zone is grown this way: ZoneCPUCache.growMagazines.)
    @discardableResult
    func addOneSlab(_ context: AllocationContext) -> Bool {
        guard let memory = grow(context) else { return false }
        let token = Environment.lock()
        addSlab(memory, isStatic: false)
        Environment.unlock(token)
        return true
    }

    /// Hands a slab from the kernel image (or any memory that is never freed) to the zone.
    public func addStaticSlab(_ memory: UnsafeMutableRawPointer) {
        precondition(Int(bitPattern: memory) & (state.pointee.slabBytes - 1) == 0, "zone: static slab misaligned")
        let token = Environment.lock()
        addSlab(memory, isStatic: true)
        Environment.unlock(token)
    }

    // MARK: - Freeing

    /// Gives an object back. Never allocates anything.
    ///
    /// The fast path pushes it on this CPU's loaded magazine, unexamined: a handful of stores
    /// and no lock (Environment.pushLoaded), which calls nothing and so cannot
    /// allocate - the free-path bracket (FreePath.enter/leave) is on the slow path, where there
    /// is code that could. While the centre is short of its reserve (`centralShort`) every
    /// free takes the slow path, which gives the object to the centre. Freed pointers are
    /// validated (slabOf: a slab of this zone; objectIndex: the start of an object) when they
    /// leave the CPU - a full magazine going to the depot, a drain, a reclaim pass - and at
    /// once, on every free, in a zone with debug checks (zonedebug=, which gives a zone no CPU
    /// layer). So without debug checks a foreign or interior pointer is caught when its
    /// magazine leaves the CPU, which may be after it was handed out again; docs/debugging.md
    /// says so.
    @inline(__always)
    public func free(_ object: UnsafeMutableRawPointer) {
        if !state.pointee.centralShort && Environment.pushLoaded(state.pointee.caches, object) { return }
        if freeToPrevious(object) { return }
        freeSlowly(object)
    }

    /// The slow path of `free`: the loaded magazine is full or missing, the centre is short,
    /// or the zone has no CPU layer (debug checks). The object goes into this CPU's magazines
    /// (ZoneCPUCache.parkInCurrentCache: an exchange, or a full magazine to the depot and an
    /// empty one in its place) or, failing that, validated, straight to its slab.
    @inline(never)
    func freeSlowly(_ object: UnsafeMutableRawPointer) {
        FreePath.enter(.zoneFree)
        let token = Environment.lock()
        if !parkInCurrentCache(object) {
            let slab = slabOf(object)
            returnToSlab(object, slab: slab, index: objectIndex(object, in: slab))
            state.pointee.statistics.frees &+= 1
            updateCentralShort()
        }
        Environment.unlock(token)
        FreePath.leave()
    }

    /// Puts a freed object back on its slab (the lock is held).
    @inline(__always)
    func returnToSlab(_ object: UnsafeMutableRawPointer, slab: UnsafeMutablePointer<SlabHeader>, index: Int) {
        let debug = state.pointee.debug
        if debug.contains(.doubleFree) {
            if !testBit(slab, index) { doubleFree(object) }
            clearBit(slab, index)
        }
        if debug.contains(.redZone) { checkRedZone(object) }
        if debug.contains(.poison) { fillPoison(object) }
        object.storeBytes(of: slab.pointee.freeList, as: UnsafeMutableRawPointer?.self)
        slab.pointee.freeList = object
        slab.pointee.inUse -= 1
        // A full slab becomes partial; one that becomes empty stays partial until reclaim.
        if slab.pointee.list == .full { move(slab, to: .partial) }
        state.pointee.freeObjects += 1
        state.pointee.inUse -= 1
        if debug.contains(.check) { checkSlab(slab) }
    }

    @inline(never)
    func doubleFree(_ object: UnsafeMutableRawPointer) -> Never {
        Environment.fail("zone \(name): double free of object \(hex: address(object))")
    }
}
