// DebugTable.swift - telling the gdb helpers where things are and what they look like.
//
// gdb does not understand Swift's types, so the helpers in qemu/gdb/kernel_helpers.py read raw
// memory; this table, at the C symbol kernel_debug_table, tells them what to read. Each entry
// is a name and a value: the address of a live global ("zones.count@": dereference it), a
// pointer set once at boot ("zones.table"), the byte offset of a field ("ZoneState.inUse",
// from MemoryLayout, so it follows the code), a size, or the value of a flag or the byte an
// enum case is stored as.
// It is written once at the end of boot; from then on the helpers need nothing from the
// kernel, so they work on a kernel stopped anywhere - in a panic, in a deadlock.

import ArchSupport

enum DebugTable {
    static let magic: UInt64 = 0x4742_444B           // "KDBG"
    static let version: UInt64 = 1
    /// Entries the table has room for (kernel/Arch/x86_64/StaticStorage.S sizes it from the same number).
    static var capacity: Int { Int(arch_kernel_debug_table_capacity()) }
    static var entries = 0

    static func publish(_ name: StaticString, _ value: UInt64) {
        kassert(entries < capacity, "debug table full")
        let table = arch_kernel_debug_table()!
        let slot = table + 2 + entries * 3
        slot[0] = UInt64(UInt(bitPattern: name.utf8Start))
        slot[1] = UInt64(name.utf8CodeUnitCount)
        slot[2] = value
        entries += 1
        table[1] = UInt64(entries)
    }

    static func publish<T: BinaryInteger>(_ name: StaticString, _ value: T) { publish(name, UInt64(value)) }

    /// The byte an enum case is stored as - its case index, which is not its raw value.
    static func stored<T>(_ value: T) -> UInt64 {
        kassert(MemoryLayout<T>.size == 1, "debug table: an enum stored in more than one byte")
        return withUnsafeBytes(of: value) { UInt64($0[0]) }
    }

    static func address<T>(_ global: inout T) -> UInt64 {
        withUnsafeMutablePointer(to: &global) { UInt64(UInt(bitPattern: $0)) }
    }

    static func pointer<T>(_ pointer: UnsafeMutablePointer<T>?) -> UInt64 {
        UInt64(UInt(bitPattern: pointer))
    }

    static func fill() {
        let table = arch_kernel_debug_table()!
        table[0] = magic | version << 32
        entries = 0
        fillZones()
        fillPhysicalMemory()
        fillMaps()
        fillThreads()
    }

    private static func fillZones() {
        publish("zones.table", pointer(Zones.table))
        publish("zones.count@", address(&Zones.count))
        publish("zones.reservesEnabled", Zones.reservesEnabled ? 1 : 0)
        publish("ZoneState.name", MemoryLayout<ZoneState>.offset(of: \.name)!)
        publish("ZoneState.objectSize", MemoryLayout<ZoneState>.offset(of: \.objectSize)!)
        publish("ZoneState.slabBytes", MemoryLayout<ZoneState>.offset(of: \.slabBytes)!)
        publish("ZoneState.objectsPerSlab", MemoryLayout<ZoneState>.offset(of: \.objectsPerSlab)!)
        publish("ZoneState.reserveTarget", MemoryLayout<ZoneState>.offset(of: \.reserveTarget)!)
        publish("ZoneState.freeObjects", MemoryLayout<ZoneState>.offset(of: \.freeObjects)!)
        publish("ZoneState.inUse", MemoryLayout<ZoneState>.offset(of: \.inUse)!)
        publish("ZoneState.statistics", MemoryLayout<ZoneState>.offset(of: \.statistics)!)
        publish("ZoneStatistics.staticSlabs", MemoryLayout<ZoneStatistics>.offset(of: \.staticSlabs)!)
        publish("ZoneStatistics.dynamicSlabs", MemoryLayout<ZoneStatistics>.offset(of: \.dynamicSlabs)!)
        publish("ZoneStatistics.allocations", MemoryLayout<ZoneStatistics>.offset(of: \.allocations)!)
        publish("ZoneStatistics.frees", MemoryLayout<ZoneStatistics>.offset(of: \.frees)!)
        publish("ZoneStatistics.lowestFree", MemoryLayout<ZoneStatistics>.offset(of: \.lowestFree)!)
        publish("ZoneStatistics.deepestReserveUse", MemoryLayout<ZoneStatistics>.offset(of: \.deepestReserveUse)!)
    }

