// ZoneCheck.swift - the zone debug checks and the consistency check.
//
// Poison (0x6b) fills a freed object from its second word on - the first word links the free
// list - and must still be there when the object is handed out again, or something wrote to
// freed memory. Red zones (16 bytes of 0xbb after each object) must be intact when the object
// is freed, or something wrote past its end. The consistency check walks every slab of a zone
// and checks the lists, the counts, the free lists, and - where those debug checks are on -
// the bitmaps, poison and red zones. Any failure stops the kernel with the zone's name.

extension ZoneRef {
    func fillPoison(_ object: UnsafeMutableRawPointer) {
        let size = state.pointee.objectSize
        if size > 8 { (object + 8).initializeMemory(as: UInt8.self, repeating: ZoneDebug.poisonByte, count: size - 8) }
    }

    /// The offset of the first byte that is not poison, or nil.
    func damagedPoison(_ object: UnsafeMutableRawPointer) -> Int? {
        let bytes = object.assumingMemoryBound(to: UInt8.self)
        for offset in 8..<max(8, state.pointee.objectSize) where bytes[offset] != ZoneDebug.poisonByte { return offset }
        return nil
    }

    func checkPoison(_ object: UnsafeMutableRawPointer) {
        if let offset = damagedPoison(object) {
            let value = object.load(fromByteOffset: offset, as: UInt8.self)
            Environment.fail("zone \(name): write after free: object \(hex: address(object)) byte \(offset) is \(hex: value), expected poison \(hex: ZoneDebug.poisonByte)")
        }
    }

    func damagedRedZone(_ object: UnsafeMutableRawPointer) -> Int? {
        let zone = (object + state.pointee.objectSize).assumingMemoryBound(to: UInt8.self)
        for offset in 0..<ZoneDebug.redZoneBytes where zone[offset] != ZoneDebug.redZoneByte { return offset }
        return nil
    }

    func checkRedZone(_ object: UnsafeMutableRawPointer) {
        if let offset = damagedRedZone(object) {
            Environment.fail("zone \(name): write past the end of object \(hex: address(object)) (\(state.pointee.objectSize) bytes): red zone byte \(offset) is \(hex: (object + state.pointee.objectSize).load(fromByteOffset: offset, as: UInt8.self))")
        }
    }

    /// Checks one slab; stops the kernel on the first problem.
    func checkSlab(_ slab: UnsafeMutablePointer<SlabHeader>) {
        if let problem = validate(slab) {
            Environment.fail("zone \(name): slab \(hex: address(slab)) is inconsistent: \(message: problem)")
        }
    }

    /// What is wrong with a slab, or nil. The lock must be held.
    func validate(_ slab: UnsafeMutablePointer<SlabHeader>) -> LogMessage? {
        let perSlab = state.pointee.objectsPerSlab
        let debug = state.pointee.debug
        guard slab.pointee.magic == SlabHeader.magicValue, slab.pointee.zone == UnsafeMutableRawPointer(state) else {
            return "bad magic or zone pointer"
        }
        let inUse = Int(slab.pointee.inUse)
        // Full slabs and only they on the full list; the empty list holds only empty slabs;
        // the partial list may hold empty ones too (reclaim moves them).
        let listOK: Bool
        switch slab.pointee.list {
        case .full: listOK = inUse == perSlab
        case .partial: listOK = inUse < perSlab
        case .empty: listOK = inUse == 0
        }
        guard listOK else { return "on the \(slab.pointee.list.name) list with \(inUse) of \(perSlab) objects in use" }
        var free = 0
        var item = slab.pointee.freeList
        while let current = item {
            let offset = Int(bitPattern: current) - Int(bitPattern: slab) - state.pointee.firstObjectOffset
            guard offset >= 0, offset % state.pointee.stride == 0, offset / state.pointee.stride < perSlab else {
                return "free list points outside the slab at \(hex: address(current))"
            }
            if debug.contains(.doubleFree) && testBit(slab, offset / state.pointee.stride) {
                return "object \(hex: address(current)) is on the free list and marked allocated"
            }
            if debug.contains(.poison), let bad = damagedPoison(current) {
                return "free object \(hex: address(current)) lost its poison at byte \(bad): write after free"
            }
            free += 1
            guard free <= perSlab else { return "free list has a cycle" }
            item = current.load(as: UnsafeMutableRawPointer?.self)
        }
        guard free + inUse == perSlab else { return "\(free) free + \(inUse) in use != \(perSlab) objects" }
        if debug.contains(.doubleFree) {
            var marked = 0
            for index in 0..<perSlab where testBit(slab, index) { marked += 1 }
            guard marked == inUse else { return "bitmap marks \(marked) objects, \(inUse) in use" }
        }
        if debug.contains(.redZone) {
            for index in 0..<perSlab {
                if let bad = damagedRedZone(object(index, in: slab)) {
                    return "red zone of object \(hex: address(object(index, in: slab))) damaged at byte \(bad): write past the end"
                }
            }
        }
        return nil
    }

