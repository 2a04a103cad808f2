// Zone.swift - a slab zone's state, its configuration, and the environment it runs in.
//
// A zone hands out objects of one size (a PV entry, a map entry, a swblock, a kmalloc size
// class). Its memory comes in slabs: power-of-two runs of pages, aligned to their size, each
// beginning with a SlabHeader (and, with double-free detection on, a bitmap of allocated
// objects) followed by the objects. Because a slab is aligned to its size, an object's slab
// is found by masking its address. Slabs sit on one of three lists: full (no free object),
// partial (some), empty (none in use, found so by a reclaim pass or never used). A slab whose
// last object is freed stays on the partial list - an allocate/free pair must not move a slab
// twice - and the reclaim pass moves it to the empty list when it looks.
//
// In front of the slabs sits the CPU layer (ZoneCPUCache.swift): per CPU, two magazines of up
// to 32 free objects, and a depot of full and empty magazines, so that the common
// allocate/free pair touches neither the slab lists nor any shared lock (the per-processor
// layer braunr describes in ../shared/seeds/gnumach-slab-allocator-irc.txt).
//
// The two problems of ../shared/seeds/dragonfly-zalloc-project-1.txt are solved here:
//   (A) a zone can be given static slabs from the kernel image before any page allocator
//       exists (`addStaticSlab`); it switches to dynamic slabs when those run out, and logs it;
//   (B) a zone keeps `reserveTarget` free objects that only callers whose AllocationContext
//       may use zone reserves (system, pageout) may take, and refills them ahead of demand
//       with non-blocking allocations (ZoneAllocator.swift).
//
// The code is portable: everything machine-specific - locking, where slab memory comes from,
// logging, stopping on corruption - is a static function of a ZoneEnvironment, which the
// kernel (kernel/Mem/KernelZones.swift) and the host tests (Tests/PortableTests) each provide.

/// Where a zone's slabs come from.
public enum SlabSource {
    /// Physically contiguous pages from the buddy allocator, used through the direct map.
    /// Growing needs no map entry, no PV entry and no page-table page.
    case directMap
    /// Wired pages mapped in the kmem submap (kmem_alloc): virtually contiguous, but growing
    /// needs a map entry, PV entries and maybe page-table pages.
    case kernelMemory
}

/// What a zone does for the pageout requester when taking an object would draw its reserve.
public enum ReserveOrder {
    /// Draw the reserve; grow only when it is empty. Right for objects a pageout step gives
    /// back before it ends (the pager window's map entry and PV entry): their draws never add
    /// up across steps.
    case drawFirst
    /// Try to grow first (the pageout context never waits), and draw the reserve only when
    /// growing fails. Right for objects a step keeps after it ends - a swblock stays with its
    /// page on swap - so draws add up across steps: drawing first would spend the whole reserve
    /// while the pages the steps free sit unused (Dillon's situation, docs/reserves.md), and the
    /// depth would be the reserve's size, not ReserveBounds.stepsWithoutPages.
    case growFirstForPageout
}

/// Debug checks, chosen with zonedebug= on the kernel command line.
public struct ZoneDebug: OptionSet {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Fill freed objects with 0x6b and check the fill when they are handed out again.
    public static let poison = ZoneDebug(rawValue: 1 << 0)
    /// Keep 16 bytes of 0xbb after every object and check them on free.
    public static let redZone = ZoneDebug(rawValue: 1 << 1)
    /// Keep a bitmap of allocated objects per slab; freeing a free object stops the kernel.
    public static let doubleFree = ZoneDebug(rawValue: 1 << 2)
    /// Check the touched slab on every operation and the whole zone at the end of each suite.
    public static let check = ZoneDebug(rawValue: 1 << 3)
    public static let all: ZoneDebug = [.poison, .redZone, .doubleFree, .check]

    public static let poisonByte: UInt8 = 0x6b
    public static let redZoneByte: UInt8 = 0xbb
    public static let redZoneBytes = 16

    /// Parses "poison,redzone,doublefree,check", "all" or "none". Nil when a word is unknown.
    public static func parse(_ text: ByteString) -> ZoneDebug? {
        var result: ZoneDebug = []
        var valid = true
        text.forEachPiece(separatedBy: UInt8(ascii: ",")) { word in
            if word.equals("poison") { result.insert(.poison) }
            else if word.equals("redzone") { result.insert(.redZone) }
            else if word.equals("doublefree") { result.insert(.doubleFree) }
            else if word.equals("check") { result.insert(.check) }
            else if word.equals("all") { result.formUnion(.all) }
            else if word.equals("none") { }
            else { valid = false }
        }
        return valid ? result : nil
    }
}