    private static func fillPhysicalMemory() {
        publish("buddy", pointer(PhysicalMemory.buddy))
        publish("buddy.orders", BuddyAllocator.orderCount)
        publish("BuddyAllocator.freePages", MemoryLayout<BuddyAllocator>.offset(of: \.freePages)!)
        publish("BuddyAllocator.freeBlocks", MemoryLayout<BuddyAllocator>.offset(of: \.freeBlocks)!)
        publish("BuddyAllocator.segments", MemoryLayout<BuddyAllocator>.offset(of: \.segments)!)
        publish("BuddyAllocator.segmentCount", MemoryLayout<BuddyAllocator>.offset(of: \.segmentCount)!)
        publish("BuddyAllocator.memDescs", MemoryLayout<BuddyAllocator>.offset(of: \.memDescs)!)
        publish("BuddyDescriptor.firstPage", MemoryLayout<BuddyDescriptor>.offset(of: \.firstPage)!)
        publish("BuddyDescriptor.order", MemoryLayout<BuddyDescriptor>.offset(of: \.order)!)
        publish("BuddyDescriptor.flags", MemoryLayout<BuddyDescriptor>.offset(of: \.flags)!)
        publish("buddyflag.fromReserve", UInt64(BuddyFlags.fromReserve.rawValue))
        publish("buddyflag.descriptorPage", UInt64(BuddyFlags.descriptorPage.rawValue))
        publish("buddyflag.onCPUList", UInt64(BuddyFlags.onCPUList.rawValue))
        publish("BuddySegment.stride", MemoryLayout<BuddySegment>.stride)
        publish("BuddySegment.basePFN", MemoryLayout<BuddySegment>.offset(of: \.basePFN)!)
        publish("BuddySegment.pageCount", MemoryLayout<BuddySegment>.offset(of: \.pageCount)!)
        publish("BuddySegment.firstIndex", MemoryLayout<BuddySegment>.offset(of: \.firstIndex)!)
        publish("thresholds@", address(&PhysicalMemory.thresholds))
        // The CPU page lists (CPUPageLists.swift): 0 when there are none.
        publish("pagelists", UInt64(UInt(bitPattern: CPUPageLists.storage)))
        publish("pagelists.high", CPUPageLists.limits.high)
        publish("CPUPageList.stride", CPUPageList.stride)
        publish("CPUPageList.count", MemoryLayout<CPUPageList>.offset(of: \.count)!)
        publish("CPUPageList.allocations", MemoryLayout<CPUPageList>.offset(of: \.allocations)!)
        publish("CPUPageList.frees", MemoryLayout<CPUPageList>.offset(of: \.frees)!)
        publish("FreePageThresholds.freeMin", MemoryLayout<FreePageThresholds>.offset(of: \.freeMin)!)
        publish("FreePageThresholds.freeReserved", MemoryLayout<FreePageThresholds>.offset(of: \.freeReserved)!)
        publish("FreePageThresholds.pagingStart", MemoryLayout<FreePageThresholds>.offset(of: \.pagingStart)!)
        publish("FreePageThresholds.pagingTarget", MemoryLayout<FreePageThresholds>.offset(of: \.pagingTarget)!)
        publish("BuddyAllocator.descriptors", MemoryLayout<BuddyAllocator>.offset(of: \.descriptors)!)
        publish("BuddyDescriptorPool.freeCount", MemoryLayout<BuddyDescriptorPool>.offset(of: \.freeCount)!)
        publish("BuddyDescriptorPool.inUse", MemoryLayout<BuddyDescriptorPool>.offset(of: \.inUse)!)
        publish("BuddyDescriptorPool.staticPages", MemoryLayout<BuddyDescriptorPool>.offset(of: \.staticPages)!)
        publish("BuddyDescriptorPool.dynamicPages", MemoryLayout<BuddyDescriptorPool>.offset(of: \.dynamicPages)!)
        publish("BuddyDescriptorPool.pagesGivenBack", MemoryLayout<BuddyDescriptorPool>.offset(of: \.pagesGivenBack)!)
        publish("BuddyDescriptorPool.reserveTarget", MemoryLayout<BuddyDescriptorPool>.offset(of: \.reserveTarget)!)
        publish("BuddyDescriptorPool.pageList", MemoryLayout<BuddyDescriptorPool>.offset(of: \.pageList)!)
        publish("DescriptorPageHeader.nextPage", MemoryLayout<DescriptorPageHeader>.offset(of: \.nextPage)!)
        publish("DescriptorPageHeader.inUse", MemoryLayout<DescriptorPageHeader>.offset(of: \.inUse)!)
        publish("DescriptorPageHeader.isStatic", MemoryLayout<DescriptorPageHeader>.offset(of: \.isStatic)!)
        publish("buddy.descriptorsPerPage", BuddyDescriptorPool.descriptorsPerPage)
        publish("BuddyDescriptor.ownerWords", MemoryLayout<BuddyDescriptor>.offset(of: \.ownerWords)!)
        publish("PageablePage.buddy", MemoryLayout<PageablePage>.offset(of: \.buddy)!)
        publish("PageablePage.flags", MemoryLayout<PageablePage>.offset(of: \.flags)!)
        publish("PageablePage.queue", MemoryLayout<PageablePage>.offset(of: \.queue)!)
        publish("PageablePage.object", MemoryLayout<PageablePage>.offset(of: \.object)!)
        publish("PageablePage.offset", MemoryLayout<PageablePage>.offset(of: \.offset)!)
        publish("PageablePage.mappings", MemoryLayout<PageablePage>.offset(of: \.mappings)!)
        publish("PVList.head", MemoryLayout<PVList>.offset(of: \.head)!)
        publish("PVList.count", MemoryLayout<PVList>.offset(of: \.count)!)
        publish("PVEntry.next", MemoryLayout<PVEntry>.offset(of: \.next)!)
        publish("PVEntry.virtualAddress", MemoryLayout<PVEntry>.offset(of: \.virtualAddress)!)
        publish("pageuse.reserved", stored(PageUse.reserved))
        publish("pageuse.free", stored(PageUse.free))
        publish("pageuse.allocated", stored(PageUse.allocated))
        publish("pageuse.pageTable", stored(PageUse.pageTable))
        publish("pageuse.slab", stored(PageUse.slab))
        publish("pageuse.kmallocLarge", stored(PageUse.kmallocLarge))
        publish("pageuse.wired", stored(PageUse.wired))
        publish("pageuse.anonymous", stored(PageUse.anonymous))
        publish("pageflag.busy", PageFlags.busy.rawValue)
        publish("pageflag.dirty", PageFlags.dirty.rawValue)
        publish("pagequeue.none", stored(PageQueue.none))
        publish("pagequeue.active", stored(PageQueue.active))
        publish("pagequeue.inactive", stored(PageQueue.inactive))
        publish("directMapBase", KernelLayout.directMapBase.rawValue)
        publish("pmap.root@", address(&Pmap.root))
    }

