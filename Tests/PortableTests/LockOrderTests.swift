// LockOrderTests.swift - the lock-order checker's graph: orders recorded with their sites, a
// reversed order caught directly and through a third lock, nothing recorded for a violation,
// recursion and unrelated locks left alone, the held stack's bookkeeping.
import Testing
@testable import KernelPortable

@Suite struct LockOrderTests {
    func held(_ locks: (Int, UInt)...) -> HeldLocks {
        var stack = HeldLocks()
        for (lockClass, line) in locks { stack.push(HeldLock(lockClass: lockClass, site: LockSite("a.swift", line))) }
        return stack
    }

    @Test func aReversedOrderIsCaughtNamingBothLocksAndAllFourSites() {
        var graph = LockOrderGraph()
        let a = graph.lockClass(named: "kmem")!, b = graph.lockClass(named: "virtio-blk")!
        #expect(graph.lockClass(named: "kmem") == a, "one class per name")
        #expect(graph.acquire(b, at: LockSite("b.swift", 20), holding: held((a, 10))) == nil)
        #expect(graph.hasEdge(a, b) && !graph.hasEdge(b, a) && graph.edgeCount == 1)
        let violation = graph.acquire(a, at: LockSite("c.swift", 30), holding: held((b, 40)))
        #expect(violation != nil)
        if let v = violation {
            #expect(v.taking.description == "kmem" && v.holding.description == "virtio-blk")
            #expect(v.takingSite.line == 30 && v.holdingSite.line == 40)
            #expect(v.earlierInner.description == "virtio-blk" && v.earlierOuterSite.line == 10 && v.earlierInnerSite.line == 20)
        }
        #expect(!graph.hasEdge(b, a) && graph.edgeCount == 1, "a violation records nothing")
    }

    @Test func aCycleThroughAThirdLockIsCaught() {
        var graph = LockOrderGraph()
        let a = graph.lockClass(named: "A")!, b = graph.lockClass(named: "B")!, c = graph.lockClass(named: "C")!
        #expect(graph.acquire(b, at: LockSite("x", 2), holding: held((a, 1))) == nil)
        #expect(graph.acquire(c, at: LockSite("x", 4), holding: held((b, 3))) == nil)
        // C then A: A -> B -> C is on record, so C -> A closes a cycle.
        let violation = graph.acquire(a, at: LockSite("x", 6), holding: held((c, 5)))
        #expect(violation?.earlierInner.description == "B", "the first step of the recorded path A -> B -> C")
    }

    @Test func consistentOrdersRecursionAndUnrelatedLocksPass() {
        var graph = LockOrderGraph()
        let a = graph.lockClass(named: "A")!, b = graph.lockClass(named: "B")!, c = graph.lockClass(named: "C")!
        for _ in 0..<3 {
            #expect(graph.acquire(b, at: LockSite("x", 2), holding: held((a, 1))) == nil)
            #expect(graph.acquire(c, at: LockSite("x", 3), holding: held((a, 1), (b, 2))) == nil)
        }
        #expect(graph.acquire(c, at: LockSite("x", 4), holding: held()) == nil, "nothing held, nothing to check")
        #expect(graph.acquire(a, at: LockSite("x", 5), holding: held((a, 1))) == nil, "the same class again is the lock's own check")
        #expect(graph.edgeCount == 3)
    }

    @Test func theHeldStackPushesRemovesOutOfOrderAndOverflowsWithoutLosingBalance() {
        var stack = held((1, 1), (2, 2), (3, 3))
        stack.remove(2)
        #expect(stack.count == 2 && stack[0].lockClass == 1 && stack[1].lockClass == 3 && stack[1].site.line == 3)
        for extra in 0..<(HeldLocks.capacity + 2) { stack.push(HeldLock(lockClass: 10 + extra, site: .unknown)) }
        #expect(stack.count == HeldLocks.capacity && stack.overflow == 4)
        for _ in 0..<4 { stack.remove(99) }
        #expect(stack.overflow == 0 && stack.count == HeldLocks.capacity)
    }

    @Test func theClassTableIsBoundedAndSaysWhatItDropped() {
        var graph = LockOrderGraph()
        let names: [StaticString] = ["c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9", "c10", "c11", "c12", "c13", "c14", "c15",
                                     "c16", "c17", "c18", "c19", "c20", "c21", "c22", "c23", "c24", "c25", "c26", "c27", "c28", "c29", "c30", "c31", "c32"]
        for name in names { _ = graph.lockClass(named: name) }
        #expect(graph.classCount == LockOrderGraph.classCapacity && graph.classesDropped == 1)
    }
}