/// Everything the kernel's `zones` table prints about a zone.
public struct ZoneStatistics {
    public var allocations: UInt64 = 0
    public var frees: UInt64 = 0
    /// Allocations that returned nil.
    public var failures: UInt64 = 0
    /// Allocations by reserve-using contexts that left fewer than reserveTarget objects free.
    public var reserveAllocations: UInt64 = 0
    public var grows: UInt64 = 0
    public var growFailures: UInt64 = 0
    public var refills: UInt64 = 0
    public var failedRefills: UInt64 = 0
    public var staticSlabs = 0
    public var dynamicSlabs = 0
    /// Empty slabs given back to the page allocator by reclaim passes (ZoneReclaim.swift).
    public var slabsReleased: UInt64 = 0
    /// The fewest free objects the zone ever had right after an allocation.
    public var lowestFree = Int.max
    /// The most objects ever taken below reserveTarget, and the call chain that took them.
    public var deepestReserveUse = 0
    public var deepestReserveChain = DrawChain()
    /// Allocations served before the first dynamic slab (from static slabs).
    public var allocationsBeforeDynamicSlabs: UInt64 = 0
    /// Allocations served while the zone could not grow (before the page allocator existed).
    public var allocationsBeforePageAllocator: UInt64 = 0
    /// The CPU layer: full depot magazines swapped into a CPU, and magazine objects taken
    /// from and given back to the magazine zone.
    public var depotExchanges: UInt64 = 0
    public var magazinesTaken: UInt64 = 0
    public var magazinesReturned: UInt64 = 0

    public init() {}
}

/// Which of its zone's three lists a slab is on (see the top of this file).
public enum SlabListKind: UInt8 {
    /// No object in use: found so by a reclaim pass, or never used.
    case empty
    /// Some objects in use, some free - or none in use since the last reclaim pass (a slab
    /// whose last object is freed stays here, so an allocate/free pair moves no slab twice).
    case partial
    /// Every object in use.
    case full

    public var name: StaticString {
        switch self {
        case .empty: return "empty"
        case .partial: return "partial"
        case .full: return "full"
        }
    }
}

public struct SlabList {
    public var head: UnsafeMutablePointer<SlabHeader>? = nil
    public var count = 0
    public init() {}
}

/// The start of every slab.
public struct SlabHeader {
    public static let magicValue: UInt32 = 0x51AB_51AB

    public var zone: UnsafeMutableRawPointer?
    public var next: UnsafeMutablePointer<SlabHeader>?
    public var prev: UnsafeMutablePointer<SlabHeader>?
    /// Free objects of this slab, linked through their first word.
    public var freeList: UnsafeMutableRawPointer?
    public var inUse: UInt32
    public var magic: UInt32
    /// The list the slab is on.
    public var list: SlabListKind
    public var isStatic: Bool
}

public struct ZoneState {
    public let name: StaticString
    public let objectSize: Int
    public let alignment: Int
    /// Distance between objects: the object, its red zone if any, rounded to the alignment.
    public let stride: Int
    public let slabBytes: Int
    public let objectsPerSlab: Int
    public let bitmapWords: Int
    public let firstObjectOffset: Int
    /// 2^40 / stride, rounded up: an object's index is (offset * this) >> 40, exactly, for any
    /// offset inside a slab (slabs are at most 1 MiB) - a multiply instead of a divide on the
    /// fast path.
    public let strideReciprocal: UInt64
    public let source: SlabSource
    public let debug: ZoneDebug
    /// Free objects that only reserve-using contexts (system, pageout) may take. Set through
    /// `setReserveTarget`, which keeps the fast path's floor above it.
    public private(set) var reserveTarget: Int
    /// The deepest draw below reserveTarget the derivation allows (ReserveBounds.bound); a
    /// deeper one panics at once (ReserveDraw.swift). Int.max: not checked (zones without a
    /// derived bound, and the host's test zones).
    public var reserveBound = Int.max
    /// Whether the pageout requester grows the zone before it draws the reserve.
    public var reserveOrder = ReserveOrder.drawFirst
    /// Empty slabs a reclaim pass keeps.
    public var keepEmptySlabs: Int

