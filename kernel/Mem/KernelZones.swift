// KernelZones.swift - the kernel's zones: their environment, their table, the seed zones.
//
// `KernelZoneEnvironment` plugs the portable zone code (kernel/Mem/Portable/Zone*.swift) into the
// kernel: the zone lock is interrupts off plus the kernel lock (kernel/Kern/KernelLock.swift),
// a CPU's slot has no lock (its fast path is a restartable sequence: RestartableSequences.swift,
// and other CPUs ask its owner by IPI: ZoneCacheRequests.swift), slabs come from the buddy allocator
// through the direct map (or from kmem for kmem-backed zones), and a corrupted zone panics.
// Every page of a direct-map slab has use .slab and the slab header sits at the start of the
// block, so the page's buddy descriptor (its first page) leads kfree from any pointer to the
// zone; freeing the slab gives every page back untyped.
//
// The three zones the seeds are about are created here, before the page allocator exists:
//   pv_entry   - PV entries (kernel/Arch/x86_64/Pmap.swift); 2 static slabs; directMap
//   map_entry  - vm_map entries (kernel/VM/KernelMap.swift); 2 static slabs; directMap
//   swblock    - swap metadata (kernel/VM/SwapMetadata.swift); kmem-backed slabs
// and the zone of pageable pages' descriptors (page_desc, kernel/Mem/Portable/PageDescriptor.swift),
// which the pageout path never allocates from and so keeps no reserve.
// Their reserve sizes come from kernel/Mem/Portable/ReserveBounds.swift, where docs/reserves.md's
// analysis is written down once.

import ArchSupport

extension LogTag {
    static let zone = LogTag("zone")
}

enum KernelZoneEnvironment: ZoneEnvironment {
    /// Whether interrupts were on, and whether the kernel lock was taken (KernelLock.swift).
    typealias LockToken = (interruptsWereEnabled: Bool, entered: Bool)

    @inline(__always)
    static func lock() -> LockToken {
        let wasEnabled = CPU.interruptsEnabled
        CPU.disableInterrupts()
        PerCPU.this.pointee.zoneLockSections &+= 1
        return (wasEnabled, KernelLock.enter())
    }

    @inline(__always)
    static func unlock(_ token: LockToken) {
        KernelLock.leave(token.entered)
        if token.interruptsWereEnabled { CPU.enableInterrupts() }
    }

    /// The CPU layer's bracket: interrupts off on this CPU, which also keeps the thread here
    /// (it can only be switched away by an interrupt or by sleeping, and it does neither).
    @inline(__always)
    static func enterCPU() -> Bool {
        let wasEnabled = CPU.interruptsEnabled
        CPU.disableInterrupts()
        return wasEnabled
    }

    @inline(__always)
    static func leaveCPU(_ wasEnabled: Bool) {
        if wasEnabled { CPU.enableInterrupts() }
    }

    static var cpuIndex: Int {
        @inline(__always) get { PerCPU.runningIndex }
    }

    /// The fast paths, as restartable sequences with interrupts on (arch.h;
    /// kernel/Arch/x86_64/RestartableSequences.swift): no interrupt bracket to pay for.
    @inline(__always)
    static func popLoaded(_ caches: UnsafeMutablePointer<CPUCache>) -> UnsafeMutableRawPointer? {
        arch_zone_pop(caches)
    }

    @inline(__always)
    static func pushLoaded(_ caches: UnsafeMutablePointer<CPUCache>, _ object: UnsafeMutableRawPointer) -> Bool {
        arch_zone_push(caches, object) != 0
    }

    static var cpuCount: Int { SMP.areasUsed }

    /// FreePath.checkAllocation through this CPU's pointer to the running thread's state:
    /// loads and a compare on the zone fast path, where the portable check costs a call.
    @inline(__always)
    static func checkAllocation(_ zone: UnsafeMutablePointer<ZoneState>) {
        let depth = PerCPU.runningFreePath.pointee.depth
        if depth > 0 { reportAllocationInFreePath(zone) }
    }

    @inline(never)
    static func reportAllocationInFreePath(_ zone: UnsafeMutablePointer<ZoneState>) {
        FreePath.report(.zone, zone.pointee.name)
    }

    /// The zones' CPU slots have no lock: another CPU asks their owners (ZoneCacheRequests).
    static func askOtherCPUs(_ zone: UnsafeMutablePointer<ZoneState>, _ request: CPUCache.Request) {
        ZoneCacheRequests.ask(zone, request)
    }