    /// Checks the whole zone: every slab, the list counts and the zone's totals. Returns what
    /// is wrong, or nil.
    public func validate() -> LogMessage? {
        let token = Environment.lock()
        defer { Environment.unlock(token) }
        var free = 0
        var used = 0
        var slabs = 0
        var statics = 0
        // Over the raw values, not allCases: that would allocate an array, inside the zone lock.
        for raw in SlabListKind.empty.rawValue...SlabListKind.full.rawValue {
            let kind = SlabListKind(rawValue: raw)!
            var count = 0
            var slab = state.pointee[list: kind].head
            var previous: UnsafeMutablePointer<SlabHeader>? = nil
            while let current = slab {
                if let problem = validate(current) { return "slab \(hex: address(current)): \(message: problem)" }
                guard current.pointee.prev == previous else { return "the \(kind.name) slab list has a broken back link" }
                used += Int(current.pointee.inUse)
                free += state.pointee.objectsPerSlab - Int(current.pointee.inUse)
                if current.pointee.isStatic { statics += 1 }
                count += 1
                previous = current
                slab = current.pointee.next
            }
            guard count == state.pointee[list: kind].count else { return "the \(kind.name) slab list holds \(count) slabs, its count says \(state.pointee[list: kind].count)" }
            slabs += count
        }
        // Objects in the CPUs' magazines and the depot's are in use for their slabs; the
        // depot's are free for the centre, the CPUs' are in use for it (ZoneCPUCache.swift).
        // The other CPUs hand their magazines over for the look and take them back after: they
        // could be popping them meanwhile otherwise.
        var cached = 0
        askOtherCPUs(.handOver)
        var magazineProblem: LogMessage? = nil
        for index in 0..<Environment.cpuCount where index < CPUCache.slots && magazineProblem == nil {
            let (loaded, previous) = heldMagazines(index)
            magazineProblem = validateMagazine(loaded, "loaded", cpu: index) ?? validateMagazine(previous, "previous", cpu: index)
            cached += (loaded?.pointee.count ?? 0) + (previous?.pointee.count ?? 0)
        }
        askOtherCPUs(.takeBack)
        if let problem = magazineProblem { return problem }
        var depot = 0
        var magazine = state.pointee.depotFull.head
        while let current = magazine {
            if let problem = validateMagazine(current, "depot", cpu: nil) { return problem }
            depot += current.pointee.count
            magazine = current.pointee.next
        }
        if state.pointee.caching != .enabled && cached + depot > 0 { return "caching is off, yet magazines hold \(cached + depot) objects" }
        guard free + depot == state.pointee.freeObjects else { return "\(free) free objects in slabs and \(depot) in the depot, zone counts \(state.pointee.freeObjects)" }
        guard used - depot == state.pointee.inUse else { return "\(used) objects in use in slabs less \(depot) in the depot, zone counts \(state.pointee.inUse) (\(cached) of them in CPU magazines)" }
        guard state.pointee.centralShort == (state.pointee.freeObjects < reserve) else {
            return "centralShort is \(state.pointee.centralShort) with \(state.pointee.freeObjects) free objects and a reserve of \(reserve)"
        }
        guard statics == state.pointee.statistics.staticSlabs, slabs - statics == state.pointee.statistics.dynamicSlabs else {
            return "\(statics) static and \(slabs - statics) dynamic slabs, statistics say \(state.pointee.statistics.staticSlabs) and \(state.pointee.statistics.dynamicSlabs)"
        }
        return nil
    }

    /// The whole-zone check, stopping the kernel on a problem.
    public func check() {
        if let problem = validate() {
            Environment.fail("zone \(name): consistency check failed: \(message: problem)")
        }
    }

    /// A magazine's count and objects (the zone lock is held): nil, or what is wrong.
    /// `cpu` is the CPU whose magazine it is, nil for a depot magazine (which must be full).
    func validateMagazine(_ magazine: UnsafeMutablePointer<Magazine>?, _ which: StaticString, cpu: Int?) -> LogMessage? {
        guard let magazine = magazine else { return nil }
        let count = magazine.pointee.count
        let owner = cpu ?? -1
        guard count >= 0 && count <= Magazine.capacity, cpu != nil || count == Magazine.capacity else {
            return "the \(which) magazine of cpu \(owner) (-1: the depot) holds \(count) objects"
        }
        for index in 0..<count {
            let object = Magazine.rounds(magazine)[index]
            let slab = UnsafeMutablePointer<SlabHeader>(bitPattern: Int(bitPattern: object) & ~(state.pointee.slabBytes - 1))!
            guard slab.pointee.magic == SlabHeader.magicValue, slab.pointee.zone == UnsafeMutableRawPointer(state),
                  indexIfObject(object, in: slab) != nil else { return "the \(which) magazine of cpu \(owner) (-1: the depot) holds \(hex: address(object)), not an object of this zone" }
        }
        return nil
    }
}