    public var empty = SlabList()
    public var partial = SlabList()
    public var full = SlabList()
    public var freeObjects = 0
    public var inUse = 0
    public var refilling = false
    /// The thread growing this zone right now (0: none), to catch a zone growing into itself.
    public var growingThread: UInt64 = 0
    public var statistics = ZoneStatistics()
    /// The CPU layer (ZoneCPUCache.swift): one cache-line slot per CPU, each with a loaded
    /// and a previous magazine, and the depot's full and empty magazines. Objects in the
    /// CPUs' magazines are not counted in freeObjects: they are in use for the centre.
    public let caches: UnsafeMutablePointer<CPUCache>
    public var caching: ZoneCaching
    public var depotFull = MagazineList()
    public var depotEmpty = MagazineList()
    /// freeObjects < reserveTarget (reserves on): frees skip the CPU layer and refill the
    /// centre. Written under the zone lock, read by the free fast path without it.
    public var centralShort = false
    /// Frees that found no empty magazine and went to their slabs since the magazine zone
    /// last grew for this zone: ordinary allocations grow it (the free path itself never
    /// allocates; ZoneCPUCache.magazineGrowthDue).
    public var objectsWithoutMagazine = 0

    public init(name: StaticString, objectSize: Int, alignment: Int, slabPages: Int, reserveTarget: Int,
                keepEmptySlabs: Int, source: SlabSource, debug: ZoneDebug, pageBytes: Int = 4096) {
        precondition(slabPages > 0 && slabPages & (slabPages - 1) == 0, "zone: slab pages must be a power of two")
        precondition(alignment > 0 && alignment & (alignment - 1) == 0 && alignment <= 4096, "zone: bad alignment")
        self.name = name
        self.objectSize = max(objectSize, 8)
        self.alignment = max(alignment, 8)
        self.debug = debug
        self.source = source
        self.reserveTarget = reserveTarget
        self.keepEmptySlabs = keepEmptySlabs
        slabBytes = slabPages * pageBytes
        let padded = self.objectSize + (debug.contains(.redZone) ? ZoneDebug.redZoneBytes : 0)
        stride = (padded + self.alignment - 1) & ~(self.alignment - 1)
        // The bitmap and the object count depend on each other; two rounds settle them.
        let header = MemoryLayout<SlabHeader>.stride
        var words = debug.contains(.doubleFree) ? (slabBytes / stride + 63) / 64 : 0
        var first = 0
        var count = 0
        for _ in 0..<3 {
            first = (header + 8 * words + self.alignment - 1) & ~(self.alignment - 1)
            count = (slabBytes - first) / stride
            if debug.contains(.doubleFree) { words = (count + 63) / 64 }
        }
        first = (header + 8 * words + self.alignment - 1) & ~(self.alignment - 1)
        objectsPerSlab = (slabBytes - first) / stride
        bitmapWords = words
        firstObjectOffset = first
        strideReciprocal = (UInt64(1) << 40) / UInt64(stride) + 1
        caches = UnsafeMutableRawPointer.allocate(byteCount: CPUCache.slots * MemoryLayout<CPUCache>.stride, alignment: 64)
            .bindMemory(to: CPUCache.self, capacity: CPUCache.slots)
        caches.initialize(repeating: CPUCache(), count: CPUCache.slots)
        caching = debug.isEmpty ? .enabled : .never
        precondition(objectsPerSlab >= 1, "zone: objects do not fit in a slab")
        precondition(slabBytes <= 1 << 20, "zone: slabs are at most 1 MiB")
    }

    /// The list of slabs of `kind`.
    @inline(__always)
    public subscript(list kind: SlabListKind) -> SlabList {
        get {
            switch kind {
            case .empty: return empty
            case .partial: return partial
            case .full: return full
            }
        }
        _modify {
            switch kind {
            case .empty: yield &empty
            case .partial: yield &partial
            case .full: yield &full
            }
        }
    }

    public var slabCount: Int { empty.count + partial.count + full.count }

    /// Moves the reserve line (the zone lock is held, or the zone is not in use).
    public mutating func setReserveTarget(_ target: Int) {
        reserveTarget = target
        centralShort = freeObjects < reserveTarget
    }

    /// Bytes of slab memory not holding live objects' requested bytes: headers, padding,
    /// red zones and free objects. Reported as a per-mille of slab memory.
    public var wastePerMille: Int {
        let total = slabCount * slabBytes
        if total == 0 { return 0 }
        return (total - inUse * objectSize) * 1000 / total
    }
}