    /// A CPU page list's lock (CPUPageLists.swift): the owner never waits holding it, and
    /// another CPU takes it only under the kernel lock, so a short spin. A waiter answers TLB
    /// shootdowns and zone cache requests meanwhile (the holder may be making one, and it
    /// waits for this CPU).
    @inline(__always)
    static func lockCache(_ word: UnsafeMutablePointer<UInt32>) {
        if arch_atomic_cmpxchg_acquire_u32(word, 0, 1) != 0 { return }
        spinForCache(word)
    }

    @inline(never)
    static func spinForCache(_ word: UnsafeMutablePointer<UInt32>) {
        while arch_atomic_cmpxchg_acquire_u32(word, 0, 1) == 0 {
            TLBShootdown.answerPending(PerCPU.this)
            ZoneCacheRequests.answerPending(PerCPU.this)
            CPU.pause()
        }
    }

    @inline(__always)
    static func unlockCache(_ word: UnsafeMutablePointer<UInt32>) {
        arch_atomic_store_release_u32(word, 0)
    }

    static var magazineZone: UnsafeMutablePointer<ZoneState>? { Zones.magazineState }

    static func allocateSlab(for zone: StaticString, bytes: Int, source: SlabSource, _ context: AllocationContext) -> UnsafeMutableRawPointer? {
        // Remember which zone this thread is growing: a wait inside says what it waits for.
        let thread = Scheduler.started ? Scheduler.current : nil
        let outer = thread?.pointee.growingZone
        thread?.pointee.growingZone = zone
        defer { thread?.pointee.growingZone = outer }
        if source == .kernelMemory {
            // The slab's map entry, PV entries and page tables are asked for under the same
            // context as its pages: a refill (system) never reaches below free_min.
            return Kmem.allocate(UInt64(bytes), alignment: UInt64(bytes), context).map { pointer(at: $0) }
        }
        let order = Zones.order(ofBytes: bytes)
        guard let block = PhysicalMemory.allocate(order: order, context) else { return nil }
        PhysicalMemory.setUse(block, .slab)
        return PhysicalMemory.pointer(to: block)
    }

    static func freeSlab(_ memory: UnsafeMutableRawPointer, bytes: Int, source: SlabSource) {
        if source == .kernelMemory {
            Kmem.free(VirtualAddress(memory), UInt64(bytes))
            return
        }
        let block = PhysicalMemory.index(of: PhysicalWindow.physicalAddress(of: memory))!
        let order = Zones.order(ofBytes: bytes)
        // clearUse untags every page, not only the first: a page still tagged .slab would send a
        // later kfree of whatever reuses it to this slab's header.
        PhysicalMemory.clearUse(block, .slab)
        PhysicalMemory.free(block, order: order)
    }

    static var canGrow: Bool { PhysicalMemory.buddy != nil }
    static var reservesEnabled: Bool { Zones.reservesEnabled }
    /// The running thread's id; 1 for the boot flow before threads exist. An interrupt
    /// handler is a context of its own (top bit and its CPU's index): one that grows a zone
    /// the thread it interrupted was growing is not that thread recursing.
    static var currentThread: UInt64 {
        if PerCPU.inInterruptHandler { return 1 << 63 | UInt64(PerCPU.runningIndex) }
        return Scheduler.started ? Scheduler.current.pointee.id : 1
    }

    static func growthDepth() -> UnsafeMutablePointer<Int> {
        if PerCPU.inInterruptHandler {
            func address(_ field: UnsafeMutablePointer<Int>) -> UnsafeMutablePointer<Int> { field }
            return address(&PerCPU.this.pointee.interruptZoneGrowthDepth)
        }
        if Scheduler.started { return Scheduler.current.pointer(to: \.zoneGrowthDepth)! }
        return Zones.bootGrowthDepth
    }

    static func log(_ message: LogMessage) { Log.info(.zone, message) }
    static func fail(_ message: LogMessage) -> Never { panic(message) }
    static func callChain() -> DrawChain { Backtrace.callChain() }
}

typealias KernelZone = ZoneRef<KernelZoneEnvironment>

extension ZoneRef {
    /// A zone reference not set yet: it points into the never-mapped page 0
    /// (kernel/Lib/UnsetPlaceholder.swift).
    static var unset: ZoneRef { ZoneRef(.unsetPlaceholder) }
}

