// ReserveDraw.swift - the run-time side of ReserveBounds: what the deepest draw on each
// reserve was and which call chain made it, and the rule that a draw beyond its derived bound
// stops the kernel at once.
//
// The zones (ZoneAllocator.swift) and the page allocator (PhysicalMemory.swift) call `note`
// on every allocation that leaves a reserve drawn, with the reserve's bound; `note` records a
// new deepest draw with its call chain and returns false when the draw is beyond the bound -
// the caller then panics, naming the reserve, the bound, the draw and (the panic's backtrace)
// the chain. A test that empties a reserve on purpose to set up a situation (that is not a
// path's need) does it inside `ReserveDraws.deliberately`: such draws are neither checked nor
// recorded, and nothing else is exempt.

/// A few return addresses of the chain that made a draw, innermost first; 0 past its end (and
/// on the host, which has no frame-pointer walk).
public struct DrawChain {
    /// Enough to reach from the allocator back through kmem and the zone growth to the path
    /// that started the chain (the first two frames are the allocator's own).
    public static let depth = 8
    public var frames: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)

    public init() {}

    public subscript(_ index: Int) -> UInt64 {
        get {
            precondition(index >= 0 && index < DrawChain.depth, "draw chain index out of range")
            return withUnsafeBytes(of: frames) { $0.load(fromByteOffset: index * 8, as: UInt64.self) }
        }
        set {
            precondition(index >= 0 && index < DrawChain.depth, "draw chain index out of range")
            withUnsafeMutableBytes(of: &frames) { $0.storeBytes(of: newValue, toByteOffset: index * 8, as: UInt64.self) }
        }
    }
}

public enum ReserveDraws {
    /// Nesting count of `deliberately` in the thread that owns it (`owner`).
    public static var deliberate = 0
    /// The thread inside `deliberately`: the address of its free-path record
    /// (FreePath.threadState: the running thread's; 0 before there are threads, and on the
    /// host). Only that thread's draws are exempt - the pageout thread,
    /// running while a test sets a situation up, is checked as always.
    public static var owner: UInt = 0

    static var runningThread: UInt { UInt(bitPattern: FreePath.threadState) }

    /// Runs a test's setup that empties reserves on purpose: its draws are no path's need, so
    /// they are neither checked against the bounds nor recorded as the deepest. One thread at a
    /// time: another thread's `deliberately` while one is open is a test bug and stops.
    public static func deliberately<R>(_ body: () -> R) -> R {
        precondition(deliberate == 0 || owner == runningThread, "ReserveDraws.deliberately: two threads set up reserves on purpose at once")
        owner = runningThread
        deliberate += 1
        defer { deliberate -= 1 }
        return body()
    }

    /// Whether the running thread's draws are exempt now.
    @inline(__always)
    static var exempt: Bool { deliberate > 0 && owner == runningThread }

    /// Notes a draw that leaves a reserve `depth` below its line: records it in `deepest` and
    /// `chain` (from `caller()`) if it is the deepest yet. False when `depth` is beyond
    /// `bound`: the caller must panic. Deliberate draws return true and are not recorded.
    @inline(__always)
    public static func note(_ depth: Int, bound: Int, deepest: inout Int, chain: inout DrawChain, caller: () -> DrawChain) -> Bool {
        guard !exempt else { return true }
        if depth > deepest {
            deepest = depth
            chain = caller()
        }
        return depth <= bound
    }
}
