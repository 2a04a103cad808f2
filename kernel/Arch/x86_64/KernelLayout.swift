// KernelLayout.swift - where things are in the kernel's virtual address space.
//
// Everything is in the lower canonical half (docs/memory-layout.md explains why):
//
//   0x0000_0000_0000_0000  page 0 .. 1 MiB: never mapped (nil dereferences fault)
//   0x0000_0000_0010_0000  the kernel image, virtual = physical, mapped by section
//   0x0000_4000_0000_0000  the direct map: all usable RAM, physical address + this base
//   0x0000_6000_0000_0000  kernel_map (512 GiB): kmem, pageable and pager submaps
//   0x0000_7000_0000_0000  a 1 GiB window the pmap tests map and unmap freely
//   0x0000_7f00_0000_0000  device registers: the local APIC's page, uncached
//
// `PhysicalWindow` is how the kernel reaches physical memory: through the boot identity map
// until the kernel's own page tables are loaded, through the direct map afterwards.

enum KernelLayout {
    static let directMapBase = VirtualAddress(0x0000_4000_0000_0000)
    /// Physical memory at or above this (32 TiB) is not mapped: the direct map ends where
    /// kernel_map begins, so that no kernel_map or test-window address is ever taken for a
    /// direct-map one (kfree tells kmem blocks from buddy blocks that way).
    static let directMapLimit = PhysicalAddress(0x0000_2000_0000_0000)
    static let kernelMapBase = VirtualAddress(0x0000_6000_0000_0000)
    static let kernelMapSize: UInt64 = 512 << 30
    static let pmapTestWindowBase = VirtualAddress(0x0000_7000_0000_0000)
    static let pmapTestWindowSize: UInt64 = 1 << 30
    /// Memory-mapped device registers, mapped uncached by Pmap.bootstrap: the local APIC here.
    static let localAPICWindow = VirtualAddress(0x0000_7F00_0000_0000)
    /// Memory the boot identity map reaches; the boot page allocator stays below it.
    static let bootIdentityLimit = PhysicalAddress(4 << 30)

    static func isDirectMapped(_ address: VirtualAddress) -> Bool {
        address >= directMapBase && address < directMapAddress(of: directMapLimit)
    }

    /// Where the direct map shows the physical address `address`.
    static func directMapAddress(of address: PhysicalAddress) -> VirtualAddress {
        directMapBase + address.rawValue
    }

    /// Virtual ranges pmap.enter may map pages into.
    static func isMappable(_ address: VirtualAddress) -> Bool {
        (address >= kernelMapBase && address < kernelMapBase + kernelMapSize)
            || (address >= pmapTestWindowBase && address < pmapTestWindowBase + pmapTestWindowSize)
    }
}

enum PhysicalWindow {
    /// 0 while the boot identity map is active; the direct-map base afterwards.
    static var base = VirtualAddress(0)

    @inline(__always)
    static func pointer(to address: PhysicalAddress) -> UnsafeMutableRawPointer {
        (base + address.rawValue).pointer
    }

    /// The physical address behind a direct-map pointer.
    @inline(__always)
    static func physicalAddress(of pointer: UnsafeRawPointer) -> PhysicalAddress {
        let address = VirtualAddress(pointer)
        kassert(KernelLayout.isDirectMapped(address), "\(address: address) is not a direct-map address")
        return PhysicalAddress(address - KernelLayout.directMapBase)
    }
}

/// A raw pointer to the kernel virtual address `address`.
@inline(__always)
func pointer(at address: VirtualAddress) -> UnsafeMutableRawPointer {
    address.pointer
}