enum Zones {
    static let capacity = 64
    static var table: UnsafeMutablePointer<UnsafeMutablePointer<ZoneState>>? = nil
    static var count = 0
    static var debug: ZoneDebug = []
    /// The zone reserves are kept and refilled (reserves= with zones).
    static var reservesEnabled: Bool { Reserves.protections.contains(.zones) }
    static let bootGrowthDepth = UnsafeMutablePointer<Int>.allocate(capacity: 1)
    static var staticPoolNext: UInt64 = 0

    /// Set by `bootstrap`. Until then they point into page 0, so a use before bootstrap
    /// faults loudly instead of corrupting memory.
    static var pvEntry = KernelZone.unset
    static var mapEntry = KernelZone.unset
    static var swapBlock = KernelZone.unset
    static var pageDescriptor = KernelZone.unset
    /// The zone the CPU layer's magazines come from (ZoneCPUCache.swift); it has no CPU layer
    /// itself. Nil until bootstrap creates it.
    static var magazineState: UnsafeMutablePointer<ZoneState>? = nil

    static func order(ofBytes bytes: Int) -> Int {
        var order = 0
        while (Int(pageSize) << order) < bytes { order += 1 }
        return order
    }

    /// Creates the seed zones from static slabs. Runs before the page allocator exists.
    static func bootstrap() {
        let slots = UnsafeMutablePointer<UnsafeMutablePointer<ZoneState>>.allocate(capacity: capacity)
        table = slots
        bootGrowthDepth.pointee = 0
        staticPoolNext = arch_static_slab_pool_start()
        kassert(PerCPU.capacity <= CPUCache.slots, "the kernel runs \(PerCPU.capacity) CPUs, the zones have cache slots for \(CPUCache.slots)")
        // First, so that every zone after it finds its magazines' zone. No reserve: a CPU
        // that cannot get a magazine frees to the slab; no static slab: nothing caches before
        // a zone has a dynamic slab (ZoneCPUCache.mayCache).
        let magazines = create("magazine", objectSize: Magazine.bytes, alignment: 64, slabPages: 1, reserve: 0, source: .directMap)
        magazines.state.pointee.caching = .never
        magazineState = magazines.state
        pvEntry = create("pv_entry", objectSize: MemoryLayout<PVEntry>.stride, slabPages: 1,
                         reserve: ReserveBounds.pvEntryReserve, staticSlabs: 2, source: .directMap)
        mapEntry = create("map_entry", objectSize: MemoryLayout<MapEntry>.stride, slabPages: 1,
                          reserve: ReserveBounds.mapEntryReserve, staticSlabs: 2, source: .directMap)
        swapBlock = create("swblock", objectSize: MemoryLayout<SwapBlock>.stride, slabPages: 4,
                           reserve: ReserveBounds.swapBlockReserve, staticSlabs: 0, source: .kernelMemory)
        // Pageable pages' descriptors (PageablePage): taken by the fault path with the page,
        // never by the pageout path (which only frees pageable pages), so no reserve and no
        // static slab - nothing needs one before the page allocator runs.
        pageDescriptor = create("page_desc", objectSize: MemoryLayout<PageablePage>.stride, slabPages: 1,
                                reserve: 0, staticSlabs: 0, source: .directMap)
        // From here on a draw deeper than its derived bound panics (ReserveDraw.swift).
        let bound = ReserveBounds.bound
        // The pageout top-up restores an entry zone's line with one slab (topUpEntryReserves).
        kassert(pvEntry.state.pointee.objectsPerSlab > bound.pvEntries && mapEntry.state.pointee.objectsPerSlab > bound.mapEntries,
                "an entry zone's slab holds no more than its reserve bound: the pageout top-up would need more than one page (ReserveBounds.pageoutEntryTopUpChain)")
        pvEntry.state.pointee.reserveBound = bound.pvEntries
        mapEntry.state.pointee.reserveBound = bound.mapEntries
        swapBlock.state.pointee.reserveBound = Reserves.protections.contains(.pages) ? bound.swapBlocks : ReserveBounds.swapBlocksWithoutPageTier
        // A swblock stays with its page on swap: pageout steps' draws add up (Zone.swift).
        swapBlock.state.pointee.reserveOrder = .growFirstForPageout
        Log.info(.zone, "zones bootstrapped from \(bytes: staticPoolNext - arch_static_slab_pool_start()) of static slabs; debug checks: \(message: debugDescription)")
    }

    static var debugDescription: LogMessage {
        var sink = LogMessage.Appender(message: LogMessage())
        if debug.isEmpty { sink.write("none") }
        if debug.contains(.poison) { sink.write("poison ") }
        if debug.contains(.redZone) { sink.write("redzone ") }
        if debug.contains(.doubleFree) { sink.write("doublefree ") }
        if debug.contains(.check) { sink.write("check") }
        return sink.message
    }

