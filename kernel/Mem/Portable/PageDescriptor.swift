// PageDescriptor.swift - what the owners of pages keep about them, now that a page itself is
// one 8-byte word (issue 18, docs/memory-descriptors.md).
//
// Every page of RAM has its mem_desc word (MemDesc.swift) and nothing else static. The use
// in the word's tag says where the rest of the page's facts are:
//
//   .reserved      nowhere: never given to the buddy allocator (boot page tables, the
//                  mem_desc array).
//   .free          the free block's buddy descriptor.
//   .allocated     the block's buddy descriptor; its owner words may hold a PV list when
//                  whoever allocated the page maps it (tests do).
//   .pageTable     the buddy descriptor's owner words: the number of valid entries and
//                  whether the table is pinned (kernel/Arch/x86_64/Pmap.swift).
//   .slab          the buddy descriptor: the slab's header is at the start of the block
//                  (kernel/Mem/KernelZones.swift), so its first page names it; or a page of
//                  buddy descriptors (flag .descriptorPage), which describes itself.
//   .kmallocLarge  the buddy descriptor (order and first page) alone.
//   .wired         the buddy descriptor; its owner words hold the page's PV list (kmem
//                  maps every wired page once).
//   .anonymous     a PageablePage (below), allocated from the page_desc zone when the
//                  fault path brings the page in and freed when the page leaves its object:
//                  queue links, busy and dirty, owner object and index, PV list. The word
//                  points to it; it points to the buddy descriptor.
// Every page of a block carries the block's word (the owner tags them all), so a kfree from
// any page of a slab finds the slab. A page is named by its index in the mem_desc array
// (PageIndex, 32 bits), which keeps the queue links small.
//
// Owners move a block between `.allocated` and their use (PhysicalMemory.setUse/clearUse,
// PhysicalMemory.makePageable/releasePageable assert the page was what they expect);
// PhysicalMemory.free takes back only `.allocated` blocks with no mappings.
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
    @inline(__always)
    public var int: Int { Int(rawValue) }

    /// The "no page" value of every link.
    public static let none = PageIndex(rawValue: UInt32.max)
    public static func < (a: PageIndex, b: PageIndex) -> Bool { a.rawValue < b.rawValue }
}

/// State of a pageable page (PageablePage.flags).
public struct PageFlags: OptionSet, Equatable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Being read or written by the pager; whoever wants it waits.
    public static let busy = PageFlags(rawValue: 1 << 0)
    /// The page's contents differ from its copy in swap, or it has none.
    public static let dirty = PageFlags(rawValue: 1 << 1)
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

/// The mappings of one page: the head of its PV list and how many entries are on it. It
/// lives in the page's PageablePage, or - for a mapped page without one - in its buddy
/// descriptor's owner words (`BuddyDescriptor.mappings`).
public struct PVList: Equatable {
    public var head: UnsafeMutablePointer<PVEntry>? = nil
    public var count: UInt32 = 0

    public init() {}

    public var isEmpty: Bool { head == nil }

    /// Adds a mapping.
    public mutating func insert(_ entry: UnsafeMutablePointer<PVEntry>) {
        entry.pointee.next = head
        head = entry
        count += 1
    }

    /// Unlinks the mapping at (`pmap`, `virtualAddress`) and returns it, or nil if there is none.
    public mutating func remove(pmap: UnsafeMutableRawPointer?, virtualAddress: VirtualAddress) -> UnsafeMutablePointer<PVEntry>? {
        var link: UnsafeMutablePointer<PVEntry>? = nil
        var entry = head
        while let current = entry {
            if current.pointee.pmap == pmap && current.pointee.virtualAddress == virtualAddress {
                if let previous = link { previous.pointee.next = current.pointee.next } else { head = current.pointee.next }
                current.pointee.next = nil
                count -= 1
                return current
            }
            link = current
            entry = current.pointee.next
        }
        return nil
    }
}

/// The descriptor of a pageable (.anonymous) page: 48 bytes from the page_desc zone, taken
/// by the fault path with the page and given back when the page leaves its object. The page's
/// mem_desc points here; `buddy` - the first field, where MemDesc.buddy reads it - is the
/// block's buddy descriptor, which frees the page.
public struct PageablePage {
    public var buddy: UnsafeMutablePointer<BuddyDescriptor>
    /// The memory object the page belongs to.
    public var object: UnsafeMutableRawPointer? = nil
    public var mappings = PVList()
    /// Page index within `object`.
    public var offset: UInt32 = 0
    /// Page-queue links.
    public var next: PageIndex = .none
    public var prev: PageIndex = .none
    /// While the page is busy: the id of the thread that set busy (its owner, rule 3 above),
    /// truncated to 32 bits; 0 when unknown. Meaningless once busy is cleared. Written with the
    /// flag, interrupts off (PageQueues.setBusy); read by the watchdog's wait-for graph.
    public var busyOwner: UInt32 = 0
    public var flags: PageFlags = []
    /// Which page queue the page is on.
    public var queue: PageQueue = .none

    public init(buddy: UnsafeMutablePointer<BuddyDescriptor>) { self.buddy = buddy }

    /// The page this descriptor describes.
    public var page: PageIndex { buddy.pointee.firstPage }
}

extension BuddyDescriptor {
    /// The PV list of a mapped page without a descriptor of its own (.wired, .allocated),
    /// kept in the owner words: the head, then the count.
    public var mappings: PVList {
        @inline(__always) get {
            var list = PVList()
            list.head = UnsafeMutablePointer(bitPattern: ownerWords.first)
            list.count = UInt32(truncatingIfNeeded: ownerWords.second)
            return list
        }
        @inline(__always) set {
            ownerWords.first = UInt(bitPattern: newValue.head)
            ownerWords.second = UInt(newValue.count)
        }
    }

    /// A page table's number of valid entries (.pageTable), in the first owner word.
    public var tableEntries: Int {
        @inline(__always) get { Int(ownerWords.first) }
        @inline(__always) set { ownerWords.first = UInt(newValue) }
    }

    /// Whether a page table stays even when empty (.pageTable), in the second owner word:
    /// allocated at boot for ranges the pageout path maps into, so that it never needs a
    /// page-table page there.
    public var isPinnedTable: Bool {
        @inline(__always) get { ownerWords.second != 0 }
        @inline(__always) set { ownerWords.second = newValue ? 1 : 0 }
    }
}
