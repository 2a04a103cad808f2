// LockOrderTests.swift - the lock-order checker in the kernel (lockorder=on).
//
// `lockorder` boots with the checker on: a consistent nesting of two mutexes and a spin lock
// is accepted however often it repeats, and the kernel's own locks (the maps' spin locks, the
// disk's mutex) are checked as kmem and swap run; taking the two mutexes the other way round
// panics naming both locks and all four sites (booted alone). `vmmapcheck` also runs with
// lockorder=on, so every map path that suite drives is checked (about 2,200 acquisitions at
// 128M; today the kernel never nests two of its own locks, so it records no order - the
// checker is there for the SMP work that will).

enum LockOrderTests {
    static var suite: TestSuite {
        TestSuite("lockorder", memory: "24M", arguments: "lockorder=on", diskMiB: 4, [
            TestCase("aConsistentOrderIsAcceptedAndTheKernelsLocksAreChecked", aConsistentOrderIsAcceptedAndTheKernelsLocksAreChecked),
            TestCase("takingTwoMutexesTheOtherWayRoundPanics", expectsPanic: "lock order: 'lockorder-outer' taken at Kernel/LockOrderTests.swift:",
                     takingTwoMutexesTheOtherWayRoundPanics),
        ])
    }

    static let outer = UnsafeMutablePointer<Mutex>.allocate(capacity: 1)
    static let inner = UnsafeMutablePointer<Mutex>.allocate(capacity: 1)
    static let spin = UnsafeMutablePointer<SpinLock>.allocate(capacity: 1)

    static func prepare() {
        outer.initialize(to: Mutex("lockorder-outer"))
        inner.initialize(to: Mutex("lockorder-inner"))
        spin.initialize(to: SpinLock("lockorder-spin", .underKernelLock))
    }

    static func aConsistentOrderIsAcceptedAndTheKernelsLocksAreChecked() {
        Test.expect(LockOrder.isEnabled, "lockorder=on switched the checker on")
        prepare()
        let before = LockOrder.checked
        for _ in 0..<3 {
            outer.lock()
            inner.lock()
            spin.pointee.lock()
            spin.pointee.unlock()
            inner.unlock()
            outer.unlock()
        }
        Test.expectEqual(LockOrder.checked - before, 9, "acquisitions checked")
        Test.expectEqual(Scheduler.current.pointee.heldLocks.count, 0, "locks held after every release")
        // The kernel's own: kmem takes the kmem map's lock (and its parent's), swap the disk's mutex.
        let kernelBefore = LockOrder.checked
        if let memory = Kmem.allocate(4 * pageSize, .ordinary) { Kmem.free(memory, 4 * pageSize) }
        if let block = SwapDevice.allocateBlock() {
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: Int(pageSize), alignment: Int(pageSize))
            Preemption.enable()
            _ = SwapDevice.write(block: block, from: buffer)
            Preemption.disable()
            buffer.deallocate()
            SwapDevice.freeBlock(block)
        }
        Test.expect(LockOrder.checked > kernelBefore, "the kernel's locks were checked: \(LockOrder.checked - kernelBefore) acquisitions")
        LockOrder.logStatistics()
    }

    @inline(never)
    static func takingTwoMutexesTheOtherWayRoundPanics() {
        prepare()
        outer.lock()
        inner.lock()
        inner.unlock()
        outer.unlock()
        inner.lock()
        outer.lock()
        Test.fail("taking lockorder-outer while holding lockorder-inner returned")
    }
}
