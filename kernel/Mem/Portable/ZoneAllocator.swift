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
//      again or one fails. A failed refill leaves the zone as it was; the next allocation (or
//      `refill()` from the pageout thread) tries again. A zone is never refilled from inside
//      its own refill.
// Freeing puts the object back on its slab and never allocates anything; empty slabs go back
// to the page allocator only in a `reclaim` pass (ZoneReclaim.swift), which the pageout thread
// runs over every zone when memory is short.

public struct ZoneRef<Environment: ZoneEnvironment> {
    public let state: UnsafeMutablePointer<ZoneState>

    public init(_ state: UnsafeMutablePointer<ZoneState>) { self.state = state }

    public var name: StaticString { state.pointee.name }
    public var freeObjects: Int { state.pointee.freeObjects }
    public var inUse: Int { state.pointee.inUse }
    public var statistics: ZoneStatistics { state.pointee.statistics }

    var reserve: Int { Environment.reservesEnabled ? state.pointee.reserveTarget : 0 }

    // MARK: - Allocation

    public func allocate(_ context: AllocationContext) -> UnsafeMutableRawPointer? {
        FreePath.checkAllocation(.zone, name)
        let mayUseReserve = context.mayUseZoneReserves && Environment.reservesEnabled
        var token = Environment.lock()
        // Set once this allocation has tried to grow: a grow-first requester may now draw the
        // reserve (one attempt per allocation, successful or not - a slab smaller than the
        // reserve leaves the rest to the refill).
        var triedGrowing = false
        while true {
            let free = state.pointee.freeObjects
            if free > reserve || (free > 0 && mayUseReserve && (triedGrowing || !growsBeforeDrawing(context))) {
                let object: UnsafeMutableRawPointer
                if state.pointee.magazineCount > 0 {
                    state.pointee.magazineCount -= 1
                    object = state.pointee.magazine![state.pointee.magazineCount]
                    state.pointee.freeObjects -= 1
                    state.pointee.inUse += 1
                } else {
                    object = takeObject()
                }
                noteAllocation(context)
                let wantsRefill = state.pointee.freeObjects < reserve && !state.pointee.refilling && Environment.canGrow
                Environment.unlock(token)
                if wantsRefill { refill() }
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
                if context.blocking == .wait && !Environment.canGrow {
                    Environment.fail("zone \(name): its \(slabs) static slabs are exhausted and there is no page allocator yet")
                }
                return nil
            }
            token = Environment.lock()
            addSlab(memory, isStatic: false)
        }
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

    /// Refills the reserve with system-context slab allocations: never waiting, never below
    /// free_min, and whatever else the slab's memory needs (a kmem-backed slab's map entry, PV
    /// entries, page tables) is asked for under the same context.
    public func refill() {
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
            guard let memory = grow(.system) else {
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

    /// Hands a slab from the kernel image (or any memory that is never freed) to the zone.
    public func addStaticSlab(_ memory: UnsafeMutableRawPointer) {
        precondition(Int(bitPattern: memory) & (state.pointee.slabBytes - 1) == 0, "zone: static slab misaligned")
        let token = Environment.lock()
        addSlab(memory, isStatic: true)
        Environment.unlock(token)
    }

    // MARK: - Freeing

    public func free(_ object: UnsafeMutableRawPointer) {
        FreePath.enter(.zoneFree)
        let token = Environment.lock()
        let slab = slabOf(object)
        let index = objectIndex(object, in: slab)
        if let magazine = state.pointee.magazine, state.pointee.magazineCount < ZoneState.magazineCapacity {
            magazine[state.pointee.magazineCount] = object
            state.pointee.magazineCount += 1
            state.pointee.freeObjects += 1
            state.pointee.inUse -= 1
            state.pointee.statistics.frees &+= 1
            Environment.unlock(token)
            FreePath.leave()
            return
        }
        returnToSlab(object, slab: slab, index: index)
        state.pointee.statistics.frees &+= 1
        Environment.unlock(token)
        FreePath.leave()
    }

    /// Puts a freed object back on its slab (the lock is held).
    @inline(__always)
    func returnToSlab(_ object: UnsafeMutableRawPointer, slab: UnsafeMutablePointer<SlabHeader>, index: Int) {
        let debug = state.pointee.debug
        if debug.contains(.doubleFree) {
            if !testBit(slab, index) {
                Environment.fail("zone \(name): double free of object \(hex: address(object))")
            }
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

    // MARK: - Slabs and objects (the lock is held)

    func address(_ pointer: UnsafeRawPointer) -> UInt64 { UInt64(UInt(bitPattern: pointer)) }

    /// The slab an object belongs to; stops the kernel if the pointer is not in this zone.
    @inline(__always)
    public func slabOf(_ object: UnsafeMutableRawPointer) -> UnsafeMutablePointer<SlabHeader> {
        let start = Int(bitPattern: object) & ~(state.pointee.slabBytes - 1)
        let slab = UnsafeMutablePointer<SlabHeader>(bitPattern: start)!
        if slab.pointee.magic != SlabHeader.magicValue || slab.pointee.zone != UnsafeMutableRawPointer(state) {
            Environment.fail("zone \(name): free of \(hex: address(object)), which is not in one of its slabs")
        }
        return slab
    }

    /// The index of `object` in its slab; stops the kernel if it is not an object's start.
    @inline(__always)
    func objectIndex(_ object: UnsafeMutableRawPointer, in slab: UnsafeMutablePointer<SlabHeader>) -> Int {
        guard let index = indexIfObject(object, in: slab) else {
            Environment.fail("zone \(name): \(hex: address(object)) is not the start of an object")
        }
        return index
    }

    /// The index of `pointer` in its slab, or nil when it is not the start of an object.
    @inline(__always)
    func indexIfObject(_ pointer: UnsafeRawPointer, in slab: UnsafeMutablePointer<SlabHeader>) -> Int? {
        let offset = UInt64(bitPattern: Int64(Int(bitPattern: pointer) - Int(bitPattern: slab) - state.pointee.firstObjectOffset))
        let stride = UInt64(state.pointee.stride)
        guard offset < UInt64(state.pointee.objectsPerSlab) &* stride else { return nil }
        let index = (offset &* state.pointee.strideReciprocal) >> 40
        guard index &* stride == offset else { return nil }
        return Int(index)
    }

    func object(_ index: Int, in slab: UnsafeMutablePointer<SlabHeader>) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(slab) + state.pointee.firstObjectOffset + index * state.pointee.stride
    }

    func addSlab(_ memory: UnsafeMutableRawPointer, isStatic: Bool) {
        let slab = memory.bindMemory(to: SlabHeader.self, capacity: 1)
        slab.pointee = SlabHeader(zone: UnsafeMutableRawPointer(state), next: nil, prev: nil, freeList: nil,
                                  inUse: 0, magic: SlabHeader.magicValue, list: .empty, isStatic: isStatic)
        let bitmap = bitmapOf(slab)
        for word in 0..<state.pointee.bitmapWords { bitmap[word] = 0 }
        let debug = state.pointee.debug
        var next: UnsafeMutableRawPointer? = nil
        for index in stride(from: state.pointee.objectsPerSlab - 1, through: 0, by: -1) {
            let item = object(index, in: slab)
            if debug.contains(.poison) { fillPoison(item) }
            if debug.contains(.redZone) {
                (item + state.pointee.objectSize).initializeMemory(as: UInt8.self, repeating: ZoneDebug.redZoneByte, count: ZoneDebug.redZoneBytes)
            }
            item.storeBytes(of: next, as: UnsafeMutableRawPointer?.self)
            next = item
        }
        slab.pointee.freeList = next
        push(slab, on: .empty)
        state.pointee.freeObjects += state.pointee.objectsPerSlab
        if isStatic {
            state.pointee.statistics.staticSlabs += 1
        } else {
            state.pointee.statistics.dynamicSlabs += 1
            if state.pointee.statistics.dynamicSlabs == 1 && state.pointee.statistics.slabsReleased == 0 {
                let served = state.pointee.statistics.allocationsBeforeDynamicSlabs
                if state.pointee.statistics.staticSlabs > 0 {
                    Environment.log("zone \(name): \(state.pointee.statistics.staticSlabs) static slabs in use (\(served) allocations so far); taking dynamic slabs from now on")
                }
            }
        }
    }

    @inline(__always)
    func takeObject() -> UnsafeMutableRawPointer {
        let slab = state.pointee.partial.head ?? state.pointee.empty.head!
        let item = slab.pointee.freeList!
        let next = item.load(as: UnsafeMutableRawPointer?.self)
        if let next = next, indexIfObject(next, in: slab) == nil {
            Environment.fail("zone \(name): free list of slab \(hex: address(slab)) is corrupt at object \(hex: address(item)) (next \(hex: address(next))): written after it was freed?")
        }
        slab.pointee.freeList = next
        let debug = state.pointee.debug
        if debug.contains(.doubleFree) {
            let index = objectIndex(item, in: slab)
            if testBit(slab, index) {
                Environment.fail("zone \(name): free list hands out \(hex: address(item)), which is allocated")
            }
            setBit(slab, index)
        }
        if debug.contains(.poison) { checkPoison(item) }
        slab.pointee.inUse += 1
        if slab.pointee.inUse == UInt32(state.pointee.objectsPerSlab) { move(slab, to: .full) }
        else if slab.pointee.list == .empty { move(slab, to: .partial) }
        state.pointee.freeObjects -= 1
        state.pointee.inUse += 1
        if debug.contains(.check) { checkSlab(slab) }
        return item
    }

    // MARK: - Lists

    @inline(__always)
    func push(_ slab: UnsafeMutablePointer<SlabHeader>, on kind: SlabListKind) {
        slab.pointee.list = kind
        slab.pointee.prev = nil
        slab.pointee.next = state.pointee[list: kind].head
        slab.pointee.next?.pointee.prev = slab
        state.pointee[list: kind].head = slab
        state.pointee[list: kind].count += 1
    }

    @inline(__always)
    func unlink(_ slab: UnsafeMutablePointer<SlabHeader>, from kind: SlabListKind) {
        if let prev = slab.pointee.prev { prev.pointee.next = slab.pointee.next } else { state.pointee[list: kind].head = slab.pointee.next }
        slab.pointee.next?.pointee.prev = slab.pointee.prev
        state.pointee[list: kind].count -= 1
        slab.pointee.next = nil
        slab.pointee.prev = nil
    }

    @inline(__always)
    func move(_ slab: UnsafeMutablePointer<SlabHeader>, to kind: SlabListKind) {
        if slab.pointee.list == kind { return }
        unlink(slab, from: slab.pointee.list)
        push(slab, on: kind)
    }

    // MARK: - Bitmap

    @inline(__always)
    func bitmapOf(_ slab: UnsafeMutablePointer<SlabHeader>) -> UnsafeMutablePointer<UInt64> {
        (UnsafeMutableRawPointer(slab) + MemoryLayout<SlabHeader>.stride).assumingMemoryBound(to: UInt64.self)
    }

    @inline(__always)
    func testBit(_ slab: UnsafeMutablePointer<SlabHeader>, _ index: Int) -> Bool {
        bitmapOf(slab)[index / 64] & (UInt64(1) << UInt64(index % 64)) != 0
    }

    @inline(__always)
    func setBit(_ slab: UnsafeMutablePointer<SlabHeader>, _ index: Int) {
        bitmapOf(slab)[index / 64] |= UInt64(1) << UInt64(index % 64)
    }

    @inline(__always)
    func clearBit(_ slab: UnsafeMutablePointer<SlabHeader>, _ index: Int) {
        bitmapOf(slab)[index / 64] &= ~(UInt64(1) << UInt64(index % 64))
    }
}
