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

public struct PhysicalAddress: RawRepresentable, Comparable, Hashable {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ value: UInt64) { rawValue = value }

    public static func < (a: PhysicalAddress, b: PhysicalAddress) -> Bool { a.rawValue < b.rawValue }
    public static func + (a: PhysicalAddress, bytes: UInt64) -> PhysicalAddress { PhysicalAddress(a.rawValue + bytes) }

    public var frameNumber: UInt64 { rawValue >> pageShift }
    public var isPageAligned: Bool { rawValue & (pageSize - 1) == 0 }
    public init(frameNumber: UInt64) { rawValue = frameNumber << pageShift }
}

public struct VirtualAddress: RawRepresentable, Comparable, Hashable {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ value: UInt64) { rawValue = value }

    public static func < (a: VirtualAddress, b: VirtualAddress) -> Bool { a.rawValue < b.rawValue }
    public static func + (a: VirtualAddress, bytes: UInt64) -> VirtualAddress { VirtualAddress(a.rawValue + bytes) }
    public static func - (a: VirtualAddress, b: VirtualAddress) -> UInt64 { a.rawValue - b.rawValue }

    public var isPageAligned: Bool { rawValue & (pageSize - 1) == 0 }
    public var pointer: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: UInt(rawValue))! }
    public init(_ pointer: UnsafeRawPointer) { rawValue = UInt64(UInt(bitPattern: pointer)) }
}

/// A half-open range of physical memory, [start, end).
public struct PhysicalRange: Equatable {
    public var start: UInt64
    public var end: UInt64

    public init(start: UInt64, end: UInt64) {
        self.start = start
        self.end = end
    }

    public var byteCount: UInt64 { end > start ? end - start : 0 }
    public var pageCount: UInt64 { byteCount >> pageShift }
    public var isEmpty: Bool { end <= start }

    public func contains(_ address: UInt64) -> Bool { address >= start && address < end }
    public func overlaps(_ other: PhysicalRange) -> Bool { start < other.end && other.start < end }
}
