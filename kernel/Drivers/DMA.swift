// DMA.swift - memory a device reads and writes by itself, and the physical addresses it needs.
//
// A device that does DMA (virtio-blk, AHCI) is given physical addresses: of its rings and
// command tables, which the drivers allocate here once at boot - wired, physically contiguous,
// zeroed, reached through the direct map - and of the caller's buffers, which `physicalAddress`
// translates from whichever mapping the caller holds (the direct map, or a kernel_map page such
// as a pager window). x86 DMA is cache-coherent: no flushing, only the ordering the volatile
// accessors of arch.h give.

/// Wired, physically contiguous memory for a device, and where it is.
struct DMARegion {
    let pointer: UnsafeMutableRawPointer
    let physical: PhysicalAddress
    let bytes: Int

    /// What a driver's region is before its probe allocates it: the never-mapped placeholder.
    static var unset: DMARegion {
        DMARegion(pointer: UnsafeMutableRawPointer(UnsafeMutablePointer<UInt8>.unsetPlaceholder), physical: PhysicalAddress(0), bytes: 0)
    }

    /// 2^order pages at boot, zeroed, or nil when memory cannot give them (the caller's device is
    /// then not used, and says so).
    static func allocate(pages: Int) -> DMARegion? {
        var order = 0
        while 1 << order < pages { order += 1 }
        guard let block = PhysicalMemory.allocate(order: order, .system) else { return nil }
        PhysicalMemory.setUse(block, .wired)
        let pointer = PhysicalMemory.pointer(to: block)
        let bytes = Int(pageSize) << order
        pointer.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        return DMARegion(pointer: pointer, physical: PhysicalMemory.physicalAddress(of: block), bytes: bytes)
    }

    /// The part of the region at `offset`: a pointer and its physical address.
    func at(_ offset: Int) -> (UnsafeMutableRawPointer, PhysicalAddress) {
        (pointer + offset, physical + UInt64(offset))
    }
}

enum DMA {
    /// The physical address behind the kernel address `pointer`: the direct map, or a page
    /// mapped in kernel_map. Nil when nothing is mapped there (a caller's bug, reported as an
    /// I/O error by the drivers).
    static func physicalAddress(of pointer: UnsafeRawPointer) -> PhysicalAddress? {
        let address = VirtualAddress(pointer)
        if KernelLayout.isDirectMapped(address) { return PhysicalWindow.physicalAddress(of: pointer) }
        return Pmap.extract(address)
    }

    /// Calls `body` with each physically contiguous piece of [buffer, buffer + bytes) - a piece
    /// never crosses a page boundary, so each is at most a page. False when some page is not
    /// mapped, or when `body` refuses a piece (a driver out of descriptors).
    static func forEachSegment(_ buffer: UnsafeRawPointer, _ bytes: Int, _ body: (PhysicalAddress, Int) -> Bool) -> Bool {
        var offset = 0
        while offset < bytes {
            let piece = buffer + offset
            let inPage = Int(pageSize) - Int(VirtualAddress(piece).offset(within: pageSize))
            let length = min(inPage, bytes - offset)
            guard let physical = physicalAddress(of: piece), body(physical, length) else { return false }
            offset += length
        }
        return true
    }
}