    private static func fillMaps() {
        publish("map.kernel_map", pointer(KernelMaps.kernelMap))
        publish("map.kmem", pointer(KernelMaps.kmem))
        publish("map.pageable", pointer(KernelMaps.pageable))
        publish("map.pager", pointer(KernelMaps.pager))
        publish("MapControl.map", MemoryLayout<MapControl>.offset(of: \.map)!)
        publish("VMMapState.name", MemoryLayout<VMMapState>.offset(of: \.name)!)
        publish("VMMapState.start", MemoryLayout<VMMapState>.offset(of: \.start)!)
        publish("VMMapState.end", MemoryLayout<VMMapState>.offset(of: \.end)!)
        publish("VMMapState.first", MemoryLayout<VMMapState>.offset(of: \.first)!)
        publish("VMMapState.count", MemoryLayout<VMMapState>.offset(of: \.count)!)
        publish("MapEntry.start", MemoryLayout<MapEntry>.offset(of: \.start)!)
        publish("MapEntry.end", MemoryLayout<MapEntry>.offset(of: \.end)!)
        publish("MapEntry.next", MemoryLayout<MapEntry>.offset(of: \.next)!)
        publish("MapEntry.kind", MemoryLayout<MapEntry>.offset(of: \.kind)!)
        publish("MapEntry.protection", MemoryLayout<MapEntry>.offset(of: \.protection)!)
        publish("MapEntry.object", MemoryLayout<MapEntry>.offset(of: \.object)!)
        publish("mapkind.wired", stored(MapEntryKind.wired))
        publish("mapkind.submap", stored(MapEntryKind.submap))
        publish("mapkind.anonymous", stored(MapEntryKind.anonymous))
        publish("mapkind.reserved", stored(MapEntryKind.reserved))
    }

