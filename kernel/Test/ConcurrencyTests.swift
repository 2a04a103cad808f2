// ConcurrencyTests.swift - threads on every CPU at once, through every allocator, under
// memory pressure; nothing lost, no update lost.
//
// The `concurrency` suite boots 4 CPUs (20 seeds in make test, more in make soak) with twice as
// many threads as CPUs, all unbound, so the one run queue spreads them over every CPU and
// moves them between CPUs as their quanta end:
//   - `countersAddUpAcrossCPUs`: each thread, for a seeded number of rounds, adds 1 to a
//     plain counter under a Mutex (read, pause, write: the window an unprotected update would
//     be lost in), to another inside a kernel-lock section, and to a third with countEvent;
//     allocates from kmalloc (a seeded size, 16 bytes to 3 pages: zones and kmem) and from kmem
//     directly (1-3 wired pages), fills every byte with a pattern of its own, checks every
//     byte and frees. Every total must be exact, every byte intact, and the threads must have
//     run on every CPU;
//   - the stress workloads (Stress.swift) with 2 threads per CPU: swap-backed objects faulted
//     in and out and wired kmem churn, every page checked word for word, while the pageout
//     thread runs on whichever CPU takes it - and the reserve draws within their bounds.
// Workloads size themselves from the machine (Stress.run fills to 1.5 times RAM; the disk is
// twice RAM).

import Synchronization

enum ConcurrencyTests {
    static var suite: TestSuite {
        TestSuite("concurrency", memory: "32M", diskMiB: 16, diskPerRAM: 2, icount: true, cpus: "4", timeout: 300, seeds: 20, exclusive: false, [
            TestCase("countersAddUpAcrossCPUs", countersAddUpAcrossCPUs),
            TestCase("objectsWorkloadOnEveryCPULosesNothing", { workload(.objects) }),
            TestCase("kmapWorkloadOnEveryCPULosesNothing", { workload(.kmap) }),
            TestCase("reserveUseStaysWithinTheDerivedBounds", DeadlockTests.reserveUseStaysWithinTheDerivedBounds),
        ])
    }

    static let rounds = 200

    // Shared with the threads (an escaping closure cannot capture an Atomic or an inout).
    static var mutex = Mutex("concurrency counter")
    static var lockedCounter: UInt64 = 0
    static var sectionCounter: UInt64 = 0
    static var eventCounter: UInt64 = 0
    static let cpusSeen = Atomic<UInt64>(0)
    static let operations = Atomic<UInt64>(0)
    static let damagedBytes = Atomic<UInt64>(0)
    static let failedAllocations = Atomic<UInt64>(0)

    static func countersAddUpAcrossCPUs() {
        let threads = 2 * SMP.onlineCount
        let perThread = rounds + Int(Test.random.next(below: UInt64(rounds)))
        lockedCounter = 0
        sectionCounter = 0
        eventCounter = 0
        cpusSeen.store(0, ordering: .relaxed)
        operations.store(0, ordering: .relaxed)
        damagedBytes.store(0, ordering: .relaxed)
        failedAllocations.store(0, ordering: .relaxed)
        let kmemBefore = Kmalloc.kmemBytesInUse
        let seed = KernelOptions.seed
        var handles: [ThreadRef] = []
        for number in 0..<threads {
            handles.append(Threads.spawn("counter") {
                hammer(thread: UInt64(number), rounds: perThread, seed: seed &+ UInt64(number) &* 0x9E37_79B9)
            })
        }
        for handle in handles { Threads.join(handle) }
        let expected = UInt64(threads * perThread)
        let mutexPointer = withUnsafeMutablePointer(to: &mutex) { $0 }
        Test.diagnostic("\(threads) threads x \(perThread) rounds on \(SMP.onlineCount) CPUs: CPUs seen \(hex: cpusSeen.load(ordering: .relaxed)); \(operations.load(ordering: .relaxed)) allocations checked; mutex contended \(mutexPointer.pointee.contended) times; kernel lock contended \(KernelLock.contended) times, \(KernelLock.shootdownsAnsweredSpinning) shootdowns answered while spinning")
        Test.expectEqual(lockedCounter, expected, "increments under the mutex")
        Test.expectEqual(sectionCounter, expected, "increments in kernel-lock sections")
        Test.expectEqual(eventCounter, expected, "countEvent increments")
        Test.expectEqual(damagedBytes.load(ordering: .relaxed), 0, "bytes of allocations that lost their pattern")
        Test.expectEqual(failedAllocations.load(ordering: .relaxed), 0, "allocations that failed")
        Test.expectEqual(cpusSeen.load(ordering: .relaxed), SMPTests.onlineMask, "the CPUs the threads ran on")
        Test.expectEqual(Kmalloc.kmemBytesInUse, kmemBefore, "kmalloc's kmem bytes in use afterwards")
    }