    /// Creates and registers a zone. Its state lives in kernel memory that is never freed.
    static func create(_ name: StaticString, objectSize: Int, alignment: Int = 8, slabPages: Int, reserve: Int,
                       keepEmpty: Int = 1, staticSlabs: Int = 0, source: SlabSource = .directMap,
                       debug extra: ZoneDebug = []) -> KernelZone {
        kassert(count < capacity, "too many zones")
        let state = UnsafeMutablePointer<ZoneState>.allocate(capacity: 1)
        state.initialize(to: ZoneState(name: name, objectSize: objectSize, alignment: alignment, slabPages: slabPages,
                                       reserveTarget: reserve, keepEmptySlabs: keepEmpty, source: source,
                                       debug: debug.union(extra), pageBytes: Int(pageSize)))
        table![count] = state
        count += 1
        let zone = KernelZone(state)
        for _ in 0..<staticSlabs {
            zone.addStaticSlab(takeStaticSlab(bytes: state.pointee.slabBytes, for: name))
        }
        // A zone with a reserve and no slab yet starts short of it (the line depends on
        // reserves= too, which ZoneState does not know).
        zone.updateCentralShort()
        return zone
    }

    /// Carves an aligned slab out of the static pool in the kernel image.
    static func takeStaticSlab(bytes: Int, for name: StaticString) -> UnsafeMutableRawPointer {
        let start = roundUp(staticPoolNext, to: UInt64(bytes))
        guard start + UInt64(bytes) <= arch_static_slab_pool_end() else {
            panic("zone \(name): the static slab pool (\(bytes: arch_static_slab_pool_end() - arch_static_slab_pool_start())) is exhausted")
        }
        staticPoolNext = start + UInt64(bytes)
        return pointer(at: VirtualAddress(start))
    }

    static func forEach(_ body: (KernelZone) -> Void) {
        for index in 0..<count { body(KernelZone(table![index])) }
    }

    /// Unregisters a zone that has nothing allocated and gives its slabs back (test zones).
    static func destroy(_ zone: KernelZone) {
        kassert(zone.inUse == 0, "destroying zone \(zone.name) with \(zone.inUse) objects in use")
        zone.state.pointee.setReserveTarget(0)
        zone.reclaim(keepEmpty: 0)
        kassert(zone.state.pointee.statistics.staticSlabs == 0, "destroying a zone with static slabs")
        guard let index = (0..<count).first(where: { table![$0] == zone.state }) else { return }
        for later in index..<(count - 1) { table![later] = table![later + 1] }
        count -= 1
        zone.state.pointee.caches.deallocate()
        zone.state.deallocate()
    }

    /// Tops up every zone's reserve (non-blocking); the pageout thread calls this to retry
    /// refills that failed while memory was short.
    static func refillAll() {
        forEach { $0.refill() }
    }

    /// Whether the pageout thread tops the entry zones up itself. Always, but for the
    /// reservebound case that shows it necessary by switching it off.
    static var pageoutTopsUpEntryZones = true

    /// Gives back, under the pageout context (so from the pages below free_min if need be),
    /// what earlier chains drew from the map_entry and pv_entry reserves: one direct-map slab
    /// per zone below its line, which restores the line (`bootstrap` checks that a slab holds
    /// more than the bound). The pageout thread calls this at the start of every step that
    /// needs a new swblock - the only steps that can grow the swblock zone - so each growth
    /// finds the previous one's map entry and PV entries given back, and the entry bounds stay
    /// one growth deep at any memory size (ReserveBounds.pageoutEntryTopUpChain,
    /// docs/reserves.md). A system refill could not do this: it takes no page below free_min,
    /// where the pageout thread may work for free_min / 170 growths. Never waits.
    static func topUpEntryReserves(_ context: AllocationContext) {
        guard reservesEnabled, pageoutTopsUpEntryZones else { return }
        kassert(context.requester == .pageout, "only the pageout path tops the entry reserves up from the pages below free_min")
        mapEntry.refill(context)
        pvEntry.refill(context)
    }

