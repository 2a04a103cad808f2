// FreePath.swift - freeing memory never allocates memory, asserted on every allocation.
//
// "We must never allocate memory when freeing memory" (../shared/seeds/linux-mm-dynamic-
// memory-descriptors.txt): a free that needs memory can fail or deadlock exactly when memory
// is short, which is when the pageout thread frees. So every free path brackets itself with
// `enter(.path)` / `leave()`, and every allocator entry point calls `checkAllocation` before it
// tries anything - an attempt that would succeed, fail or block is caught alike. An attempt
// inside a free path is a violation: the kernel panics at once (its handler is installed at
// boot, kernel/Kern/FreePathCheck.swift), naming the free path and the allocator. The check is
// always on; it costs a load and a compare per allocation.
//
// The free paths (each one's file says what it frees; none of them allocates):
//   page free         PhysicalMemory.free             kernel/Mem/PhysicalMemory.swift
//   zone free         ZoneRef.free                    kernel/Mem/Portable/ZoneAllocator.swift
//   zone reclaim      ZoneRef.reclaim                 kernel/Mem/Portable/ZoneReclaim.swift
//   kfree             Kmalloc.free                    kernel/Mem/Kmalloc.swift
//   pmap remove       Pmap.remove                     kernel/Arch/x86_64/Pmap.swift
//   kmem free         Kmem.removeRange                kernel/VM/Kmem.swift
//   submap destroy    VMMaps.destroySubmap            kernel/VM/VMMaps.swift
//   object page release / object teardown
//                     MemoryObjects.releasePages / destroy   kernel/VM/MemoryObject.swift
//   swap metadata free  SwapMetadata.release          kernel/VM/SwapMetadata.swift
// The allocators that check: the page allocator, zone allocate (and so kmalloc's size
// classes, PV entries, swblocks, map entries), kmalloc, kmem, map-entry reservations (even
// one served from a map's stock), memory-object creation, the early heap, the boot page
// allocator and the buddy-descriptor pool (a split takes descriptors; a merge only gives them back).
//
// Per thread - the scheduler points `threadState` at the running thread's record; before
// there are threads (and on the host) `bootState` is used - we keep the nesting depth and the
// name of the OUTERMOST free path. Outermost, because that is the promise that was broken: a
// kmem free that calls pmap remove that calls page free promised, as a whole, to allocate
// nothing, and the panic's symbolised backtrace already shows the innermost frames. Keeping
// only the outermost also needs no stack of names: it is set when the depth goes 0 -> 1.
//
// On the host (portable code is compiled into the unit tests) the tests install their own
// handler, which records the violation instead of stopping the process.

/// The free paths; each names itself on entry.
public enum FreePathKind: UInt8 {
    case none
    case pageFree, zoneFree, zoneReclaim, kfree, pmapRemove, kmemFree, submapDestroy
    case objectPageRelease, objectTeardown, swapMetadataFree

    public var name: StaticString {
        switch self {
        case .none: return "no free path"
        case .pageFree: return "page free"
        case .zoneFree: return "zone free"
        case .zoneReclaim: return "zone reclaim"
        case .kfree: return "kfree"
        case .pmapRemove: return "pmap remove"
        case .kmemFree: return "kmem free"
        case .submapDestroy: return "submap destroy"
        case .objectPageRelease: return "object page release"
        case .objectTeardown: return "object teardown"
        case .swapMetadataFree: return "swap metadata free"
        }
    }
}

/// The allocator entry points that check.
public enum AllocatorKind: UInt8 {
    case pageAllocator, zone, kmalloc, kmem, mapEntryReservation, memoryObject, earlyHeap, bootPages, buddyDescriptor

    public var name: StaticString {
        switch self {
        case .pageAllocator: return "the page allocator"
        case .zone: return "zone allocate"
        case .kmalloc: return "kmalloc"
        case .kmem: return "kmem_alloc"
        case .mapEntryReservation: return "a map-entry reservation"
        case .memoryObject: return "memory-object creation"
        case .earlyHeap: return "the early heap"
        case .bootPages: return "the boot page allocator"
        case .buddyDescriptor: return "a buddy descriptor"
        }
    }
}

