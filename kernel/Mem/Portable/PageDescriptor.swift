// PageDescriptor.swift - the per-page descriptor, one for every managed physical page.
//
// The descriptors live in one array, allocated at boot from the memory map itself and sized
// from it (kernel/Mem/PhysicalMemory.swift). A page is named by its index in that array
// (PageIndex, 32 bits), which keeps the links small: a descriptor is 48 bytes, 1.17% of the
// 4 KiB it describes. What a field means depends on who owns the page:
//
//   free (in the buddy allocator)  flags has .free on the head page of each free block;
//                                  order = block order; next/prev = free-list links.
//   page-table page (pmap)         flags has .pageTable; wireCount = valid entries in it.
//   slab page (zones)              flags has .slab; object = the slab header.
//   anonymous page (pageout)       object = owning memory object, offset = page index in it,
//                                  next/prev = page-queue links, queue = which queue.
//   any mapped managed page        pvList = the PV entries of every mapping of it.

public struct PageIndex: RawRepresentable, Equatable, Comparable, Hashable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ value: Int) { rawValue = UInt32(value) }
    public var int: Int { Int(rawValue) }

    /// The "no page" value of every link.
    public static let none = PageIndex(rawValue: UInt32.max)
    public static func < (a: PageIndex, b: PageIndex) -> Bool { a.rawValue < b.rawValue }
}

public struct PageFlags: OptionSet, Equatable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Head of a free block on a buddy free list.
    public static let free = PageFlags(rawValue: 1 << 0)
    /// Never given to the buddy allocator (taken at boot, or not RAM at all).
    public static let reserved = PageFlags(rawValue: 1 << 1)
    /// Holds a page table of the kernel pmap.
    public static let pageTable = PageFlags(rawValue: 1 << 2)
    /// Holds (part of) a zone slab.
    public static let slab = PageFlags(rawValue: 1 << 3)
    /// Belongs to an anonymous memory object and may be paged out.
    public static let anonymous = PageFlags(rawValue: 1 << 4)
    /// Being read or written by the pager; whoever wants it waits.
    public static let busy = PageFlags(rawValue: 1 << 5)
    /// Wired kernel memory (kmem_alloc): never paged.
    public static let wired = PageFlags(rawValue: 1 << 6)
    /// The page's contents differ from its copy in swap (or it has none).
    public static let dirty = PageFlags(rawValue: 1 << 7)
    /// The head page of a large kmalloc allocation (order in `order`).
    public static let kmallocLarge = PageFlags(rawValue: 1 << 8)
    /// A page table that stays even when empty (allocated at boot for ranges the pageout path
    /// maps into, so that it never needs a page-table page there).
    public static let pinnedTable = PageFlags(rawValue: 1 << 9)
}

/// A mapping of a managed page: the pmap and the virtual address it is mapped at. Every
/// mapping of a page is on the page's PV list, so the page can be unmapped everywhere.
public struct PVEntry {
    public var next: UnsafeMutablePointer<PVEntry>?
    public var pmap: UnsafeMutableRawPointer?
    public var virtualAddress: VirtualAddress

    public init(pmap: UnsafeMutableRawPointer?, virtualAddress: VirtualAddress) {
        self.next = nil
        self.pmap = pmap
        self.virtualAddress = virtualAddress
    }
}

public struct VMPage {
    public var next: PageIndex = .none
    public var prev: PageIndex = .none
    public var flags: PageFlags = .reserved
    /// Buddy order of the block this page heads (free or allocated).
    public var order: UInt8 = 0
    /// Which page queue the page is on (kernel/VM/PageQueues.swift); 0 = none.
    public var queue: UInt8 = 0
    /// Index of the physical segment the page belongs to.
    public var segment: UInt8 = 0
    public var reserved0: UInt8 = 0
    /// Wire count, or for page-table pages the number of valid entries.
    public var wireCount: UInt16 = 0
    /// The owner: a memory object, a slab, a pmap.
    public var object: UnsafeMutableRawPointer? = nil
    /// Page index within `object`.
    public var offset: UInt64 = 0
    /// Head of the list of mappings of this page.
    public var pvList: UnsafeMutablePointer<PVEntry>? = nil
    public var pvCount: UInt32 = 0
    public var reserved3: UInt32 = 0

    public init() {}

    /// Adds a mapping to the page's PV list.
    public mutating func insertMapping(_ entry: UnsafeMutablePointer<PVEntry>) {
        entry.pointee.next = pvList
        pvList = entry
        pvCount += 1
    }

    /// Unlinks the mapping at (`pmap`, `virtualAddress`) and returns it, or nil if there is none.
    public mutating func removeMapping(pmap: UnsafeMutableRawPointer?, virtualAddress: VirtualAddress) -> UnsafeMutablePointer<PVEntry>? {
        var link: UnsafeMutablePointer<PVEntry>? = nil
        var entry = pvList
        while let current = entry {
            if current.pointee.pmap == pmap && current.pointee.virtualAddress == virtualAddress {
                if let previous = link { previous.pointee.next = current.pointee.next } else { pvList = current.pointee.next }
                current.pointee.next = nil
                pvCount -= 1
                return current
            }
            link = current
            entry = current.pointee.next
        }
        return nil
    }
}
