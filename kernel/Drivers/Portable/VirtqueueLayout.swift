// VirtqueueLayout.swift - where the three parts of a legacy virtqueue lie in its memory.
//
// A split virtqueue of `size` entries (virtio 1.x section 2.7; the legacy layout of section
// 4.1.5.1 "legacy interfaces") is one physically contiguous, page-aligned block:
//
//   offset 0                 descriptor table   16 bytes x size   (address, length, flags, next)
//   16 x size                available ring     flags, idx, ring[size] (u16), used_event (u16)
//   rounded up to 4096       used ring          flags, idx, ring[size] (u32 id, u32 len), avail_event
//
// The legacy interface gives the device only the page frame number of the block and the size
// (which the device fixes), so the used ring must start at the next 4 KiB boundary: the device
// computes the same offsets. Portable: the host tests check the offsets for the sizes QEMU uses.

public struct VirtqueueLayout: Equatable {
    public static let alignment = 4096
    public let size: Int

    /// Nil unless `size` is a power of two from 1 to 32768, as the specification requires.
    public init?(size: Int) {
        guard size > 0 && size <= 32768 && size & (size - 1) == 0 else { return nil }
        self.size = size
    }

    public var descriptorOffset: Int { 0 }
    public var availableOffset: Int { 16 * size }
    /// The available ring's flags, idx, ring and used_event.
    public var availableBytes: Int { 6 + 2 * size }
    public var usedOffset: Int { VirtqueueLayout.roundUp(availableOffset + availableBytes) }
    /// The used ring's flags, idx, ring and avail_event.
    public var usedBytes: Int { 6 + 8 * size }
    public var totalBytes: Int { usedOffset + VirtqueueLayout.roundUp(usedBytes) }
    public var pages: Int { totalBytes / VirtqueueLayout.alignment }

    static func roundUp(_ bytes: Int) -> Int { (bytes + alignment - 1) / alignment * alignment }

    /// Offset of available-ring slot `slot` (0 ..< size).
    public func availableSlotOffset(_ slot: Int) -> Int { availableOffset + 4 + 2 * slot }
    /// Offset of used-ring element `slot` (0 ..< size): its id, then its length.
    public func usedElementOffset(_ slot: Int) -> Int { usedOffset + 4 + 8 * slot }
}