/// One thread's free-path state (also kept in each Thread record).
public struct FreePathState {
    public var depth = 0
    /// The outermost free path this thread is in; .none at depth 0.
    public var outermost = FreePathKind.none

    public init() {}
}

/// What a violation reports: which free path, which allocator, and (for zones) which zone.
public struct FreePathViolation {
    public let path: FreePathKind
    public let allocator: AllocatorKind
    public let detail: StaticString
}

public enum FreePath {
    /// The state before there are threads (and on the host).
    public static var bootState = FreePathState()
    /// bootState's address, for a reader that follows a pointer instead of branching on "are
    /// there threads yet" (the kernel's per-CPU free-path pointer before its first thread). A
    /// stored global keeps one address for the program's life.
    public static var bootStatePointer: UnsafeMutablePointer<FreePathState> {
        withUnsafeMutablePointer(to: &bootState) { $0 }
    }
    /// Finds the running thread's state, once there are threads (nil before, and on the
    /// host). The kernel's reads its CPU's current thread: threads move between CPUs, so no
    /// one global can point at "the" running thread.
    public static var locateThreadState: (@convention(c) () -> UnsafeMutableRawPointer?)? = nil

    /// The running thread's state; nil before there are threads.
    public static var threadState: UnsafeMutablePointer<FreePathState>? {
        @inline(__always) get {
            guard let locate = locateThreadState, let state = locate() else { return nil }
            return state.assumingMemoryBound(to: FreePathState.self)
        }
    }
    /// Called on a violation. The kernel's panics; a host test's records. Nil only before the
    /// kernel installs its handler (the first thing it does), where a violation still traps.
    static var violationHandler: ((FreePathViolation) -> Void)? = nil

    /// Installs what a violation calls, and starts from depth 0 (the kernel at boot; host
    /// tests before each case).
    public static func install(_ handler: @escaping (FreePathViolation) -> Void) {
        violationHandler = handler
        bootState = FreePathState()
    }

    /// The current nesting depth of free paths (this thread's, once there are threads).
    public static var currentDepth: Int {
        if let state = threadState { return state.pointee.depth }
        return bootState.depth
    }

    /// The outermost free path the current thread is in (.none outside any).
    public static var currentPath: FreePathKind {
        if let state = threadState { return state.pointee.outermost }
        return bootState.outermost
    }

    public static var isInside: Bool { currentDepth > 0 }

    @inline(__always) public static func enter(_ path: FreePathKind) {
        if let state = threadState { enter(path, state: &state.pointee) } else { enter(path, state: &bootState) }
    }

    @inline(__always) public static func leave() {
        if let state = threadState { leave(state: &state.pointee) } else { leave(state: &bootState) }
    }

    /// Every allocator calls this first. Inside a free path it reports a violation.
    @inline(__always) public static func checkAllocation(_ allocator: AllocatorKind, _ detail: StaticString = "") {
        if currentDepth > 0 { report(allocator, detail) }
    }

    /// Forgets the current thread's free paths: the kernel's handler calls it before it panics,
    /// so that whatever the panic report does cannot report again.
    public static func abandon() {
        if let state = threadState { state.pointee = FreePathState() } else { bootState = FreePathState() }
    }

    @inline(__always) static func enter(_ path: FreePathKind, state: inout FreePathState) {
        if state.depth == 0 { state.outermost = path }
        state.depth += 1
    }

    @inline(__always) static func leave(state: inout FreePathState) {
        precondition(state.depth > 0, "FreePath.leave without enter")
        state.depth -= 1
        if state.depth == 0 { state.outermost = .none }
    }

    @inline(never) public static func report(_ allocator: AllocatorKind, _ detail: StaticString) {
        let violation = FreePathViolation(path: currentPath, allocator: allocator, detail: detail)
        guard let handler = violationHandler else { fatalError("allocation inside a free path (no handler installed)") }
        handler(violation)
    }
}
