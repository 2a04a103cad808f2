// MemDesc.swift - the one word every page of RAM has (`mem_desc`), and the buddy descriptor it
// points to while the page belongs to the page allocator.
//
// This is the design of ../shared/seeds/linux-mm-dynamic-memory-descriptors.txt (Wilcox, 2021):
// a page is described by an 8-byte word, a pointer to the descriptor of the memory the page is
// part of, with the descriptor's *type* in the pointer's low 3 bits (descriptors are 8-byte
// aligned, so those bits are free). Everything else about a page lives in a descriptor that is
// allocated when the memory is allocated. docs/memory-descriptors.md tells the whole story.
//
// The invariant (checked by BuddyAllocator.isConsistent and the kernel's validator): for every
// page, either
//   - mem_desc is `.reserved` with no pointer: the page never reached the buddy allocator
//     (stolen at boot for page tables and the mem_desc array), or
//   - mem_desc leads to the buddy descriptor of the block the page is in - every page of the
//     block, not only its first - and its type is `.free` exactly when that descriptor is on a
//     free list; otherwise the type says what the block's owner uses it for. It leads there
//     directly, or - for a use whose owner keeps a descriptor of its own (`hasOwnDescriptor`:
//     a pageable page's PageablePage) - through that descriptor's first field.
// So an owner that types its block (`.slab`, `.pageTable`, ...) keeps the buddy descriptor
// and changes only the tag, or points the word at its own descriptor that names the buddy
// descriptor; either way the buddy descriptor is what frees the block again, which is how a
// free needs no new descriptor (BuddyAllocator.swift says why that always suffices).
// Nothing else about a page is static: PageDescriptor.swift says where each use keeps its
// facts.

/// What a page is used for, as the tag in its mem_desc: exactly one thing at a time. The raw
/// values are the tag bits (0...7) and the gdb helpers read them (kpage).
public enum PageUse: UInt8 {
    /// Never given to the buddy allocator (taken at boot, or not RAM at all). No pointer.
    case reserved = 0
    /// A page of a free block: the pointer is the block's buddy descriptor, on a free list.
    case free = 1
    /// A page of a block taken from the buddy allocator and not (yet) typed by its owner.
    case allocated = 2
    /// A page of a slab: a zone slab (kernel/Mem/KernelZones.swift) or a page of buddy
    /// descriptors (BuddyDescriptorPool.swift).
    case slab = 3
    /// Belongs to an anonymous memory object and may be paged out.
    case anonymous = 4
    /// Holds a page table of the kernel pmap.
    case pageTable = 5
    /// Wired kernel memory (kmem_alloc): never paged.
    case wired = 6
    /// A page of a large kmalloc allocation.
    case kmallocLarge = 7

    /// Whether the page's owner keeps a descriptor of its own, allocated with the page, that
    /// the mem_desc word points to (instead of the block's buddy descriptor). Only pageable
    /// pages have one (PageablePage, PageDescriptor.swift); every other owner's few facts fit
    /// in its buddy descriptor's owner words or in the tag alone.
    @inline(__always)
    public var hasOwnDescriptor: Bool { self == .anonymous }

    /// Whether a page of this use may be mapped through the pmap, with a PV list: a pageable
    /// page (in its descriptor), a wired kmem page or a page its allocator maps itself (in
    /// the buddy descriptor's owner words). Any other use has other meanings for those words.
    @inline(__always)
    public var keepsMappings: Bool { self == .anonymous || self == .wired || self == .allocated }

    public var name: StaticString {
        switch self {
        case .reserved: return "reserved"
        case .free: return "free"
        case .allocated: return "allocated"
        case .slab: return "slab"
        case .anonymous: return "anonymous"
        case .pageTable: return "pageTable"
        case .wired: return "wired"
        case .kmallocLarge: return "kmallocLarge"
        }
    }
}

/// The per-page word: a descriptor pointer with the page's use in its low 3 bits.
public struct MemDesc: Equatable {
    public var rawValue: UInt64

    static let useMask: UInt64 = 0b111

    /// A reserved page: no descriptor.
    public static let reserved = MemDesc(rawValue: 0)

    public init(rawValue: UInt64) { self.rawValue = rawValue }

    @inline(__always)
    public init(_ use: PageUse, _ descriptor: UnsafeMutablePointer<BuddyDescriptor>) {
        let address = UInt64(UInt(bitPattern: descriptor))
        rawValue = address | UInt64(use.rawValue)
    }

    /// A page whose owner keeps a descriptor of its own (`use.hasOwnDescriptor`): the word
    /// points to that descriptor, whose first stored field is the block's buddy descriptor.
    @inline(__always)
    public init(_ use: PageUse, owner: UnsafeMutableRawPointer) {
        rawValue = UInt64(UInt(bitPattern: owner)) | UInt64(use.rawValue)
    }