    /// Gives every zone's empty slabs back to the page allocator, each zone keeping its
    /// reserve and its few empty slabs (ZoneRef.reclaim, kernel/Mem/Portable/ZoneReclaim.swift);
    /// the pageout thread calls this when memory is short. Returns the pages released.
    /// Allocates nothing.
    ///
    /// Kmem-backed zones (swblock) go first: freeing one of their slabs is a kmem_free, which
    /// gives the slab's map entry and its pages' PV entries back to map_entry and pv_entry -
    /// often the last objects of a slab there. Reaped in table order, those slabs would
    /// empty just after their zone was reaped and wait for the next reap.
    ///
    /// The magazine zone goes last: every other zone's pass gives its magazines back to it.
    static func reclaimAll() -> UInt64 {
        reclaimAll(from: .kernelMemory) + reclaimAll(from: .directMap) + reclaim(KernelZone(magazineState!))
    }

    /// Gives back the depot magazines each zone did not use since the last call (its working
    /// set, ZoneCPUCache.trimDepotToWorkingSet); the pageout thread calls it on its passes.
    static func trimDepots() {
        forEach { $0.trimDepotToWorkingSet() }
    }

    private static func reclaim(_ zone: KernelZone) -> UInt64 {
        UInt64(zone.reclaim() * zone.state.pointee.slabBytes) / pageSize
    }

    /// Reclaims every zone whose slabs come from `source`. Zones are walked by index and
    /// `count` is read on every step: a test zone created or destroyed meanwhile is at worst
    /// missed or visited twice, never a dangling entry (Zones.destroy shifts the table down
    /// before it frees the state).
    private static func reclaimAll(from source: SlabSource) -> UInt64 {
        var pages: UInt64 = 0
        var index = 0
        while index < count {
            let zone = KernelZone(table![index])
            index += 1
            guard zone.state.pointee.source == source, zone.state != magazineState else { continue }
            pages += reclaim(zone)
        }
        return pages
    }

    /// Runs the consistency check on every zone.
    static func checkAll() {
        forEach { $0.check() }
    }

    /// The `zones` table: like Linux's /proc/slabinfo, one line per zone.
    static func printTable() {
        Log.info(.zone, "zones:  name           size slab/obj  in-use    free  cached  slabs s+d  reserve lowest deepest  refills failed      allocs       frees released waste")
        forEach { zone in
            let s = zone.state.pointee
            let t = zone.statistics
            let lowest = t.lowestFree == Int.max ? 0 : t.lowestFree
            Log.info(.zone, "zones:  \(zone.name)\(padding: zone.name, 13) \(s.objectSize, width: 5) \(s.slabBytes / 1024, width: 3)K/\(s.objectsPerSlab, width: 3) \(zone.inUse, width: 7) \(s.freeObjects, width: 7) \(zone.cachedObjects, width: 7) \(t.staticSlabs, width: 4)+\(t.dynamicSlabs, width: 4) \(s.reserveTarget, width: 8) \(lowest, width: 6) \(t.deepestReserveUse, width: 7) \(t.refills, width: 8) \(t.failedRefills, width: 6) \(t.allocations, width: 11) \(t.frees, width: 11) \(t.slabsReleased, width: 8) \(s.wastePerMille / 10, width: 3).\(s.wastePerMille % 10)%")
        }
        // The deepest draw on each reserve with a derived bound, and the chain that made it
        // (qemu/harness/zonecheck.py symbolises it).
        forEach { zone in
            let s = zone.state.pointee
            guard s.reserveBound != Int.max else { return }
            printDeepestDraw(zone.name, s.statistics.deepestReserveUse, bound: s.reserveBound, s.statistics.deepestReserveChain)
        }
        printDeepestDraw("pages", Int(PhysicalMemory.statistics.pageout.deepestReserveUse), bound: PhysicalMemory.pageoutDrawBound,
                         PhysicalMemory.deepestPageoutChain)
    }

    private static func printDeepestDraw(_ reserve: StaticString, _ depth: Int, bound: Int, _ chain: DrawChain) {
        var sink = LogMessage.Appender(message: LogMessage())
        for index in 0..<DrawChain.depth where chain[index] != 0 {
            sink.write(UInt8(ascii: " "))
            Format.hex(chain[index], digits: 16, into: &sink)
        }
        let message = sink.message
        Log.info(.zone, "deepest draw: \(reserve) \(depth) of bound \(bound); chain\(message: message)")
    }
}

extension LogMessage.Interpolation {
    /// Spaces that pad `text` to `width` columns.
    mutating func appendInterpolation(padding text: StaticString, _ width: Int) {
        appender.write(repeating: UInt8(ascii: " "), count: max(0, width - text.utf8CodeUnitCount))
    }
}
