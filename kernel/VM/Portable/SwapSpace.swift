// SwapSpace.swift - which blocks of the swap device are in use.
//
// One bit per 4 KiB block, in 64-bit words, and above them one summary bit per word that is
// set while the word is full. An allocation searches next-fit from where the last one ended,
// so that consecutive page-outs land in consecutive blocks: it skips 64 full words at a time
// by looking at one summary word, and takes the first clear bit of the first word that is
// not full, with bit scans instead of a loop over bits. Finding a free block among n costs at
// most n / 4096 summary words (65,536 for a 1 TiB disk, when it is nearly full) and usually
// one; freeing is O(1). Full is a normal condition, reported as nil; freeing a free block is a
// bug and stops the caller.
//
// The caller provides the storage, wordCount(blocks:) words, and the lock (the swap device
// changes it with interrupts off).

public struct SwapSpace {
    public let blocks: UInt32
    /// The block bitmap: bit b of word w is block 64w + b; bits past `blocks` are set, so that
    /// they are never handed out and a last, partial word can be full.
    let words: UnsafeMutablePointer<UInt64>
    let wordTotal: Int
    /// Bit w of summary word s is set while word 64s + w is full (bits past the last word set).
    let summary: UnsafeMutablePointer<UInt64>
    let summaryTotal: Int
    public private(set) var used: UInt32 = 0
    /// The block the next search starts at: the one after the last allocated.
    var cursor: UInt32 = 0

    static func bitmapWords(blocks: UInt32) -> Int { (Int(blocks) + 63) / 64 }
    static func summaryWords(blocks: UInt32) -> Int { (bitmapWords(blocks: blocks) + 63) / 64 }

    /// Words of storage for a device of `blocks` blocks: the bitmap and its summary.
    public static func wordCount(blocks: UInt32) -> Int { bitmapWords(blocks: blocks) + summaryWords(blocks: blocks) }

    /// `storage` must hold wordCount(blocks:) words.
    public init(blocks: UInt32, storage: UnsafeMutablePointer<UInt64>) {
        precondition(blocks > 0, "swap space: no blocks")
        self.blocks = blocks
        wordTotal = SwapSpace.bitmapWords(blocks: blocks)
        summaryTotal = SwapSpace.summaryWords(blocks: blocks)
        words = storage
        summary = storage + wordTotal
        words.initialize(repeating: 0, count: wordTotal)
        summary.initialize(repeating: 0, count: summaryTotal)
        // Blocks past the end are permanently taken, and words past the end permanently full.
        let tail = Int(blocks) % 64
        if tail != 0 {
            words[wordTotal - 1] = ~0 << UInt64(tail)
        }
        let summaryTail = wordTotal % 64
        if summaryTail != 0 {
            summary[summaryTotal - 1] = ~0 << UInt64(summaryTail)
        }
    }

    public var free: UInt32 { blocks - used }
    public var isFull: Bool { used == blocks }

    public func isAllocated(_ block: UInt32) -> Bool {
        precondition(block < blocks, "swap space: block out of range")
        return words[Int(block / 64)] & (UInt64(1) << UInt64(block % 64)) != 0
    }

    public mutating func allocate() -> UInt32? {
        guard used < blocks else { return nil }
        // The rest of the cursor's word first, then the next word that is not full (wrapping
        // round to the cursor's word, whose clear bits are then all below the cursor).
        let cursorWord = Int(cursor / 64)
        let rest = ~words[cursorWord] & (~0 << UInt64(cursor % 64))
        let word: Int
        let bit: Int
        if rest != 0 {
            word = cursorWord
            bit = rest.trailingZeroBitCount
        } else {
            guard let found = wordWithRoom(from: cursorWord + 1 == wordTotal ? 0 : cursorWord + 1) else { return nil }
            word = found
            bit = (~words[word]).trailingZeroBitCount
        }
        words[word] |= UInt64(1) << UInt64(bit)
        if words[word] == ~0 { summary[word / 64] |= UInt64(1) << UInt64(word % 64) }
        used += 1
        let block = UInt32(word * 64 + bit)
        cursor = block + 1 == blocks ? 0 : block + 1
        return block
    }

    /// Takes `block` itself if it is free - how a page-out cluster gets the blocks that follow
    /// its first page's, so that the cluster is one contiguous write. False when it is taken
    /// (or past the end); the cursor moves past it as after `allocate`.
    public mutating func allocate(exactly block: UInt32) -> Bool {
        guard block < blocks, !isAllocated(block) else { return false }
        let word = Int(block / 64)
        words[word] |= UInt64(1) << UInt64(block % 64)
        if words[word] == ~0 { summary[word / 64] |= UInt64(1) << UInt64(word % 64) }
        used += 1
        cursor = block + 1 == blocks ? 0 : block + 1
        return true
    }

    public mutating func free(_ block: UInt32) {
        precondition(isAllocated(block), "swap space: freeing a free block")
        let word = Int(block / 64)
        words[word] &= ~(UInt64(1) << UInt64(block % 64))
        summary[word / 64] &= ~(UInt64(1) << UInt64(word % 64))
        used -= 1
    }

    /// The first word that is not full, looking circularly from word `first` on (and round to
    /// `first` again), through the summary: 64 words per summary word.
    func wordWithRoom(from first: Int) -> Int? {
        var index = first / 64
        var room = ~summary[index] & (~0 << UInt64(first % 64))
        for _ in 0...summaryTotal {
            if room != 0 { return index * 64 + room.trailingZeroBitCount }
            index = index + 1 == summaryTotal ? 0 : index + 1
            room = ~summary[index]
        }
        return nil
    }

    /// Every invariant: the summary matches the bitmap, `used` counts the set bits, the blocks
    /// past the end are taken. For tests and debug checks.
    public func isConsistent() -> Bool {
        var count = 0
        for word in 0..<wordTotal {
            count += words[word].nonzeroBitCount
            let full = words[word] == ~0
            if full != (summary[word / 64] & (UInt64(1) << UInt64(word % 64)) != 0) { return false }
        }
        let padding = wordTotal * 64 - Int(blocks)
        return count - padding == Int(used)
    }
}