    /// The tag as a PageUse. Every 3-bit value is a case and the cases are declared in raw-
    /// value order, so the bits are the enum's own representation (a host test checks all
    /// eight): no failable init on the allocator's hottest path.
    @inline(__always)
    public var use: PageUse { unsafeBitCast(UInt8(truncatingIfNeeded: rawValue & MemDesc.useMask), to: PageUse.self) }

    /// The descriptor the word points to, whatever its type; nil for a reserved page.
    @inline(__always)
    public var descriptor: UnsafeMutableRawPointer? {
        UnsafeMutableRawPointer(bitPattern: UInt(rawValue & ~MemDesc.useMask))
    }

    /// The buddy descriptor of the page's block; nil for a reserved page. For a page with a
    /// descriptor of its own it is read from that descriptor's first field.
    @inline(__always)
    public var buddy: UnsafeMutablePointer<BuddyDescriptor>? {
        guard let pointer = descriptor else { return nil }
        if use.hasOwnDescriptor { return pointer.load(as: UnsafeMutablePointer<BuddyDescriptor>.self) }
        return pointer.assumingMemoryBound(to: BuddyDescriptor.self)
    }
}

/// The two words of a buddy descriptor that are list links while the block is free and the
/// owner's while it is allocated (BuddyDescriptor).
public struct OwnerWords: Equatable {
    public var first: UInt = 0
    public var second: UInt = 0
    public init() {}
    public var isZero: Bool { first == 0 && second == 0 }
}

/// Where a buddy descriptor is in its life.
public enum BuddyState: UInt8 {
    /// In the descriptor pool, describing nothing.
    case unused = 0
    /// Describes a free block, on the free list of its order.
    case free = 1
    /// Describes an allocated block; its owner gives it back by freeing the block.
    case allocated = 2
}

/// Facts about an allocated block that its owner or the checks want.
public struct BuddyFlags: OptionSet, Equatable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Allocated below the ordinary floor (free_reserved): taken from the page reserves by a
    /// system or pageout request. Linux's plan leaves "how is a reserve page marked" open;
    /// here it is this bit, on the block's descriptor, cleared when the block is freed.
    public static let fromReserve = BuddyFlags(rawValue: 1 << 0)
    /// The block is a page of buddy descriptors (BuddyDescriptorPool.swift), which describes
    /// itself: this descriptor lives inside the page it describes.
    public static let descriptorPage = BuddyFlags(rawValue: 1 << 1)
    /// The page is free on a CPU's page list (CPUPageList.swift): allocated for the buddy
    /// allocator, nobody's for the rest of the kernel. Freeing it again is a double free.
    public static let onCPUList = BuddyFlags(rawValue: 1 << 2)
}

/// A block of 2^order pages, free or allocated (the `struct buddy` of the seed message).
/// 24 bytes. Its first two words are shared, the way Linux shares `struct page`'s `lru`:
///   - unused (in the pool): `next` is the pool's free-list link;
///   - free: `next` and `prev` are the links of the free list of its order;
///   - allocated: the allocator leaves them alone and they belong to the block's owner
///     (`ownerWords`): a mapped page's PV list when the page has no descriptor of its own
///     (wired kmem pages, pages a test maps), a page table's entry count and pin.
/// The allocator clears them when it hands a block out (popFree) and when an owner types or
/// untypes a block (setUse), so an owner always starts from zeros.
public struct BuddyDescriptor {
    public var ownerWords = OwnerWords()

    /// The list link to the next descriptor (free list, or the pool's list).
    public var next: UnsafeMutablePointer<BuddyDescriptor>? {
        @inline(__always) get { UnsafeMutablePointer(bitPattern: ownerWords.first) }
        @inline(__always) set { ownerWords.first = UInt(bitPattern: newValue) }
    }
    /// The free list's link to the previous descriptor.
    public var prev: UnsafeMutablePointer<BuddyDescriptor>? {
        @inline(__always) get { UnsafeMutablePointer(bitPattern: ownerWords.second) }
        @inline(__always) set { ownerWords.second = UInt(bitPattern: newValue) }
    }
    /// The block's first page (its index in the mem_desc array).
    public var firstPage: PageIndex = .none
    public var order: UInt8 = 0
    public var state: BuddyState = .unused
    public var flags: BuddyFlags = []

    public init() {}

    /// Whether `page` lies in the block.
    @inline(__always)
    public func contains(_ page: PageIndex) -> Bool {
        page.rawValue >= firstPage.rawValue && page.rawValue - firstPage.rawValue < (UInt32(1) << UInt32(order))
    }
}
