// SwapBlockTableTests.swift - the swblock hash table: its size from the disk and memory, a
// seeded workload against a Dictionary, and chains that stay short for the keys the kernel makes.
import Testing
@testable import KernelPortable

/// A table over host memory, the swblocks it holds, and the model: key -> swblock.
final class SwapBlockTableFixture {
    var table: SwapBlockTable
    let storage: UnsafeMutablePointer<SwapBlockTable.BlockRef?>
    struct Key: Hashable {
        var object: UInt
        var firstPage: UInt64
    }
    var model: [Key: SwapBlockTable.BlockRef] = [:]

    init(buckets: Int) {
        storage = .allocate(capacity: buckets)
        table = SwapBlockTable(bucketCount: buckets, storage: storage)
    }

    deinit {
        for block in model.values { block.deallocate() }
        storage.deallocate()
    }

    func pointer(_ object: UInt) -> UnsafeMutableRawPointer? { UnsafeMutableRawPointer(bitPattern: object) }

    /// Looks the key up, and inserts a new swblock when it is missing (what assign does).
    @discardableResult
    func findOrInsert(_ key: Key) -> SwapBlockTable.BlockRef {
        if let found = table.find(pointer(key.object), key.firstPage) { return found }
        let block = SwapBlockTable.BlockRef.allocate(capacity: 1)
        block.initialize(to: SwapBlock(object: pointer(key.object), firstPage: key.firstPage))
        table.insert(block)
        model[key] = block
        return block
    }

    func remove(_ key: Key) {
        let block = model.removeValue(forKey: key)!
        table.remove(block)
        block.deallocate()
    }
}

@Suite struct SwapBlockTableTests {
    static let mebibyte: UInt64 = 1 << 20
    static let gibibyte: UInt64 = 1 << 30

