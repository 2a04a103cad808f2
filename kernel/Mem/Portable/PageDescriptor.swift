// PageDescriptor.swift - the per-page descriptor, one for every managed physical page.
//
// The descriptors live in one array, allocated at boot from the memory map itself and sized
// from it (kernel/Mem/PhysicalMemory.swift). A page is named by its index in that array
// (PageIndex, 32 bits), which keeps the links small: a descriptor is 48 bytes, 1.17% of the
// 4 KiB it describes.
//
// `use` says what the page is for - exactly one thing at a time - and so what its other fields
// mean. The use is kept on the head page of every buddy block; the other pages of a block are
// `.tail` unless their owner types them too (only slabs do, so that kfree can find the slab
// from any of its pages).
//
//   .reserved      never given to the buddy allocator (taken at boot: boot page tables, the
//                  descriptor array). Nothing else is meaningful.
//   .free          head of a free block on a buddy free list: order = block order,
//                  next/prev = free-list links.
//   .tail          a page of a block (free or allocated) other than its head: its use is the
//                  head's. Nothing else is meaningful.
//   .allocated     head of a block taken from the buddy allocator and not typed by its owner
//                  (yet): order = block order. Whoever allocated it owns it.
//   .pageTable     a page table of the kernel pmap (kernel/Arch/x86_64/Pmap.swift):
//                  wireCount = valid entries in it.
//   .slab          (every page of) a direct-map zone slab (kernel/Mem/KernelZones.swift):
//                  object = the slab header.
//   .kmallocLarge  head of a large kmalloc block (kernel/Mem/Kmalloc.swift): order = its order.
//   .wired         a page of wired kernel memory (kmem_alloc, kernel/VM/Kmem.swift).
//   .anonymous     a resident page of an anonymous memory object, pageable: object = the
//                  memory object, offset = page index in it, next/prev = page-queue links,
//                  queue = which queue (kernel/VM/PageQueues.swift).
// Any mapped managed page, whatever its use: pvList/pvCount = the PV entries of its mappings.
//
// Owners move a page between `.allocated` and their use (PhysicalMemory.setUse/clearUse assert
// the page was what they expect); PhysicalMemory.free takes back only `.allocated` pages.
//
// `flags` holds state that combines with a use (PageFlags below); `segment` is the physical
// segment the page belongs to, for every page.
//
// The rule for `.anonymous` pages (one CPU: "atomically" means with interrupts off):
//   1. a resident page is at every moment either busy or on a page queue, never neither;
//   2. a page's owner (object, offset), its queue and its mappings change only while it is
//      busy - or, for a page that is not busy, in one atomic step that also rechecks the
//      object's slot (releasePages; the fault path claiming a resident page);
//   3. whoever sets busy (the fault path bringing a page in or mapping it, the pageout thread
//      cleaning one) owns the page until it clears busy, and clears it in the same atomic step
//      that puts the page back on a queue, or removes it from its object to free it;
//   4. nobody sleeps for memory while holding a busy page: the fault path allocates without
//      waiting while it holds one and releases it before it waits (the out-of-memory policy
//      waits for busy pages, so a busy page held across vm_wait could stall the one thread
//      that frees memory). Only the pageout thread's own writes with reserves=off break this,
//      which is the deadlock those tests reproduce;
//   5. everyone else - releasePages, a second fault on the same page - sleeps while a page is
//      busy and, when woken, looks the page up again: what it saw before may be gone.
// MemoryObjects.releasePages asserts rule 1, SwapPager.pageIn rule 4; the race tests in
// kernel/Test/RaceTests.swift drive each path that could break them.

public struct PageIndex: RawRepresentable, Equatable, Comparable, Hashable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ value: Int) { rawValue = UInt32(value) }
    public var int: Int { Int(rawValue) }

    /// The "no page" value of every link.
    public static let none = PageIndex(rawValue: UInt32.max)
    public static func < (a: PageIndex, b: PageIndex) -> Bool { a.rawValue < b.rawValue }
}

/// What a page is used for: exactly one thing at a time (the table at the top of this file
/// says what the other fields mean for each).
public enum PageUse: UInt8 {
    /// Never given to the buddy allocator (taken at boot, or not RAM at all).
    case reserved
    /// Head of a free block on a buddy free list.
    case free
    /// A page of a block other than its head; the head says what the block is.
    case tail
    /// Head of a block taken from the buddy allocator, not (yet) typed by its owner.
    case allocated
    /// Holds a page table of the kernel pmap.
    case pageTable
    /// Holds (part of) a zone slab.
    case slab
    /// The head page of a large kmalloc allocation (order in `order`).
    case kmallocLarge
    /// Wired kernel memory (kmem_alloc): never paged.
    case wired
    /// Belongs to an anonymous memory object and may be paged out.
    case anonymous

    public var name: StaticString {
        switch self {
        case .reserved: return "reserved"
        case .free: return "free"
        case .tail: return "tail"
        case .allocated: return "allocated"
        case .pageTable: return "pageTable"
        case .slab: return "slab"
        case .kmallocLarge: return "kmallocLarge"
        case .wired: return "wired"
        case .anonymous: return "anonymous"
        }
    }
}

/// State that combines with a page's use. Each flag is meaningful only with the uses named.
public struct PageFlags: OptionSet, Equatable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Being read or written by the pager (.anonymous); whoever wants it waits.
    public static let busy = PageFlags(rawValue: 1 << 0)
    /// The page's contents differ from its copy in swap, or it has none (.anonymous).
    public static let dirty = PageFlags(rawValue: 1 << 1)
    /// A page table that stays even when empty (.pageTable, or a .reserved boot page table):
    /// allocated at boot for ranges the pageout path maps into, so that it never needs a
    /// page-table page there.
    public static let pinnedTable = PageFlags(rawValue: 1 << 2)
}

/// Which page queue an .anonymous page is on (kernel/VM/PageQueues.swift).
public enum PageQueue: UInt8 {
    case none = 0
    case active = 1
    case inactive = 2

    public var name: StaticString {
        switch self {
        case .none: return "none"
        case .active: return "active"
        case .inactive: return "inactive"
        }
    }
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
    /// State bits that combine with the use.
    public var flags: PageFlags = []
    /// Buddy order of the block this page heads (free or allocated).
    public var order: UInt8 = 0
    /// Which page queue the page is on (.anonymous pages only).
    public var queue: PageQueue = .none
    /// Index of the physical segment the page belongs to.
    public var segment: UInt8 = 0
    /// What the page is used for.
    public var use: PageUse = .reserved
    /// Wire count, or for page-table pages the number of valid entries.
    public var wireCount: UInt16 = 0
    /// The owner: a memory object, a slab, a pmap.
    public var object: UnsafeMutableRawPointer? = nil
    /// Page index within `object`.
    public var offset: UInt64 = 0
    /// Head of the list of mappings of this page.
    public var pvList: UnsafeMutablePointer<PVEntry>? = nil
    public var pvCount: UInt32 = 0
    /// While the page is busy: the id of the thread that set busy (its owner, rule 3 above),
    /// truncated to 32 bits; 0 when unknown. Meaningless once busy is cleared. Written with the
    /// flag, interrupts off (PageQueues.setBusy); read by the watchdog's wait-for graph.
    public var busyOwner: UInt32 = 0

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
