// Kmalloc.swift - the general-purpose kernel allocator, over size-class zones.
//
// kmalloc(size) rounds the request up to one of 14 size classes, 16 to 2048 bytes, each a
// zone of its own ("kmalloc-64"), objects 16-byte aligned. Bigger requests, and requests
// aligned to more than 16 bytes, get whole pages: a buddy block of the smallest order that
// fits, its head page's use .kmallocLarge. kfree finds out which from the use of the
// pointer's page: .slab pages name their slab header (and so their zone), .kmallocLarge
// pages their order. Requests larger than the largest buddy block (4 MiB) - a bitmap or a
// slot array sized to RAM or to a disk - come from kmem instead: wired pages, virtually
// contiguous, found again on free through their kmem map entry. So do multi-page requests
// that find no free block of their order once kmem exists: in fragmented memory waiting
// for pageout would never produce one. Pointers from the early heap
// are recognised by address.
// Once `bootstrap` has run, the Swift runtime's posix_memalign/free come here.

enum Kmalloc {
    static let classSizes: [Int] = [16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048]
    static let names: [StaticString] = ["kmalloc-16", "kmalloc-32", "kmalloc-48", "kmalloc-64", "kmalloc-96",
                                        "kmalloc-128", "kmalloc-192", "kmalloc-256", "kmalloc-384", "kmalloc-512",
                                        "kmalloc-768", "kmalloc-1024", "kmalloc-1536", "kmalloc-2048"]
    static let largestClass = 2048
    static var zones: UnsafeMutablePointer<KernelZone>? = nil
    static var largeAllocations: UInt64 = 0
    /// Allocations served by kmem (above the largest buddy block), and bytes of them in use.
    static var kmemAllocations: UInt64 = 0
    static var kmemBytesInUse: UInt64 = 0
    /// Multi-page requests that found no free block of their order and went to kmem.
    static var fragmentedFallbacks: UInt64 = 0

    /// The largest physically contiguous block: above it, kmalloc goes to kmem.
    static var largestContiguous: UInt64 { pageSize << UInt64(BuddyAllocator.maxOrder) }
    static var largePagesInUse: UInt64 = 0

    static func bootstrap() {
        let table = UnsafeMutablePointer<KernelZone>.allocate(capacity: classSizes.count)
        for (index, size) in classSizes.enumerated() {
            table[index] = Zones.create(names[index], objectSize: size, alignment: 16, slabPages: size <= 256 ? 1 : 4,
                                        reserve: 0)
        }
        zones = table
        Log.info(.zone, "kmalloc: \(classSizes.count) size classes, 16 to \(largestClass) bytes; the Swift runtime's heap now comes from here")
    }

    /// The size class index for `size`, or nil when it takes whole pages.
    static func classIndex(for size: Int) -> Int? {
        if size > largestClass { return nil }
        var index = 0
        while classSizes[index] < size { index += 1 }
        return index
    }

    /// True once the size-class zones exist: the Swift runtime's heap comes here from then on.
    static var isReady: Bool { zones != nil }

    static func allocate(_ size: Int, alignment: Int = 16, _ context: AllocationContext = .ordinary) -> UnsafeMutableRawPointer? {
        FreePath.checkAllocation(.kmalloc)
        if alignment <= 16, let index = classIndex(for: max(size, 1)) {
            return zones![index].allocate(context)
        }
        let bytes = max(UInt64(size), UInt64(alignment))
        if bytes > largestContiguous {
            return allocateFromKmem(size, bytes: bytes, alignment: alignment, context)
        }
        let order = Zones.order(ofBytes: Int(bytes))
        // Waiting frees pages, not contiguous blocks: once memory is fragmented no amount of
        // pageout makes a block of this order, and a waiting request would wait for ever. So
        // a multi-page request takes a free block if there is one and otherwise kmem's
        // virtually contiguous pages (Linux's kvmalloc), under the caller's rules.
        let fallsBackToKmem = order > 0 && KernelMaps.isReady
        let blockContext = fallsBackToKmem ? AllocationContext(context.requester, .noWait) : context
        guard let block = PhysicalMemory.allocate(order: order, blockContext) else {
            guard fallsBackToKmem else { return nil }
            withInterruptsDisabled { fragmentedFallbacks += 1 }
            return allocateFromKmem(size, bytes: bytes, alignment: alignment, context)
        }
        withInterruptsDisabled {
            PhysicalMemory.setUse(block, .kmallocLarge)
            largeAllocations += 1
            largePagesInUse += UInt64(1) << UInt64(order)
        }
        return PhysicalMemory.pointer(to: block)
    }

    /// Wired pages from kmem for a request the buddy allocator cannot or should not serve
    /// contiguously; kfree finds them again through their kmem map entry.
    private static func allocateFromKmem(_ size: Int, bytes: UInt64, alignment: Int, _ context: AllocationContext) -> UnsafeMutableRawPointer? {
        let rounded = roundUp(bytes, to: pageSize)
        guard let start = Kmem.allocate(rounded, alignment: max(pageSize, UInt64(alignment)), context) else {
            Log.warn(.zone, "kmalloc(\(size)): kmem could not provide \(bytes: rounded)")
            return nil
        }
        withInterruptsDisabled {
            kmemAllocations += 1
            kmemBytesInUse += rounded
        }
        return pointer(at: start)
    }

    /// kfree: a free path (kernel/Lib/FreePath.swift) - it frees to a zone, to the page
    /// allocator or to kmem, and allocates nothing.
    static func free(_ pointer: UnsafeMutableRawPointer) {
        FreePath.enter(.kfree)
        defer { FreePath.leave() }
        let address = VirtualAddress(pointer)
        if !KernelLayout.isDirectMapped(address), let size = Kmem.allocationSize(at: address) {
            withInterruptsDisabled { kmemBytesInUse -= size }
            Kmem.free(address, size)
            return
        }
        guard KernelLayout.isDirectMapped(address), let index = PhysicalMemory.index(of: PhysicalWindow.physicalAddress(of: pointer)) else {
            panic("kfree of \(address: address), which kmalloc never handed out")
        }
        let use = PhysicalMemory.use(of: index)
        if let header = PhysicalMemory.slabHeader(of: index) {
            let state = header.assumingMemoryBound(to: SlabHeader.self).pointee.zone!.assumingMemoryBound(to: ZoneState.self)
            KernelZone(state).free(pointer)
        } else if use == .kmallocLarge && PhysicalMemory.isFirstPage(index) && address.isPageAligned {
            let order = PhysicalMemory.order(of: index)
            withInterruptsDisabled {
                PhysicalMemory.clearUse(index, .kmallocLarge)
                largePagesInUse -= UInt64(1) << UInt64(order)
            }
            PhysicalMemory.free(index, order: order)
        } else {
            panic("kfree of \(address: address): its page is \(use.name), neither a slab nor a large kmalloc block (a double free, or not from kmalloc)")
        }
    }
}
