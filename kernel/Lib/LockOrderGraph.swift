// LockOrderGraph.swift - the lock-order checker's memory: which lock classes have been taken
// inside which, and where (in the spirit of FreeBSD's witness and Linux's lockdep).
//
// A lock class is a lock's name: every map's lock is its own class ("kmem", "pager"), every
// disk driver's mutex one. Each time a thread takes lock B while it holds A, the graph records
// the edge A -> B with the two acquisition sites (file and line) the first time it is seen.
// Taking B while holding A when B already reaches A through recorded edges (B -> ... -> A)
// closes a cycle: two threads that each follow one of the orders can deadlock, even if they
// never happened to. `acquire` then reports both locks, the site taking B, the site that took
// A, and the sites of the earlier edge that put B first. Nothing is recorded for a violation,
// so the graph stays acyclic.
//
// Portable and host-tested (Tests/PortableTests/LockOrderTests.swift); the kernel keeps one
// graph and a HeldLocks stack per thread (kernel/Kern/LockOrder.swift), used only with
// lockorder=on. Fixed capacities, no allocation after `init`: a lock's path must not allocate.

/// Where a lock was taken: the caller's file and line.
public struct LockSite {
    public let file: StaticString
    public let line: UInt

    public init(_ file: StaticString, _ line: UInt) {
        self.file = file
        self.line = line
    }

    public static let unknown = LockSite("?", 0)
}

/// One lock a thread holds: its class and where it was taken.
public struct HeldLock {
    public var lockClass: Int
    public var site: LockSite

    public init(lockClass: Int, site: LockSite) {
        self.lockClass = lockClass
        self.site = site
    }
}

/// The locks one thread holds, innermost last. Fixed storage (a thread's struct holds it).
public struct HeldLocks {
    public static let capacity = 8
    public private(set) var count = 0
    /// Locks taken beyond `capacity` (not checked; counted so that releases still balance).
    public private(set) var overflow = 0
    private var storage = (HeldLock(lockClass: -1, site: .unknown), HeldLock(lockClass: -1, site: .unknown),
                           HeldLock(lockClass: -1, site: .unknown), HeldLock(lockClass: -1, site: .unknown),
                           HeldLock(lockClass: -1, site: .unknown), HeldLock(lockClass: -1, site: .unknown),
                           HeldLock(lockClass: -1, site: .unknown), HeldLock(lockClass: -1, site: .unknown))

    public init() {}

    public subscript(index: Int) -> HeldLock {
        precondition(index >= 0 && index < count, "held locks: index out of range")
        return withUnsafeBytes(of: storage) { $0.load(fromByteOffset: index * MemoryLayout<HeldLock>.stride, as: HeldLock.self) }
    }

    public mutating func push(_ lock: HeldLock) {
        guard count < HeldLocks.capacity else {
            overflow += 1
            return
        }
        withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: lock, toByteOffset: count * MemoryLayout<HeldLock>.stride, as: HeldLock.self) }
        count += 1
    }

    /// Forgets the innermost held lock of `lockClass` (locks need not be released in order).
    public mutating func remove(_ lockClass: Int) {
        if overflow > 0 {
            overflow -= 1
            return
        }
        var index = count - 1
        while index >= 0 && self[index].lockClass != lockClass { index -= 1 }
        guard index >= 0 else { return }
        while index < count - 1 {
            let next = self[index + 1]
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: next, toByteOffset: index * MemoryLayout<HeldLock>.stride, as: HeldLock.self) }
            index += 1
        }
        count -= 1
    }
}

/// Taking `taking` while holding `holding` reverses an order recorded before.
public struct LockOrderViolation {
    public let taking: StaticString
    public let takingSite: LockSite
    public let holding: StaticString
    public let holdingSite: LockSite
    /// The first edge of the recorded path from `taking` to `holding`: its outer lock (taking
    /// itself), inner lock and the two sites.
    public let earlierInner: StaticString
    public let earlierOuterSite: LockSite
    public let earlierInnerSite: LockSite
}

public struct LockOrderGraph {
    public static let classCapacity = 32
    private struct Edge {
        var seen = false
        var outerSite = LockSite.unknown
        var innerSite = LockSite.unknown
    }
    private var names: [StaticString]
    private var edges: [Edge]
    public private(set) var classCount = 0
    public private(set) var edgeCount = 0
    /// Lock classes that found the table full (not checked).
    public private(set) var classesDropped = 0

    public init() {
        names = [StaticString](repeating: "", count: LockOrderGraph.classCapacity)
        edges = [Edge](repeating: Edge(), count: LockOrderGraph.classCapacity * LockOrderGraph.classCapacity)
    }

    /// The class of a lock named `name` (by the name's text); nil when the table is full.
    public mutating func lockClass(named name: StaticString) -> Int? {
        for index in 0..<classCount where LockOrderGraph.same(names[index], name) { return index }
        guard classCount < LockOrderGraph.classCapacity else {
            classesDropped += 1
            return nil
        }
        names[classCount] = name
        classCount += 1
        return classCount - 1
    }

    public func name(of lockClass: Int) -> StaticString { names[lockClass] }

    /// Whether `a -> b` has been recorded.
    public func hasEdge(_ a: Int, _ b: Int) -> Bool { edges[a * LockOrderGraph.classCapacity + b].seen }

    /// Records taking `lock` at `site` with `held` held. Returns the violation, recording
    /// nothing, when `lock` already reaches one of the held classes; else records each new edge.
    public mutating func acquire(_ lock: Int, at site: LockSite, holding held: HeldLocks) -> LockOrderViolation? {
        for index in 0..<held.count {
            let outer = held[index]
            guard outer.lockClass != lock else { continue }
            if let first = firstStep(from: lock, to: outer.lockClass) {
                let edge = edges[lock * LockOrderGraph.classCapacity + first]
                return LockOrderViolation(taking: names[lock], takingSite: site, holding: names[outer.lockClass], holdingSite: outer.site,
                                          earlierInner: names[first], earlierOuterSite: edge.outerSite, earlierInnerSite: edge.innerSite)
            }
        }
        for index in 0..<held.count {
            let outer = held[index]
            guard outer.lockClass != lock else { continue }
            let slot = outer.lockClass * LockOrderGraph.classCapacity + lock
            if !edges[slot].seen {
                edges[slot] = Edge(seen: true, outerSite: outer.site, innerSite: site)
                edgeCount += 1
            }
        }
        return nil
    }

    /// The first class after `from` on a recorded path from `from` to `to`, if there is one
    /// (depth-first; the graph is acyclic and small).
    private func firstStep(from: Int, to: Int) -> Int? {
        var visited: UInt64 = 0
        for next in 0..<classCount where hasEdge(from, next) {
            if next == to || reaches(next, to, &visited) { return next }
        }
        return nil
    }

    private func reaches(_ from: Int, _ to: Int, _ visited: inout UInt64) -> Bool {
        if visited & (1 << UInt64(from)) != 0 { return false }
        visited |= 1 << UInt64(from)
        for next in 0..<classCount where hasEdge(from, next) {
            if next == to || reaches(next, to, &visited) { return true }
        }
        return false
    }

    private static func same(_ a: StaticString, _ b: StaticString) -> Bool {
        guard a.utf8CodeUnitCount == b.utf8CodeUnitCount else { return false }
        if a.utf8Start == b.utf8Start { return true }
        for index in 0..<a.utf8CodeUnitCount where a.utf8Start[index] != b.utf8Start[index] { return false }
        return true
    }
}
