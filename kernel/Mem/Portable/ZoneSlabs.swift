// ZoneSlabs.swift - a zone's slabs from the inside: finding an object's slab and index, carving
// a new slab into objects, taking an object off a slab's free list, the full/partial/empty
// lists and the double-free bitmap. Every function here runs with the zone's lock held
// (ZoneAllocator.swift takes it); none allocates or blocks.

extension ZoneRef {
    // MARK: - Slabs and objects (the lock is held)

    func address(_ pointer: UnsafeRawPointer) -> UInt64 { UInt64(UInt(bitPattern: pointer)) }

    /// The slab an object belongs to; stops the kernel if the pointer is not in this zone.
    @inline(__always)
    public func slabOf(_ object: UnsafeMutableRawPointer) -> UnsafeMutablePointer<SlabHeader> {
        let start = Int(bitPattern: object) & ~(state.pointee.slabBytes - 1)
        let slab = UnsafeMutablePointer<SlabHeader>(bitPattern: start)!
        if slab.pointee.magic != SlabHeader.magicValue || slab.pointee.zone != UnsafeMutableRawPointer(state) {
            notInThisZone(object)
        }
        return slab
    }

    @inline(never)
    func notInThisZone(_ object: UnsafeMutableRawPointer) -> Never {
        Environment.fail("zone \(name): free of \(hex: address(object)), which is not in one of its slabs")
    }

    /// The index of `object` in its slab; stops the kernel if it is not an object's start.
    @inline(__always)
    func objectIndex(_ object: UnsafeMutableRawPointer, in slab: UnsafeMutablePointer<SlabHeader>) -> Int {
        guard let index = indexIfObject(object, in: slab) else { notAnObjectStart(object) }
        return index
    }

    @inline(never)
    func notAnObjectStart(_ object: UnsafeMutableRawPointer) -> Never {
        Environment.fail("zone \(name): \(hex: address(object)) is not the start of an object")
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
        updateCentralShort()
    }

    /// Takes a free object from the slabs (the lock is held; the zone has a free object in a
    /// slab) and counts it in use.
    func takeObject() -> UnsafeMutableRawPointer {
        let item = popFromSlab()
        state.pointee.freeObjects -= 1
        state.pointee.inUse += 1
        return item
    }

    /// Pops the first free object of the first partial (else empty) slab, which counts it in
    /// use; the zone's own counts are the caller's business (the lock is held).
    @inline(__always)
    func popFromSlab() -> UnsafeMutableRawPointer {
        let slab = state.pointee.partial.head ?? state.pointee.empty.head!
        let item = slab.pointee.freeList!
        let next = item.load(as: UnsafeMutableRawPointer?.self)
        if let next = next, indexIfObject(next, in: slab) == nil { corruptFreeList(slab, item, next) }
        slab.pointee.freeList = next
        let debug = state.pointee.debug
        if debug.contains(.doubleFree) {
            let index = objectIndex(item, in: slab)
            if testBit(slab, index) { handsOutAllocated(item) }
            setBit(slab, index)
        }
        if debug.contains(.poison) { checkPoison(item) }
        slab.pointee.inUse += 1
        if slab.pointee.inUse == UInt32(state.pointee.objectsPerSlab) { move(slab, to: .full) }
        else if slab.pointee.list == .empty { move(slab, to: .partial) }
        if debug.contains(.check) { checkSlab(slab) }
        return item
    }

    @inline(never)
    func corruptFreeList(_ slab: UnsafeMutablePointer<SlabHeader>, _ item: UnsafeMutableRawPointer, _ next: UnsafeMutableRawPointer) -> Never {
        Environment.fail("zone \(name): free list of slab \(hex: address(slab)) is corrupt at object \(hex: address(item)) (next \(hex: address(next))): written after it was freed?")
    }

    @inline(never)
    func handsOutAllocated(_ item: UnsafeMutableRawPointer) -> Never {
        Environment.fail("zone \(name): free list hands out \(hex: address(item)), which is allocated")
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
