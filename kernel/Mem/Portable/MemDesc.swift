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
//     (stolen at boot for page tables and the descriptor arrays), or
//   - mem_desc points to the buddy descriptor of the block the page is in - every page of
//     the block, not only its first - and its type is `.free` exactly when that descriptor is
//     on a free list; otherwise the type says what the block's owner uses it for.
// So an owner that types its block (`.slab`, `.pageTable`, ...) keeps the buddy descriptor's
// pointer and changes only the tag; the descriptor is what frees the block again, which is how
// a free needs no new descriptor (BuddyAllocator.swift says why that always suffices).
//
// What is not here yet (issue 18, later stages): the owners' own descriptors. A slab, a page
// table, a pageable page still keep their per-page facts in the static VMPage array
// (PageDescriptor.swift); moving them into descriptors allocated with the page is what turns
// "8 bytes plus VMPage" into "8 bytes".

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

    @inline(__always)
    public var use: PageUse { PageUse(rawValue: UInt8(truncatingIfNeeded: rawValue & MemDesc.useMask))! }

    /// The buddy descriptor of the page's block; nil for a reserved page.
    @inline(__always)
    public var buddy: UnsafeMutablePointer<BuddyDescriptor>? {
        UnsafeMutablePointer(bitPattern: UInt(rawValue & ~MemDesc.useMask))
    }
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
}

/// A block of 2^order pages, free or allocated (the `struct buddy` of the seed message).
/// 24 bytes; a free block's links are its free-list links, an unused descriptor's `next` is
/// the pool's free-list link.
public struct BuddyDescriptor {
    public var next: UnsafeMutablePointer<BuddyDescriptor>? = nil
    public var prev: UnsafeMutablePointer<BuddyDescriptor>? = nil
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
