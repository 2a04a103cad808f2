// FreePath.swift - proving that freeing memory never allocates memory.
//
// "We must never allocate memory when freeing memory" (../shared/seeds/linux-mm-dynamic-
// memory-descriptors.txt): a free that needs memory can fail or deadlock exactly when memory
// is short. Every free path (page free, zone free, pmap remove, kmem free, map-entry removal)
// brackets itself with enter/leave; every allocator calls noteAllocation. The count of
// allocations made inside a free path must stay 0, and the tests assert it.
// The nesting depth is per thread once threads exist (`threadCounter`), global before.

public enum FreePath {
    /// The depth before there are threads (and on the host).
    public static var depth = 0
    public static var allocationsInside: UInt64 = 0
    /// The running thread's depth counter, once there are threads: the scheduler points it at
    /// the thread it switches to, so this costs a load, not a call, on every allocation.
    public static var threadCounter: UnsafeMutablePointer<Int>? = nil

    /// The current nesting depth of free paths (this thread's, once there are threads).
    public static var currentDepth: Int {
        if let counter = threadCounter { return counter.pointee }
        return depth
    }

    @inline(__always) public static func enter() {
        if let counter = threadCounter { counter.pointee += 1 } else { depth += 1 }
    }

    @inline(__always) public static func leave() {
        if let counter = threadCounter { counter.pointee -= 1 } else { depth -= 1 }
    }

    public static var isInside: Bool { currentDepth > 0 }

    @inline(__always) public static func noteAllocation() {
        if currentDepth > 0 { allocationsInside &+= 1 }
    }
}
