// SwapSpace.swift - which blocks of the swap device are in use.
//
// One bit per 4 KiB block, searched next-fit from where the last allocation ended, so that
// consecutive page-outs land in consecutive blocks. Full is a normal condition, reported as
// nil; freeing a free block is a bug and stops the caller.

public struct SwapSpace {
    public let blocks: UInt32
    let words: UnsafeMutablePointer<UInt64>
    public private(set) var used: UInt32 = 0
    var cursor: UInt32 = 0

    public static func wordCount(blocks: UInt32) -> Int { (Int(blocks) + 63) / 64 }

    /// `storage` must hold wordCount(blocks:) words.
    public init(blocks: UInt32, storage: UnsafeMutablePointer<UInt64>) {
        self.blocks = blocks
        words = storage
        storage.initialize(repeating: 0, count: SwapSpace.wordCount(blocks: blocks))
    }

    public var free: UInt32 { blocks - used }
    public var isFull: Bool { used == blocks }

    public func isAllocated(_ block: UInt32) -> Bool {
        precondition(block < blocks, "swap space: block out of range")
        return words[Int(block / 64)] & (UInt64(1) << UInt64(block % 64)) != 0
    }

    public mutating func allocate() -> UInt32? {
        guard used < blocks else { return nil }
        var block = cursor
        for _ in 0..<blocks {
            if !isAllocated(block) {
                words[Int(block / 64)] |= UInt64(1) << UInt64(block % 64)
                used += 1
                cursor = block + 1 == blocks ? 0 : block + 1
                return block
            }
            block = block + 1 == blocks ? 0 : block + 1
        }
        return nil
    }

    public mutating func free(_ block: UInt32) {
        precondition(isAllocated(block), "swap space: freeing a free block")
        words[Int(block / 64)] &= ~(UInt64(1) << UInt64(block % 64))
        used -= 1
    }
}
