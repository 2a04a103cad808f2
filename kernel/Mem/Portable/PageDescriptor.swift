// PageDescriptor.swift - the static per-page record (VMPage) of what a page's owner keeps.
//
// Every page has two things today: its mem_desc word (MemDesc.swift: 8 bytes, a pointer to
// its block's buddy descriptor with the page's use in the low bits - the page allocator's
// whole state) and one VMPage in a static array allocated at boot from the memory map and
// sized from it (kernel/Mem/PhysicalMemory.swift). The VMPage holds what the owners of
// allocated pages keep per page; moving these facts into descriptors allocated with the page
// is the next stage of docs/memory-descriptors.md. A page is named by its index in both
// arrays (PageIndex, 32 bits), which keeps the links small.
//
// The use (PageUse, in mem_desc) says what the page is for - exactly one thing at a time -
// and so what the VMPage fields mean:
//
//   .reserved      never given to the buddy allocator (taken at boot: boot page tables, the
//                  descriptor arrays). Nothing else is meaningful.
//   .free          a page of a free block. Nothing else is meaningful.
//   .allocated     a page of a block taken from the buddy allocator and not typed by its
//                  owner (yet). Whoever allocated it owns it.
//   .pageTable     a page table of the kernel pmap (kernel/Arch/x86_64/Pmap.swift):
//                  wireCount = valid entries in it.
//   .slab          a page of a direct-map zone slab (kernel/Mem/KernelZones.swift):
//                  object = the slab header; or a page of buddy descriptors (its descriptor
//                  has the flag .descriptorPage; nothing in VMPage is meaningful).
//   .kmallocLarge  a page of a large kmalloc block (kernel/Mem/Kmalloc.swift).
//   .wired         a page of wired kernel memory (kmem_alloc, kernel/VM/Kmem.swift).
//   .anonymous     a resident page of an anonymous memory object, pageable: object = the
//                  memory object, offset = page index in it, next/prev = page-queue links,
//                  queue = which queue (kernel/VM/PageQueues.swift).
// Any mapped managed page, whatever its use: pvList/pvCount = the PV entries of its mappings.
// Every page of a block carries the block's use (the owner tags them all), so a kfree from
// any page of a slab finds the slab.
//
// Owners move a block between `.allocated` and their use (PhysicalMemory.setUse/clearUse
// assert the page was what they expect); PhysicalMemory.free takes back only `.allocated`
// blocks. The block's order is in its buddy descriptor.
//
// `flags` holds state that combines with a use (PageFlags below).
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
    /// Which page queue the page is on (.anonymous pages only).
    public var queue: PageQueue = .none
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