    @Test func bucketCountFollowsTheDiskUpToAShareOfMemory() {
        // One bucket per 16 swap blocks, rounded up to a power of two.
        #expect(SwapBlockTable.bucketCount(swapBlocks: 65_536, memoryBytes: 256 * Self.mebibyte) == 4096)
        #expect(SwapBlockTable.bucketCount(swapBlocks: 65_537, memoryBytes: 256 * Self.mebibyte) == 8192)
        // A tiny disk still gets the minimum.
        #expect(SwapBlockTable.bucketCount(swapBlocks: 512, memoryBytes: 16 * Self.mebibyte) == SwapBlockTable.minimumBuckets)
        // A 1 TiB disk (2^28 blocks would want 2^24 buckets, 128 MiB): capped at 1/128 of RAM.
        let terabyteBlocks: UInt64 = 1 << 28
        #expect(SwapBlockTable.bucketCount(swapBlocks: terabyteBlocks, memoryBytes: 256 * Self.mebibyte) == 1 << 18)
        #expect(SwapBlockTable.bucketCount(swapBlocks: terabyteBlocks, memoryBytes: 16 * Self.mebibyte) == 1 << 14)
        #expect(SwapBlockTable.bucketCount(swapBlocks: terabyteBlocks, memoryBytes: 16 * Self.gibibyte) == 1 << 24)
        // A memory size that is not a power of two rounds the cap down.
        #expect(SwapBlockTable.bucketCount(swapBlocks: terabyteBlocks, memoryBytes: 24 * Self.mebibyte) == 1 << 14)
        for swapBlocks: UInt64 in [1, 100, 4095, 1 << 20, 123_456_789, UInt64(UInt32.max)] {
            for memory: UInt64 in [Self.mebibyte, 16 * Self.mebibyte, 3 * Self.gibibyte, 1 << 40] {
                let count = SwapBlockTable.bucketCount(swapBlocks: swapBlocks, memoryBytes: memory)
                #expect(count & (count - 1) == 0, "a power of two")
                #expect(count >= SwapBlockTable.minimumBuckets && count <= SwapBlockTable.maximumBuckets)
                #expect(count == SwapBlockTable.minimumBuckets || UInt64(count) * 8 <= memory / SwapBlockTable.memoryFraction,
                        "\(count) buckets for \(memory) bytes: more than 1/128 of memory")
            }
        }
    }

    /// Against a Dictionary: seeded lookups, inserts and removes over keys from a few objects
    /// (clustered, as an object's swblocks are); the table agrees with the model after every
    /// step and is consistent every few hundred. Tables smaller and larger than the key set.
    @Test(arguments: [(1, 1 as UInt64), (64, 2), (1024, 3), (64, 4)])
    func seededOperationsMatchADictionary(buckets: Int, seed: UInt64) {
        let fixture = SwapBlockTableFixture(buckets: buckets)
        var random = SeededRandom(seed: seed)
        let objects: [UInt] = (0..<6).map { 0x10_0000 + UInt($0) * 0x60 }
        var lookups: UInt64 = 0
        for step in 0..<20_000 {
            let key = SwapBlockTableFixture.Key(object: objects[random.next(below: objects.count)],
                                                firstPage: UInt64(random.next(below: 200)) * 16)
            switch random.next(below: 10) {
            case 0..<4:
                let found = fixture.table.find(fixture.pointer(key.object), key.firstPage)
                lookups += 1
                #expect(found == fixture.model[key], "seed \(seed) step \(step): lookup")
            case 4..<7:
                let before = fixture.model[key]
                let block = fixture.findOrInsert(key)
                lookups += 1
                #expect(before == nil || before == block, "seed \(seed) step \(step): insert found another swblock")
                #expect(block.pointee.object == fixture.pointer(key.object) && block.pointee.firstPage == key.firstPage)
            default:
                if fixture.model[key] != nil { fixture.remove(key) }
            }
            #expect(fixture.table.count == fixture.model.count, "seed \(seed) step \(step): count")
            #expect(fixture.table.peakCount >= fixture.table.count)
            if step % 500 == 0 { #expect(fixture.table.isConsistent(), "seed \(seed) step \(step): consistency") }
        }
        #expect(fixture.table.isConsistent())
        #expect(fixture.table.lookups == lookups)
        #expect(fixture.table.currentLongestChain() <= fixture.table.longestChain)
        for (key, block) in fixture.model {
            #expect(fixture.table.find(fixture.pointer(key.object), key.firstPage) == block)
        }
        for key in Array(fixture.model.keys) { fixture.remove(key) }
        #expect(fixture.table.count == 0 && fixture.table.currentLongestChain() == 0 && fixture.table.isConsistent())
    }

    /// The keys the kernel makes - a few objects 96 bytes apart in a slab, each with thousands
    /// of consecutive swblocks, and many small objects - spread over a table of as many buckets
    /// as keys: no chain is longer than 8, and a successful lookup looks at fewer than 2
    /// swblocks on average (a uniform hash gives a longest chain of ~7 and 1 + load/2 = 1.5 at
    /// this load; the low bits of page ^ object, tried as a mutation, gave 2.6: clustered keys
    /// pile up in neighbouring buckets).
    @Test func chainsStayShortForTheKernelsKeys() {
        let fixture = SwapBlockTableFixture(buckets: 1 << 14)
        for object in 0..<4 {
            for chunk in 0..<3000 { fixture.findOrInsert(.init(object: 0xFFFF_8000_0000 + UInt(object) * 96, firstPage: UInt64(chunk) * 16)) }
        }
        for object in 0..<1000 {
            for chunk in 0..<4 { fixture.findOrInsert(.init(object: 0x20_0000 + UInt(object) * 96, firstPage: UInt64(chunk) * 16)) }
        }
        #expect(fixture.model.count == 16_000)
        #expect(fixture.table.longestChain <= 8, "longest chain \(fixture.table.longestChain) for 16,000 swblocks in 16,384 buckets")
        #expect(fixture.table.currentLongestChain() == fixture.table.longestChain)
        // Every lookup of a present key looks at no more than the chain it is on.
        let before = fixture.table.probes
        for key in fixture.model.keys { _ = fixture.table.find(fixture.pointer(key.object), key.firstPage) }
        let average = Double(fixture.table.probes - before) / Double(fixture.model.count)
        #expect(average < 2, "average probes per successful lookup: \(average)")
    }

    @Test func removingFromTheMiddleOfAChainKeepsTheRest() {
        let fixture = SwapBlockTableFixture(buckets: 1)
        let keys = (0..<5).map { SwapBlockTableFixture.Key(object: 0x1000, firstPage: UInt64($0) * 16) }
        for key in keys { fixture.findOrInsert(key) }
        #expect(fixture.table.longestChain == 5)
        fixture.remove(keys[2])
        fixture.remove(keys[4])       // the oldest: the chain's tail
        fixture.remove(keys[0])       // the newest of the rest: the head
        #expect(fixture.table.isConsistent() && fixture.table.count == 2)
        #expect(fixture.table.find(fixture.pointer(0x1000), 16) == fixture.model[keys[1]])
        #expect(fixture.table.find(fixture.pointer(0x1000), 48) == fixture.model[keys[3]])
        #expect(fixture.table.find(fixture.pointer(0x1000), 32) == nil)
    }
}
