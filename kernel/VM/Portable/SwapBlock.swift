// SwapBlock.swift - swap metadata: where up to 16 consecutive pages of an object are on swap.
//
// The objects of the swblock zone, as in DragonFly's swap_pager.c: one SwapBlock covers the
// 16 pages of an anonymous object starting at a multiple of 16, and records the swap block of
// each page that is on swap. Blocks are found through a hash table of (object, page index / 16),
// sized to the swap device, and chained through `next` (SwapBlockTable.swift).

public struct SwapBlock {
    public static let pagesPerBlock = 16
    public static let none: UInt32 = UInt32.max

    /// The next swblock in the same hash chain (SwapBlockTable).
    public var next: UnsafeMutablePointer<SwapBlock>?
    public var object: UnsafeMutableRawPointer?
    /// Page index of slot 0 within the object: a multiple of pagesPerBlock.
    public var firstPage: UInt64
    /// How many slots hold a swap block.
    public var count: UInt32
    public var reserved: UInt32
    /// Swap block number of each page, or `none`.
    public var slots: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32,
                       UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32)

    public init(object: UnsafeMutableRawPointer?, firstPage: UInt64) {
        next = nil
        self.object = object
        self.firstPage = firstPage
        count = 0
        reserved = 0
        let n = SwapBlock.none
        slots = (n, n, n, n, n, n, n, n, n, n, n, n, n, n, n, n)
    }

    public func slot(_ index: Int) -> UInt32 {
        precondition(index >= 0 && index < SwapBlock.pagesPerBlock, "SwapBlock: slot out of range")
        var copy = slots
        return withUnsafeBytes(of: &copy) { $0.load(fromByteOffset: index * 4, as: UInt32.self) }
    }

    public mutating func setSlot(_ index: Int, _ value: UInt32) {
        precondition(index >= 0 && index < SwapBlock.pagesPerBlock, "SwapBlock: slot out of range")
        let old = slot(index)
        withUnsafeMutableBytes(of: &slots) { $0.storeBytes(of: value, toByteOffset: index * 4, as: UInt32.self) }
        if old == SwapBlock.none && value != SwapBlock.none { count += 1 }
        if old != SwapBlock.none && value == SwapBlock.none { count -= 1 }
    }
}