/// What a zone needs from the system around it. All static: the kernel's environment
/// specialises the zone code at compile time, with no indirect calls on the fast path.
public protocol ZoneEnvironment {
    associatedtype LockToken
    /// Excludes every other user of any zone (on one CPU: interrupts off).
    static func lock() -> LockToken
    static func unlock(_ token: LockToken)
    /// What the CPU layer needs (ZoneCPUCache.swift). `enterCPU` keeps the running thread on
    /// its CPU and keeps this CPU's interrupt handlers out (in the kernel: interrupts off)
    /// until `leaveCPU`; `cpuIndex` is that CPU's number, below `cpuCount`.
    associatedtype CPUToken
    static func enterCPU() -> CPUToken
    static func leaveCPU(_ token: CPUToken)
    /// Below CPUCache.slots, always: the fast paths index the caches with it unchecked.
    static var cpuIndex: Int { get }
    /// The fast paths (ZoneAllocator's allocate and free): an object popped from the running
    /// CPU's loaded magazine in `caches`, or `object` pushed onto it, with the slot's count
    /// of allocations or frees - nil or false when that magazine is missing, empty (pop) or
    /// full (push). The defaults below do it between enterCPU and leaveCPU; the kernel's are
    /// restartable sequences that leave interrupts on (kernel/Arch/x86_64/RestartableSequences.swift).
    static func popLoaded(_ caches: UnsafeMutablePointer<CPUCache>) -> UnsafeMutableRawPointer?
    static func pushLoaded(_ caches: UnsafeMutablePointer<CPUCache>, _ object: UnsafeMutableRawPointer) -> Bool
    /// FreePath.checkAllocation(.zone, zone's name), the way the environment does it fastest
    /// (the zone, not its name, is passed: the name is read only to report a violation).
    static func checkAllocation(_ zone: UnsafeMutablePointer<ZoneState>)
    /// How many CPU numbers are in use (a bound for walking every CPU's cache).
    static var cpuCount: Int { get }
    /// Has every other CPU whose slot of `zone` concerns `request` (CPUCache.concerns) run
    /// CPUCache.answer(request) on it, and returns when all have. Called with the zone lock
    /// held and interrupts off. Each owner must answer on its own CPU with interrupts off -
    /// never in the middle of its fast path (the kernel's restarts an interrupted one before
    /// the answer runs) - since its slot has no lock (ZoneCPUCache.swift, "Locks");
    /// a CPU that is not running may be answered for.
    static func askOtherCPUs(_ zone: UnsafeMutablePointer<ZoneState>, _ request: CPUCache.Request)
    /// The zone magazines come from; nil before it exists.
    static var magazineZone: UnsafeMutablePointer<ZoneState>? { get }
    /// `bytes` of memory aligned to `bytes`, or nil when none can be had without breaking
    /// the rules of `context`.
    static func allocateSlab(for zone: StaticString, bytes: Int, source: SlabSource, _ context: AllocationContext) -> UnsafeMutableRawPointer?
    static func freeSlab(_ memory: UnsafeMutableRawPointer, bytes: Int, source: SlabSource)
    /// False until slab memory can be had at all (before the page allocator exists).
    static var canGrow: Bool { get }
    /// Whether zone reserves are in force (reserves=off turns them off).
    static var reservesEnabled: Bool { get }
    /// A number identifying the running thread (anything non-zero).
    static var currentThread: UInt64 { get }
    /// The running thread's count of zones it is growing right now.
    static func growthDepth() -> UnsafeMutablePointer<Int>
    static func log(_ message: LogMessage)
    /// Stops everything: a zone found itself corrupted or misused.
    static func fail(_ message: LogMessage) -> Never
    /// A few return addresses of the running call chain (for the deepest reserve draw).
    static func callChain() -> DrawChain
}

extension ZoneEnvironment {
    /// Environments without a frame-pointer walk (the host's) record no chain.
    public static func callChain() -> DrawChain { DrawChain() }

    @inline(__always)
    public static func popLoaded(_ caches: UnsafeMutablePointer<CPUCache>) -> UnsafeMutableRawPointer? {
        let token = enterCPU()
        defer { leaveCPU(token) }
        let cache = caches + cpuIndex
        guard let loaded = cache.pointee.loaded else { return nil }
        let count = loaded.pointee.count
        guard count > 0 else { return nil }
        loaded.pointee.count = count &- 1
        cache.pointee.allocations &+= 1
        return Magazine.rounds(loaded)[count &- 1]
    }

    @inline(__always)
    public static func pushLoaded(_ caches: UnsafeMutablePointer<CPUCache>, _ object: UnsafeMutableRawPointer) -> Bool {
        let token = enterCPU()
        defer { leaveCPU(token) }
        let cache = caches + cpuIndex
        guard let loaded = cache.pointee.loaded else { return false }
        let count = loaded.pointee.count
        guard count < Magazine.capacity else { return false }
        Magazine.rounds(loaded)[count] = object
        loaded.pointee.count = count &+ 1
        cache.pointee.frees &+= 1
        return true
    }
}

/// The deepest chain of zone growths ever seen: zone A growing needed zone B to grow, and so
/// on. docs/reserves.md bounds it; the tests check the bound.
public enum ZoneGrowth {
    public static var deepestChain = 0
}
