// MemoryMapEntry.swift - one entry of the firmware's physical memory map.
//
// This is the boot loader's view, before any cleaning: entries may be unsorted, overlap,
// have zero length or unaligned edges. kernel/Mem/Portable/PhysicalMemoryMap.swift turns a list of
// them into the usable page ranges the kernel manages.

public struct MemoryMapEntry: Equatable {
    public enum Kind: UInt32 {
        case usable = 1
        case reserved = 2
        case acpiReclaimable = 3
        case acpiNVS = 4
        case bad = 5

        /// Multiboot passes any other type number through; anything unknown is reserved.
        public init(multibootType: UInt32) {
            self = Kind(rawValue: multibootType) ?? .reserved
        }

        public var name: StaticString {
            switch self {
            case .usable: return "usable"
            case .reserved: return "reserved"
            case .acpiReclaimable: return "ACPI reclaimable"
            case .acpiNVS: return "ACPI NVS"
            case .bad: return "bad memory"
            }
        }
    }

    public var base: UInt64
    public var length: UInt64
    public var kind: Kind

    public init(base: UInt64, length: UInt64, kind: Kind) {
        self.base = base
        self.length = length
        self.kind = kind
    }

    /// The end, saturating at 2^64 - 1 for entries that would wrap around.
    public var end: UInt64 {
        let (sum, overflow) = base.addingReportingOverflow(length)
        return overflow ? UInt64.max : sum
    }

    /// The physical memory the entry describes.
    public var range: PhysicalRange { PhysicalRange(start: PhysicalAddress(base), end: PhysicalAddress(end)) }
}
