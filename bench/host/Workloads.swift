// Workloads.swift - the three fixed-size workloads and how they are timed.
//
//   pair    allocate one object, free it, repeat
//   batch   allocate 1,000 objects, free them in allocation order, repeat
//   random  replay a precomputed, seeded sequence of allocations and frees over a live set of
//           at most 1,000 objects; every contender replays exactly the same sequence
//
// Every allocated object has its first 8 bytes written, so an allocator that hands out memory
// it never touched pays for touching it like the others. The address of every object is
// folded into a checksum that is printed, so the compiler cannot drop a malloc/free pair as
// unused. One operation is one allocation or one free; ns/op is the total time over the count.
import Glibc

enum Workload: String, CaseIterable {
    case pair, batch, random
}

/// The most objects the batch and random workloads hold at once.
let liveObjectLimit = 1_000

func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

@inline(__always) func touch(_ object: UnsafeMutableRawPointer, _ value: Int) {
    object.storeBytes(of: UInt64(truncatingIfNeeded: value), as: UInt64.self)
}

/// `iterations` pairs: 2 operations each.
@inline(never)
func runPairs<A: ObjectAllocator>(_ allocator: A, iterations: Int) -> UInt {
    var checksum: UInt = 0
    for iteration in 0..<iterations {
        let object = allocator.allocate()
        touch(object, iteration)
        checksum ^= UInt(bitPattern: object)
        allocator.free(object)
    }
    return checksum
}

/// `iterations` batches: 2 * liveObjectLimit operations each.
@inline(never)
func runBatches<A: ObjectAllocator>(_ allocator: A, iterations: Int,
                                    liveObjects: UnsafeMutablePointer<UnsafeMutableRawPointer>) -> UInt {
    var checksum: UInt = 0
    for _ in 0..<iterations {
        for index in 0..<liveObjectLimit {
            let object = allocator.allocate()
            touch(object, index)
            checksum ^= UInt(bitPattern: object)
            liveObjects[index] = object
        }
        for index in 0..<liveObjectLimit {
            allocator.free(liveObjects[index])
        }
    }
    return checksum
}

/// A fixed sequence of operations on numbered slots. Each entry is a slot number (below
/// liveObjectLimit), with `freeBit` set when the operation frees the slot's object rather
/// than allocating one into it. The sequence starts and ends with no object live.
struct OperationSequence {
    static let freeBit: UInt16 = 0x8000

    let operations: UnsafeMutableBufferPointer<UInt16>
    var count: Int { operations.count }

    /// About `length` operations. Each step allocates with probability (limit - live) / limit,
    /// else frees a uniformly chosen live object, so the live set hovers around half the limit
    /// and never passes it; at the end the remaining objects are freed in random order.
    init(seed: UInt64, length: Int) {
        var random = SeededRandom(seed: seed)
        var freeSlots = Array((0..<liveObjectLimit).reversed()).map { UInt16($0) }
        var liveSlots: [UInt16] = []
        var sequence: [UInt16] = []
        sequence.reserveCapacity(length + liveObjectLimit)
        func freeOne() {
            let position = random.next(below: liveSlots.count)
            let slot = liveSlots[position]
            liveSlots.swapAt(position, liveSlots.count - 1)
            liveSlots.removeLast()
            freeSlots.append(slot)
            sequence.append(slot | OperationSequence.freeBit)
        }
        while sequence.count + liveSlots.count < length {
            if random.next(below: liveObjectLimit) >= liveSlots.count {
                let slot = freeSlots.removeLast()
                liveSlots.append(slot)
                sequence.append(slot)
            } else {
                freeOne()
            }
        }
        while !liveSlots.isEmpty { freeOne() }
        operations = .allocate(capacity: sequence.count)
        _ = operations.initialize(from: sequence)
    }

    /// FNV-1a over the operations: two processes with the same digest replay the same sequence.
    var digest: UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for operation in operations {
            hash = (hash ^ UInt64(operation)) &* 0x100_0000_01b3
        }
        return hash
    }
}

/// `iterations` replays of `sequence`: sequence.count operations each.
@inline(never)
func runRandom<A: ObjectAllocator>(_ allocator: A, sequence: OperationSequence, iterations: Int,
                                   liveObjects: UnsafeMutablePointer<UnsafeMutableRawPointer>) -> UInt {
    var checksum: UInt = 0
    let operations = sequence.operations
    for _ in 0..<iterations {
        for operation in operations {
            let slot = Int(operation & ~OperationSequence.freeBit)
            if operation & OperationSequence.freeBit != 0 {
                allocator.free(liveObjects[slot])
            } else {
                let object = allocator.allocate()
                touch(object, slot)
                checksum ^= UInt(bitPattern: object)
                liveObjects[slot] = object
            }
        }
    }
    return checksum
}

struct Measurement {
    var operations: Int
    var nanoseconds: UInt64
    var checksum: UInt

    var nanosecondsPerOperation: Double { Double(nanoseconds) / Double(operations) }
}

/// Runs `workload` once untimed at a tenth of the size (warm-up: slabs, caches, page faults,
/// branch predictors), then once timed with about `targetOperations` operations.
func measure<A: ObjectAllocator>(_ workload: Workload, _ allocator: A, targetOperations: Int,
                                 sequence: OperationSequence) -> Measurement {
    let operationsPerIteration: Int
    switch workload {
    case .pair: operationsPerIteration = 2
    case .batch: operationsPerIteration = 2 * liveObjectLimit
    case .random: operationsPerIteration = sequence.count
    }
    let iterations = max(1, targetOperations / operationsPerIteration)
    // Room for the live objects' pointers. A local, not a global: a global here would be
    // initialised lazily, and checking that on every access would be timed too.
    let liveObjects = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: liveObjectLimit)
    defer { liveObjects.deallocate() }
    func run(_ count: Int) -> UInt {
        switch workload {
        case .pair: return runPairs(allocator, iterations: count)
        case .batch: return runBatches(allocator, iterations: count, liveObjects: liveObjects)
        case .random: return runRandom(allocator, sequence: sequence, iterations: count, liveObjects: liveObjects)
        }
    }
    var checksum = run(max(1, iterations / 10))
    let start = monotonicNanoseconds()
    checksum ^= run(iterations)
    let elapsed = monotonicNanoseconds() - start
    return Measurement(operations: iterations * operationsPerIteration, nanoseconds: elapsed, checksum: checksum)
}
