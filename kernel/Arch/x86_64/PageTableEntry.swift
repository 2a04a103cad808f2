// PageTableEntry.swift - the x86-64 page-table entry format.
//
// Four levels of 512-entry tables (PML4, PDPT, PD, PT) translate a 48-bit virtual address:
//
//   47     39 38     30 29     21 20     12 11        0
//   [ PML4  ][ PDPT   ][  PD    ][  PT    ][ offset   ]
//
// An entry holds the physical address of the next table (or of the page) in bits 12-51 and
// flags in the rest. A PD entry with PS set maps a 2 MiB page directly (used by the direct
// map). The CPU sets A (accessed) on any use and D (dirty) on a write through a leaf entry;
// the pageout thread reads both (kernel/Arch/x86_64/Pmap.swift). With EFER.NXE on, bit 63 forbids
// instruction fetches; with CR0.WP on, a clear RW bit stops the kernel's own writes too.

struct PageTableEntry: RawRepresentable, Equatable {
    var rawValue: UInt64
    init(rawValue: UInt64) { self.rawValue = rawValue }

    static let present: UInt64 = 1 << 0
    static let writable: UInt64 = 1 << 1
    static let user: UInt64 = 1 << 2
    /// PWT and PCD: write-through and cache-disable, together "uncached" (device registers).
    static let writeThrough: UInt64 = 1 << 3
    static let cacheDisabled: UInt64 = 1 << 4
    static let accessed: UInt64 = 1 << 5
    static let dirty: UInt64 = 1 << 6
    static let largePage: UInt64 = 1 << 7
    static let global: UInt64 = 1 << 8
    static let noExecute: UInt64 = 1 << 63
    static let frameMask: UInt64 = 0x000F_FFFF_FFFF_F000

    init(frame: PhysicalAddress, flags: UInt64) {
        rawValue = (frame.rawValue & PageTableEntry.frameMask) | flags
    }

    var isPresent: Bool { rawValue & PageTableEntry.present != 0 }
    var isLargePage: Bool { rawValue & PageTableEntry.largePage != 0 }
    var frame: PhysicalAddress { PhysicalAddress(rawValue & PageTableEntry.frameMask) }
    func has(_ flag: UInt64) -> Bool { rawValue & flag != 0 }
}

extension Protection {
    /// Leaf-entry flags for this protection (present always; NX only when the CPU has it).
    var entryFlags: UInt64 {
        var flags = PageTableEntry.present
        if contains(.write) { flags |= PageTableEntry.writable }
        if !contains(.execute) && Pmap.noExecuteSupported { flags |= PageTableEntry.noExecute }
        return flags
    }
}

enum PageTableLevel: Int {
    case pml4 = 3, pdpt = 2, pd = 1, pt = 0

    /// Index of `address` in a table of this level.
    func index(of address: VirtualAddress) -> Int {
        Int((address.rawValue >> (12 + 9 * UInt64(rawValue))) & 0x1FF)
    }

    /// Bytes one entry of this level covers.
    var entrySpan: UInt64 { UInt64(1) << (12 + 9 * UInt64(rawValue)) }
}
