// AllocationContext.swift - who is asking for memory, and whether they may wait: the one
// description of a request's rights that every allocator in the kernel takes.
//
// A request is made at the top of a path (a page fault, kmem_alloc, a zone refill, one
// pageout step) and travels down unchanged through vm_map, pmap, the zones and the page
// allocator. Each layer reads from the context what it needs and nothing else decides:
//
//   requester   pages: how low the free count may go   zone reserves   page-table pages
//   ordinary    down to free_reserved                  no              system (see below)
//   system      down to free_min                       yes             system
//   pageout     every page                             yes             pageout
//
// Page-table pages for an ordinary mapping come from the system tier (`forPageTables`): a
// table page is a VM internal that an ordinary caller cannot do without once it holds its
// page, but it still never reaches below free_min, which only the pageout path may use.
// A system request - a zone refill, a kernel_map insert by VM internals - likewise never takes
// a page below free_min, however deep the chain it starts (docs/reserves.md).
//
// `blocking` says whether the request may sleep until memory is available. The pageout path
// never does: it is the one that makes memory available.

/// Who is asking for memory. The order matters: each requester may take everything the one
/// before it may, and more.
public enum Requester: Int, CaseIterable, Comparable {
    /// Everything ordinary: faults on pageable memory, kmem_alloc, kmalloc, zone growth for them.
    case ordinary = 0
    /// VM internals: zone refills, kernel_map inserts, page tables for ordinary mappings.
    case system = 1
    /// The pageout path, which must make progress when nobody else can allocate.
    case pageout = 2

    public var name: StaticString {
        switch self {
        case .ordinary: return "ordinary"
        case .system: return "system"
        case .pageout: return "pageout"
        }
    }

    public static func < (a: Requester, b: Requester) -> Bool { a.rawValue < b.rawValue }
}

/// Whether a request may sleep until memory is available.
public enum Blocking {
    case wait
    case noWait
}

public struct AllocationContext: Equatable {
    public let requester: Requester
    public let blocking: Blocking

    public init(_ requester: Requester, _ blocking: Blocking) {
        self.requester = requester
        self.blocking = blocking
    }

    /// An ordinary kernel allocation: may wait, no reserves.
    public static let ordinary = AllocationContext(.ordinary, .wait)
    /// An ordinary allocation that must not sleep (it fails instead).
    public static let ordinaryNoWait = AllocationContext(.ordinary, .noWait)
    /// VM internals: never waits, may take zone reserves, never takes a page below free_min.
    public static let system = AllocationContext(.system, .noWait)
    /// The pageout path: may take the last pages and every reserve, never waits.
    public static let pageout = AllocationContext(.pageout, .noWait)

    /// Whether the request may take objects a zone keeps in reserve.
    @inline(__always)
    public var mayUseZoneReserves: Bool { requester != .ordinary }

    /// The same requester without the right to sleep.
    public var withoutWaiting: AllocationContext { AllocationContext(requester, .noWait) }

    /// The context a page-table page for this request's mapping is allocated under: at least
    /// the system tier (an ordinary mapping's tables are VM internals, and a mapping cannot be
    /// half made), and the pageout tier only for the pageout path itself - never below free_min
    /// for anyone else. Never waits: the pmap reports the shortage and its caller decides.
    public var forPageTables: AllocationContext {
        AllocationContext(max(requester, .system), .noWait)
    }
}

/// One value per requester, stored inline (no heap, no index arithmetic at the call site).
public struct PerRequester<Value> {
    public var ordinary: Value
    public var system: Value
    public var pageout: Value

    public init(_ value: Value) {
        ordinary = value
        system = value
        pageout = value
    }

    public subscript(_ requester: Requester) -> Value {
        get {
            switch requester {
            case .ordinary: return ordinary
            case .system: return system
            case .pageout: return pageout
            }
        }
        set {
            switch requester {
            case .ordinary: ordinary = newValue
            case .system: system = newValue
            case .pageout: pageout = newValue
            }
        }
    }
}
