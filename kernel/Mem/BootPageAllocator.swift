// BootPageAllocator.swift - taking pages before the page allocator exists.
//
// The kernel's page tables and the page-descriptor array are needed before there is a buddy
// allocator to get them from, so they are taken ("stolen", as FreeBSD's pmap_bootstrap says)
// from the low end of the usable ranges. Stolen pages stay allocated forever: the buddy
// allocator is later told about each range minus what was stolen from it. Everything is taken
// below 4 GiB, which the boot identity map reaches, and handed out zeroed.

enum BootPageAllocator {
    /// The usable ranges; `start` moves up as pages are stolen.
    static var ranges: [PhysicalRange] = []
    /// The original start of each range, to tell the stolen part apart later.
    static var originalStarts: [PhysicalAddress] = []
    static var stolenPages: UInt64 = 0
    /// Set once the buddy allocator has taken over; stealing after that is a bug.
    static var closed = false

    static func initialize(_ usable: [PhysicalRange]) {
        ranges = usable
        originalStarts = usable.map { $0.start }
    }

    /// `count` contiguous zeroed pages from the first range that has room below 4 GiB.
    static func steal(pages count: Int) -> PhysicalAddress {
        FreePath.checkAllocation(.bootPages)
        kassert(!closed, "boot page allocator used after the page allocator took over")
        let bytes = UInt64(count) * pageSize
        for index in ranges.indices {
            let range = ranges[index]
            if range.byteCount >= bytes && range.start + bytes <= KernelLayout.bootIdentityLimit {
                let address = range.start
                ranges[index].start += bytes
                stolenPages += UInt64(count)
                PhysicalWindow.pointer(to: address).initializeMemory(as: UInt8.self, repeating: 0, count: Int(bytes))
                return address
            }
        }
        panic("boot page allocator: no usable range below 4 GiB has \(count) free contiguous pages")
    }
}