    private static func fillThreads() {
        publish("threads.all@", address(&Threads.all))
        // The boot CPU's running thread (the only CPU that runs threads in this stage).
        publish("scheduler.current@", address(&PerCPU.area(0).pointee.currentThread))
        // The per-CPU areas, for kcpus: where they are, how many are in use, their fields.
        publish("percpu.areas", UInt64(UInt(bitPattern: PerCPU.area(0))))
        publish("percpu.areaSize", UInt64(arch_per_cpu_area_size()))
        publish("smp.areasUsed@", address(&SMP.areasUsed))
        let offsets = PerCPU.debugOffsets()
        publish("PerCPU.index", offsets.index)
        publish("PerCPU.apicID", offsets.apicID)
        publish("PerCPU.state", offsets.state)
        publish("PerCPU.currentThread", offsets.currentThread)
        publish("PerCPU.idleThread", offsets.idleThread)
        publish("PerCPU.preemptionCount", offsets.preemptionCount)
        publish("thread.placeholder", UInt64(UInt(bitPattern: ThreadRef.unsetPlaceholder)))
        publish("cpustate.not started", CPUState.notStarted.rawValue)
        publish("cpustate.starting", CPUState.starting.rawValue)
        publish("cpustate.online", CPUState.online.rawValue)
        publish("cpustate.unresponsive", CPUState.unresponsive.rawValue)
        publish("cpustate.stopped", CPUState.stopped.rawValue)
        publish("Thread.id", MemoryLayout<Thread>.offset(of: \.id)!)
        publish("Thread.name", MemoryLayout<Thread>.offset(of: \.name)!)
        publish("Thread.state", MemoryLayout<Thread>.offset(of: \.state)!)
        publish("Thread.allNext", MemoryLayout<Thread>.offset(of: \.allNext)!)
        publish("Thread.wait.reason", MemoryLayout<Thread>.offset(of: \.wait.reason)!)
        publish("Thread.wait.channel", MemoryLayout<Thread>.offset(of: \.wait.channel)!)
        publish("Thread.wait.requester", MemoryLayout<Thread>.offset(of: \.wait.requester)!)
        publish("Thread.wait.pagesWanted", MemoryLayout<Thread>.offset(of: \.wait.pagesWanted)!)
        publish("Thread.wait.zone", MemoryLayout<Thread>.offset(of: \.wait.zone)!)
        publish("Thread.wait.sinceTick", MemoryLayout<Thread>.offset(of: \.wait.sinceTick)!)
        publish("threadstate.ready", stored(ThreadState.ready))
        publish("threadstate.running", stored(ThreadState.running))
        publish("threadstate.sleeping", stored(ThreadState.sleeping))
        publish("threadstate.dead", stored(ThreadState.dead))
        publish("requester.ordinary", stored(Requester.ordinary))
        publish("requester.system", stored(Requester.system))
        publish("requester.pageout", stored(Requester.pageout))
        publish("requester.none", stored(Optional<Requester>.none))
        // StaticString? is the StaticString, then one tag byte that is non-zero for nil.
        kassert(MemoryLayout<StaticString?>.size == MemoryLayout<StaticString>.size + 1,
                "debug table: StaticString? is not StaticString plus a tag byte")
        publish("StaticStringOptional.tag", MemoryLayout<StaticString>.size)
        publish("timer.ticks@", address(&Timer.ticks))
    }
}