    /// One thread's rounds (see the file's header).
    static func hammer(thread: UInt64, rounds: Int, seed: UInt64) {
        var random = SeededRandom(seed: seed)
        let lock = withUnsafeMutablePointer(to: &mutex) { $0 }
        for round in 0..<rounds {
            cpusSeen.bitwiseOr(1 << UInt64(PerCPU.this.pointee.index), ordering: .relaxed)
            lock.lock()
            let value = withUnsafeMutablePointer(to: &lockedCounter) { UnsafeVolatile.load($0) }
            for _ in 0..<Int(random.next(below: 8)) { CPU.pause() }
            withUnsafeMutablePointer(to: &lockedCounter) { UnsafeVolatile.store($0, value + 1) }
            lock.unlock()
            withInterruptsDisabled { sectionCounter += 1 }
            countEvent(&eventCounter)

            let pattern = seed &* 0x100_0000_01B3 &+ UInt64(round)
            let size = 16 + Int(random.next(below: 3 * UInt64(pageSize)))
            if let memory = Kmalloc.allocate(size) {
                check(memory, bytes: size, pattern: pattern)
                Kmalloc.free(memory)
            } else {
                failedAllocations.wrappingAdd(1, ordering: .relaxed)
            }
            if random.next(below: 4) == 0 {
                let bytes = UInt64(1 + random.next(below: 3)) * pageSize
                if let address = Kmem.allocate(bytes) {
                    check(UnsafeMutableRawPointer(bitPattern: UInt(address.rawValue))!, bytes: Int(bytes), pattern: ~pattern)
                    Kmem.free(address, bytes)
                } else {
                    failedAllocations.wrappingAdd(1, ordering: .relaxed)
                }
            }
            // Let others in now and then, as a thread that sleeps would.
            if random.next(below: 16) == 0 { Scheduler.yield() }
        }
    }

    /// Fills `bytes` with a pattern, then checks every byte of it, counting the damaged ones.
    static func check(_ memory: UnsafeMutableRawPointer, bytes: Int, pattern: UInt64) {
        let bytePointer = memory.assumingMemoryBound(to: UInt8.self)
        for index in 0..<bytes { bytePointer[index] = UInt8(truncatingIfNeeded: pattern &+ UInt64(index) &* 31) }
        var damaged: UInt64 = 0
        for index in 0..<bytes where bytePointer[index] != UInt8(truncatingIfNeeded: pattern &+ UInt64(index) &* 31) { damaged += 1 }
        if damaged > 0 { damagedBytes.wrappingAdd(damaged, ordering: .relaxed) }
        operations.wrappingAdd(1, ordering: .relaxed)
    }

    static func workload(_ variant: StressVariant) {
        let threads = 2 * SMP.onlineCount
        let result = Stress.run(variant, threads: threads, rounds: rounds, seed: KernelOptions.seed)
        Test.diagnostic("\(variant.name) with \(threads) threads on \(SMP.onlineCount) CPUs: \(result.pagesWritten) pages written, \(result.pagesVerified) verified; \(SwapDevice.pagesWritten) pages to swap; kernel lock contended \(KernelLock.contended) times")
        Test.expectEqual(result.mismatches, UInt64(0), "pages whose contents were lost")
        Test.expectEqual(result.stoppedWorkers, 0, "workers stopped by the out-of-memory policy")
        Test.expect(result.pagesVerified > 0 && SwapDevice.pagesWritten > 0, "pages went through swap and were checked")
        Test.expectEqual(SwapDevice.usedBlocks, UInt32(0), "swap blocks in use afterwards")
        Test.expectEqual(MemoryObjects.live, 0, "memory objects alive afterwards")
    }
}
