// SwapBlockTable.swift - the hash table that finds an object's swblocks, sized to the swap disk.
//
// A SwapBlock (SwapBlock.swift) is keyed by (object, first page); this table chains them in
// buckets by a hash of that key. The bucket array is a power of two long and chosen once, at
// boot, from the swap device: `bucketCount(swapBlocks:memoryBytes:)` gives one bucket per
// swblock a full swap device would need if every swblock were full (swap blocks / 16), so the
// chains stay about one long even when all of swap is in use - and caps the array at 1/128 of
// memory, because swblocks live in kernel memory too: at the cap there are four buckets per
// page of RAM, and averaging one swblock per bucket would already take about a tenth of RAM in
// swblocks. A smaller swap, or a larger RAM, gets a proportionally smaller table; chains only
// grow beyond ~1 when both the disk and the paged memory are far larger than RAM.
//
// Why a hash sized at boot and not a per-object radix tree: a radix tree would need interior
// nodes as well as swblocks, so an assignment on the pageout path could need several
// allocations from the reserves instead of exactly one swblock (docs/reserves.md bounds one),
// and every object would carry a root. The table needs one allocation at boot, none while
// paging, and lookups cost a hash and a chain of ~1.
//
// The hash is Fibonacci hashing of a SplitMix64-mixed key: the object address and the swblock
// number (first page / 16) are mixed, multiplied by 2^64/phi and the top bits taken, so that
// consecutive swblocks of one object and objects 16 bytes apart all land far apart.
//
// This file knows nothing about locking: the caller serialises every call (the kernel calls it
// with interrupts off, kernel/VM/SwapMetadata.swift) and provides the bucket storage. It never
// allocates; freeing a swblock that `remove` returned to the caller is the caller's business.

public struct SwapBlockTable {
    public typealias BlockRef = UnsafeMutablePointer<SwapBlock>

    /// Smallest and largest tables `bucketCount` picks (8 bytes a bucket).
    public static let minimumBuckets = 64
    public static let maximumBuckets = 1 << 28
    /// The table may take at most this fraction of memory.
    public static let memoryFraction: UInt64 = 128

    /// The bucket heads: bucket i's chain starts at buckets[i].
    let buckets: UnsafeMutablePointer<BlockRef?>
    public let bucketCount: Int
    /// 64 - log2(bucketCount): a hash's top log2(bucketCount) bits pick the bucket.
    let shift: UInt64
    /// Swblocks in the table.
    public private(set) var count = 0
    /// The most swblocks there have ever been at once: peakCount / bucketCount is the highest
    /// load the table has carried.
    public private(set) var peakCount = 0
    /// The longest chain there has ever been (a high-water mark, measured on insert, where the
    /// whole chain is walked anyway).
    public private(set) var longestChain = 0
    /// Searches made and swblocks looked at during them: probes / lookups is the average
    /// chain walked.
    public private(set) var lookups: UInt64 = 0
    public private(set) var probes: UInt64 = 0

    /// The bucket count for a swap device of `swapBlocks` blocks on a machine with
    /// `memoryBytes` of RAM: the power of two at or above swapBlocks / 16, at most 1/128 of
    /// memory (rounded down to a power of two), and within [minimumBuckets, maximumBuckets].
    public static func bucketCount(swapBlocks: UInt64, memoryBytes: UInt64) -> Int {
        let wanted = max(UInt64(minimumBuckets), (swapBlocks + UInt64(SwapBlock.pagesPerBlock) - 1) / UInt64(SwapBlock.pagesPerBlock))
        var count = roundUpToPowerOfTwo(wanted)
        let memoryCap = roundDownToPowerOfTwo(max(1, memoryBytes / memoryFraction / 8))
        count = min(count, memoryCap, UInt64(maximumBuckets))
        return Int(max(count, UInt64(minimumBuckets)))
    }

    static func roundUpToPowerOfTwo(_ value: UInt64) -> UInt64 {
        value <= 1 ? 1 : UInt64(1) << UInt64(64 - (value - 1).leadingZeroBitCount)
    }

