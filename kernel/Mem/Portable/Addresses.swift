// Addresses.swift - typed physical and virtual addresses, page sizes, and ranges.
//
// A bare UInt64 could be a physical address, a virtual one, a page frame number or a count;
// these wrappers keep them apart. They are plain values with no behaviour beyond arithmetic
// and alignment, shared by the portable core and the kernel.

public let pageShift: UInt64 = 12
public let pageSize: UInt64 = 1 << pageShift
public let largePageSize: UInt64 = 2 << 20

@inline(__always)
public func roundUp(_ value: UInt64, to alignment: UInt64) -> UInt64 {
    (value &+ alignment &- 1) & ~(alignment &- 1)
}

@inline(__always)
public func roundDown(_ value: UInt64, to alignment: UInt64) -> UInt64 {
    value & ~(alignment &- 1)
}

/// A physical address: where a byte is in RAM (or device memory), as the CPU's page tables see it.
public struct PhysicalAddress: RawRepresentable, Comparable, Hashable {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ value: UInt64) { rawValue = value }

    public static func < (a: PhysicalAddress, b: PhysicalAddress) -> Bool { a.rawValue < b.rawValue }
    public static func + (a: PhysicalAddress, bytes: UInt64) -> PhysicalAddress { PhysicalAddress(a.rawValue + bytes) }
    public static func += (a: inout PhysicalAddress, bytes: UInt64) { a.rawValue += bytes }
    public static func - (a: PhysicalAddress, bytes: UInt64) -> PhysicalAddress { PhysicalAddress(a.rawValue - bytes) }
    /// The distance in bytes from `b` up to `a`.
    public static func - (a: PhysicalAddress, b: PhysicalAddress) -> UInt64 { a.rawValue - b.rawValue }

    public var frameNumber: UInt64 { rawValue >> pageShift }
    public var isPageAligned: Bool { isAligned(to: pageSize) }
    public init(frameNumber: UInt64) { rawValue = frameNumber << pageShift }

    /// `alignment` is a power of two.
    public func isAligned(to alignment: UInt64) -> Bool { rawValue & (alignment &- 1) == 0 }
    public func roundedDown(to alignment: UInt64) -> PhysicalAddress { PhysicalAddress(roundDown(rawValue, to: alignment)) }
    public func roundedUp(to alignment: UInt64) -> PhysicalAddress { PhysicalAddress(roundUp(rawValue, to: alignment)) }
}

/// A kernel virtual address. Arithmetic is in bytes: address + bytes is an address, address -
/// address is a byte count. Sizes and counts stay UInt64.
public struct VirtualAddress: RawRepresentable, Comparable, Hashable {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ value: UInt64) { rawValue = value }

    public static func < (a: VirtualAddress, b: VirtualAddress) -> Bool { a.rawValue < b.rawValue }
    public static func + (a: VirtualAddress, bytes: UInt64) -> VirtualAddress { VirtualAddress(a.rawValue + bytes) }
    public static func += (a: inout VirtualAddress, bytes: UInt64) { a.rawValue += bytes }
    public static func - (a: VirtualAddress, bytes: UInt64) -> VirtualAddress { VirtualAddress(a.rawValue - bytes) }
    /// The distance in bytes from `b` up to `a`.
    public static func - (a: VirtualAddress, b: VirtualAddress) -> UInt64 { a.rawValue - b.rawValue }

    public var isPageAligned: Bool { isAligned(to: pageSize) }
    /// `alignment` is a power of two.
    public func isAligned(to alignment: UInt64) -> Bool { rawValue & (alignment &- 1) == 0 }
    public func roundedDown(to alignment: UInt64) -> VirtualAddress { VirtualAddress(roundDown(rawValue, to: alignment)) }
    public func roundedUp(to alignment: UInt64) -> VirtualAddress { VirtualAddress(roundUp(rawValue, to: alignment)) }
    /// The byte offset of the address within its `alignment`-sized block.
    public func offset(within alignment: UInt64) -> UInt64 { rawValue & (alignment &- 1) }

    public var pointer: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: UInt(rawValue))! }
    public init(_ pointer: UnsafeRawPointer) { rawValue = UInt64(UInt(bitPattern: pointer)) }
}

extension LogMessage.Interpolation {
    /// A virtual address, 16 hex digits (as `address:` prints a UInt64).
    public mutating func appendInterpolation(address value: VirtualAddress) { appendInterpolation(address: value.rawValue) }
    public mutating func appendInterpolation(address value: PhysicalAddress) { appendInterpolation(address: value.rawValue) }
    /// An address in hex, as few digits as it needs (as `hex:` prints a UInt64).
    public mutating func appendInterpolation(hex value: VirtualAddress, digits: Int = 0) { appendInterpolation(hex: value.rawValue, digits: digits) }
    public mutating func appendInterpolation(hex value: PhysicalAddress, digits: Int = 0) { appendInterpolation(hex: value.rawValue, digits: digits) }
}

/// A half-open range of physical memory, [start, end). Its ends are PhysicalAddresses, so a
/// range's start can be handed to whatever takes a physical address (the boot page allocator
/// steals from it, the pmap maps it) without a conversion that could mean anything.
public struct PhysicalRange: Equatable {
    public var start: PhysicalAddress
    public var end: PhysicalAddress

    public init(start: PhysicalAddress, end: PhysicalAddress) {
        self.start = start
        self.end = end
    }

    public var byteCount: UInt64 { end > start ? end - start : 0 }
    public var pageCount: UInt64 { byteCount >> pageShift }
    public var isEmpty: Bool { end <= start }

    public func contains(_ address: PhysicalAddress) -> Bool { address >= start && address < end }
    public func overlaps(_ other: PhysicalRange) -> Bool { start < other.end && other.start < end }
}
