// EarlyHeap.swift - a small first-fit heap over a fixed region, for the time before the
// real allocators exist.
//
// Embedded Swift allocates through posix_memalign/free as soon as any array or class is used,
// which is long before the page allocator and the zones are up. This heap serves those early
// requests from a static region in the kernel image. It is deliberately simple: blocks carry a
// 16-byte header (size and a state word), allocation is first fit with splitting, free merges
// the block with its successor, and a failed search merges all neighbours once and retries.
// A double free or a free of a pointer it never handed out is detected through the state word.
// Once the zones exist (kernel/Mem/Kmalloc.swift) new requests go there; frees of early-heap
// pointers still come back here, recognised by address.

public struct EarlyHeap {
    static let headerSize = 16
    static let minimumBlock = 32
    static let inUseMagic: UInt64 = 0xA110_CA7E_D0B1_0C00
    static let freeMagic: UInt64 = 0xF2EE_B10C_F2EE_B10C

    public let base: UnsafeMutableRawPointer
    public let size: Int
    public private(set) var bytesInUse = 0
    public private(set) var peakBytesInUse = 0
    public private(set) var allocations = 0
    public private(set) var frees = 0

    /// Errors the heap reports instead of corrupting itself.
    public enum FreeError: Equatable {
        case notFromThisHeap
        case doubleFree
        case corruptHeader
    }

    public init(base: UnsafeMutableRawPointer, size: Int) {
        precondition(Int(bitPattern: base) % 16 == 0, "EarlyHeap: base must be 16-byte aligned")
        precondition(size >= EarlyHeap.minimumBlock, "EarlyHeap: region too small")
        self.base = base
        self.size = size & ~15
        setHeader(base, size: self.size, free: true)
    }

    public func contains(_ pointer: UnsafeRawPointer) -> Bool {
        pointer >= UnsafeRawPointer(base) && pointer < UnsafeRawPointer(base + size)
    }

    /// Allocates `byteCount` bytes aligned to `alignment` (a power of two), or returns nil.
    public mutating func allocate(byteCount: Int, alignment: Int) -> UnsafeMutableRawPointer? {
        precondition(alignment > 0 && alignment & (alignment - 1) == 0, "EarlyHeap: alignment must be a power of two")
        let payload = max(16, (byteCount + 15) & ~15)
        if let found = search(payload: payload, alignment: max(16, alignment)) { return found }
        mergeAllFreeNeighbours()
        return search(payload: payload, alignment: max(16, alignment))
    }

    /// Frees a pointer returned by `allocate`.
    public mutating func free(_ pointer: UnsafeMutableRawPointer) -> FreeError? {
        guard contains(pointer), Int(bitPattern: pointer) % 16 == 0, pointer - EarlyHeap.headerSize >= base else {
            return .notFromThisHeap
        }
        let block = pointer - EarlyHeap.headerSize
        let state = block.load(fromByteOffset: 8, as: UInt64.self)
        if state == EarlyHeap.freeMagic { return .doubleFree }
        guard state == EarlyHeap.inUseMagic else { return .corruptHeader }
        let blockSize = blockSizeAt(block)
        setHeader(block, size: blockSize, free: true)
        bytesInUse -= blockSize
        frees += 1
        mergeWithSuccessors(block)
        return nil
    }

    /// Walks every block; true when the headers tile the region exactly.
    public func isConsistent() -> Bool {
        var offset = 0
        var used = 0
        while offset < size {
            let block = base + offset
            let blockSize = blockSizeAt(block)
            let state = block.load(fromByteOffset: 8, as: UInt64.self)
            guard blockSize >= EarlyHeap.minimumBlock, blockSize % 16 == 0, offset + blockSize <= size,
                  state == EarlyHeap.freeMagic || state == EarlyHeap.inUseMagic else { return false }
            if state == EarlyHeap.inUseMagic { used += blockSize }
            offset += blockSize
        }
        return offset == size && used == bytesInUse
    }

    // MARK: - Blocks

    func blockSizeAt(_ block: UnsafeMutableRawPointer) -> Int {
        Int(block.load(as: UInt64.self))
    }

    func isFree(_ block: UnsafeMutableRawPointer) -> Bool {
        block.load(fromByteOffset: 8, as: UInt64.self) == EarlyHeap.freeMagic
    }

    func setHeader(_ block: UnsafeMutableRawPointer, size: Int, free: Bool) {
        block.storeBytes(of: UInt64(size), as: UInt64.self)
        block.storeBytes(of: free ? EarlyHeap.freeMagic : EarlyHeap.inUseMagic, toByteOffset: 8, as: UInt64.self)
    }

    mutating func search(payload: Int, alignment: Int) -> UnsafeMutableRawPointer? {
        var offset = 0
        while offset < size {
            let block = base + offset
            let blockSize = blockSizeAt(block)
            if isFree(block), let result = carve(block, blockSize: blockSize, payload: payload, alignment: alignment) {
                return result
            }
            offset += blockSize
        }
        return nil
    }

    /// Tries to place the payload in the free block; splits off a leading free block when the
    /// alignment demands a gap, and a trailing one when enough is left over.
    mutating func carve(_ block: UnsafeMutableRawPointer, blockSize: Int, payload: Int, alignment: Int) -> UnsafeMutableRawPointer? {
        let firstPayload = Int(bitPattern: block) + EarlyHeap.headerSize
        var payloadAddress = (firstPayload + alignment - 1) & ~(alignment - 1)
        // A leading gap must be big enough to be a block of its own.
        while payloadAddress != firstPayload && payloadAddress - firstPayload < EarlyHeap.minimumBlock {
            payloadAddress += alignment
        }
        let lead = payloadAddress - firstPayload
        guard lead + EarlyHeap.headerSize + payload <= blockSize else { return nil }
        var start = block
        var remaining = blockSize
        if lead > 0 {
            setHeader(block, size: lead, free: true)
            start = block + lead
            remaining -= lead
        }
        var used = EarlyHeap.headerSize + payload
        if remaining - used >= EarlyHeap.minimumBlock {
            setHeader(start + used, size: remaining - used, free: true)
        } else {
            used = remaining
        }
        setHeader(start, size: used, free: false)
        bytesInUse += used
        peakBytesInUse = max(peakBytesInUse, bytesInUse)
        allocations += 1
        return start + EarlyHeap.headerSize
    }

    func mergeWithSuccessors(_ block: UnsafeMutableRawPointer) {
        var blockSize = blockSizeAt(block)
        while block + blockSize < base + size {
            let next = block + blockSize
            guard isFree(next) else { break }
            blockSize += blockSizeAt(next)
        }
        setHeader(block, size: blockSize, free: true)
    }

    func mergeAllFreeNeighbours() {
        var offset = 0
        while offset < size {
            let block = base + offset
            if isFree(block) { mergeWithSuccessors(block) }
            offset += blockSizeAt(block)
        }
    }
}
