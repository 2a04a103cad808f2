// MapEntry.swift - one entry of a vm_map: a range of kernel virtual addresses and what is there.
//
// Entries are the objects of the map_entry zone. A map keeps them in a red-black tree ordered
// by address, augmented with the largest free gap in each subtree, and also threaded in
// address order through prev/next (kernel/VM/Portable/VMMap*.swift).

public enum MapEntryKind: UInt8 {
    /// Wired kernel memory (kmem_alloc): pages allocated up front and never paged.
    case wired = 1
    /// A submap: `object` points to another VMMapState covering exactly this range.
    case submap = 2
    /// Pageable anonymous memory: `object` is the memory object backing it.
    case anonymous = 3
    /// Address space reserved but with nothing behind it (pager windows, guards).
    case reserved = 4
}

public struct MapEntry {
    public var start: VirtualAddress
    public var end: VirtualAddress
    public var left: UnsafeMutablePointer<MapEntry>?
    public var right: UnsafeMutablePointer<MapEntry>?
    public var parent: UnsafeMutablePointer<MapEntry>?
    public var prev: UnsafeMutablePointer<MapEntry>?
    public var next: UnsafeMutablePointer<MapEntry>?
    /// Free space between this entry's end and the next entry's start (or the map's end).
    public var gapAfter: UInt64
    /// The largest gapAfter in this entry's subtree, this entry included.
    public var maxGap: UInt64
    public var object: UnsafeMutableRawPointer?
    /// Offset of `start` within `object` (pages of an anonymous object, bytes of a submap).
    public var offset: UInt64
    public var isRed: Bool
    public var kind: MapEntryKind
    public var protection: Protection
    public var flags: UInt8

    public init(start: VirtualAddress, end: VirtualAddress, kind: MapEntryKind, protection: Protection) {
        self.start = start
        self.end = end
        self.left = nil
        self.right = nil
        self.parent = nil
        self.prev = nil
        self.next = nil
        self.gapAfter = 0
        self.maxGap = 0
        self.object = nil
        self.offset = 0
        self.isRed = true
        self.kind = kind
        self.protection = protection
        self.flags = 0
    }

    public var size: UInt64 { end - start }
}