    static func roundDownToPowerOfTwo(_ value: UInt64) -> UInt64 {
        UInt64(1) << UInt64(63 - value.leadingZeroBitCount)
    }

    /// `storage` must hold `bucketCount` pointers; `bucketCount` must be a power of two.
    public init(bucketCount: Int, storage: UnsafeMutablePointer<BlockRef?>) {
        precondition(bucketCount > 0 && bucketCount & (bucketCount - 1) == 0, "swblock table: bucket count not a power of two")
        self.bucketCount = bucketCount
        shift = UInt64(64 - bucketCount.trailingZeroBitCount)
        buckets = storage
        buckets.initialize(repeating: nil, count: bucketCount)
    }

    /// The bucket of the swblock of `object` whose slot 0 is page `firstPage`.
    public func bucket(_ object: UnsafeMutableRawPointer?, _ firstPage: UInt64) -> Int {
        // SplitMix64's finaliser over the pair, then Fibonacci hashing: the top bits.
        var z = UInt64(UInt(bitPattern: object)) &+ (firstPage / UInt64(SwapBlock.pagesPerBlock)) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        // A shift by 64 (a one-bucket table) would trap; bucketCount 1 means bucket 0.
        return shift == 64 ? 0 : Int((z &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    /// The swblock of `object` whose slot 0 is page `firstPage`, if there is one.
    public mutating func find(_ object: UnsafeMutableRawPointer?, _ firstPage: UInt64) -> BlockRef? {
        lookups &+= 1
        var current = buckets[bucket(object, firstPage)]
        while let block = current {
            probes &+= 1
            if block.pointee.object == object && block.pointee.firstPage == firstPage { return block }
            current = block.pointee.next
        }
        return nil
    }

    /// Adds `block`, whose key no swblock in the table has (the caller has just looked).
    public mutating func insert(_ block: BlockRef) {
        let index = bucket(block.pointee.object, block.pointee.firstPage)
        var length = 1
        var current = buckets[index]
        while let other = current {
            precondition(other.pointee.object != block.pointee.object || other.pointee.firstPage != block.pointee.firstPage,
                         "swblock table: a second swblock for the same pages")
            length += 1
            current = other.pointee.next
        }
        block.pointee.next = buckets[index]
        buckets[index] = block
        count += 1
        if count > peakCount { peakCount = count }
        if length > longestChain { longestChain = length }
    }

    /// Takes `block`, which is in the table, out of its chain.
    public mutating func remove(_ block: BlockRef) {
        let index = bucket(block.pointee.object, block.pointee.firstPage)
        var link: BlockRef? = nil
        var current = buckets[index]
        while let candidate = current, candidate != block {
            link = candidate
            current = candidate.pointee.next
        }
        precondition(current == block, "swblock table: removing a swblock that is not in the table")
        if let link = link { link.pointee.next = block.pointee.next } else { buckets[index] = block.pointee.next }
        block.pointee.next = nil
        count -= 1
    }

    /// The longest chain now, by walking every bucket: O(buckets), for tests and reports.
    public func currentLongestChain() -> Int {
        var longest = 0
        for index in 0..<bucketCount {
            var length = 0
            var current = buckets[index]
            while let block = current {
                length += 1
                current = block.pointee.next
            }
            longest = max(longest, length)
        }
        return longest
    }

    /// Every swblock is in the bucket its key hashes to, once; `count` counts them; no chain is
    /// longer than `longestChain`. For tests and debug checks: O(buckets + swblocks).
    public func isConsistent() -> Bool {
        var total = 0
        for index in 0..<bucketCount {
            var length = 0
            var current = buckets[index]
            while let block = current {
                if bucket(block.pointee.object, block.pointee.firstPage) != index { return false }
                if block.pointee.firstPage % UInt64(SwapBlock.pagesPerBlock) != 0 { return false }
                length += 1
                if length > count { return false }          // a cycle
                var earlier = buckets[index]
                while let other = earlier, other != block {
                    if other.pointee.object == block.pointee.object && other.pointee.firstPage == block.pointee.firstPage { return false }
                    earlier = other.pointee.next
                }
                current = block.pointee.next
            }
            if length > longestChain { return false }
            total += length
        }
        return total == count
    }
}
