// MachineTopology.swift - what the firmware says the machine is made of: CPUs and APICs.
//
// The firmware describes the processors and interrupt controllers in tables in physical
// memory: ACPI's MADT (ACPITables.swift) or, on older machines, Intel's MP tables
// (MPTables.swift). Both parsers produce a `MachineTopology`, and both read memory only
// through `FirmwareMemory`, so that the host tests can hand them a fake memory image holding
// well-formed or deliberately broken tables. Nothing here trusts the tables: every length is
// checked against what was read, every checksum verified, and every problem becomes a
// `FirmwareTableError` that says which table, where, and what is wrong with it.

/// Physical memory as the table parsers see it: one byte at a time, or nil when the address
/// lies outside what the reader can reach (the kernel reads through the boot identity map).
public protocol FirmwareMemory {
    func byte(at address: UInt64) -> UInt8?
}

extension FirmwareMemory {
    /// A little-endian integer of `size` bytes at `address`, or nil if any byte is out of reach.
    public func integer(at address: UInt64, size: Int) -> UInt64? {
        var value: UInt64 = 0
        for index in 0..<size {
            guard let byte = byte(at: address &+ UInt64(index)) else { return nil }
            value |= UInt64(byte) << (8 * UInt64(index))
        }
        return value
    }

    public func u8(_ address: UInt64) -> UInt8? { byte(at: address) }
    public func u16(_ address: UInt64) -> UInt16? { integer(at: address, size: 2).map { UInt16(truncatingIfNeeded: $0) } }
    public func u32(_ address: UInt64) -> UInt32? { integer(at: address, size: 4).map { UInt32(truncatingIfNeeded: $0) } }
    public func u64(_ address: UInt64) -> UInt64? { integer(at: address, size: 8) }

    /// The 8-bit sum of `length` bytes at `address` (0 for a valid table), nil if out of reach.
    public func checksum(at address: UInt64, length: UInt64) -> UInt8? {
        var sum: UInt8 = 0
        var offset: UInt64 = 0
        while offset < length {
            guard let byte = byte(at: address &+ offset) else { return nil }
            sum = sum &+ byte
            offset += 1
        }
        return sum
    }

    /// Whether the bytes at `address` spell `signature` (ASCII).
    public func matches(_ signature: StaticString, at address: UInt64) -> Bool {
        var matched = true
        signature.withUTF8Buffer { bytes in
            for index in 0..<bytes.count where byte(at: address &+ UInt64(index)) != bytes[index] {
                matched = false
                break
            }
        }
        return matched
    }
}

/// One processor the firmware lists.
public struct ProcessorEntry: Equatable {
    /// The local APIC id: the name IPIs use for this CPU.
    public var apicID: UInt32
    /// Enabled by the firmware: usable now. A disabled entry is a socket with no CPU, or one the
    /// firmware turned off; it is never started.
    public var enabled: Bool

    public init(apicID: UInt32, enabled: Bool) {
        self.apicID = apicID
        self.enabled = enabled
    }
}

public struct IOAPICEntry: Equatable {
    public var id: UInt8
    public var address: UInt64
    /// The first global system interrupt this I/O APIC's inputs receive.
    public var interruptBase: UInt32

    public init(id: UInt8, address: UInt64, interruptBase: UInt32) {
        self.id = id
        self.address = address
        self.interruptBase = interruptBase
    }
}

/// An ISA interrupt the firmware wired to a different I/O APIC input (on PCs, IRQ 0 - the PIT
/// - usually arrives on input 2), with its polarity and trigger mode flags.
public struct InterruptOverride: Equatable {
    public var source: UInt8
    public var globalInterrupt: UInt32
    public var flags: UInt16

    public init(source: UInt8, globalInterrupt: UInt32, flags: UInt16) {
        self.source = source
        self.globalInterrupt = globalInterrupt
        self.flags = flags
    }
}

/// Which tables described the machine.
public enum TopologySource: Equatable {
    case acpi(usedXSDT: Bool)
    case mpTable
}

public struct MachineTopology {
    public var source: TopologySource
    public var localAPICAddress: UInt64
    /// In table order; the firmware lists the boot processor first by convention, but the
    /// kernel finds the BSP by its own APIC id, not by position.
    public var processors: [ProcessorEntry] = []
    public var ioAPICs: [IOAPICEntry] = []
    public var overrides: [InterruptOverride] = []
    /// The machine also has the two 8259 PICs (MADT flag PCAT_COMPAT; always true for MP tables).
    public var hasLegacyPICs: Bool

    public init(source: TopologySource, localAPICAddress: UInt64, hasLegacyPICs: Bool) {
        self.source = source
        self.localAPICAddress = localAPICAddress
        self.hasLegacyPICs = hasLegacyPICs
    }

    public var enabledProcessors: Int { processors.filter { $0.enabled }.count }
}

/// What can be wrong with the firmware's tables. Each case carries what a person needs to find
/// the bad bytes: the table's signature and physical address, the offset of a bad entry.
public enum FirmwareTableError {
    /// No "RSD PTR " structure with a valid checksum in the EBDA or the BIOS area.
    case noRSDP
    /// No "_MP_" floating pointer structure with a valid checksum.
    case noMPFloatingPointer
    /// The MP floating pointer announces one of the default configurations (no table).
    case mpDefaultConfiguration(UInt8)
    case unreachable(table: StaticString, address: UInt64)
    case wrongSignature(expected: StaticString, address: UInt64)
    case badChecksum(table: StaticString, address: UInt64, sum: UInt8)
    /// The table's declared length is smaller than its own header.
    case tooShort(table: StaticString, address: UInt64, length: UInt64, minimum: UInt64)
    /// No MADT ("APIC") among the tables the RSDT/XSDT lists.
    case noMADT
    /// An entry whose length field is 0 (or 1): walking on would loop forever or misread.
    case zeroLengthEntry(table: StaticString, offset: UInt64)
    /// An entry that runs past the end of its table.
    case truncatedEntry(table: StaticString, offset: UInt64, entryLength: UInt64, tableLength: UInt64)
    /// An entry too short for its type's fields.
    case entryTooShort(table: StaticString, offset: UInt64, type: UInt8, length: UInt64, needed: UInt64)
    /// An MP table entry of a type whose length is unknown (MP entries carry no length).
    case unknownEntryType(table: StaticString, offset: UInt64, type: UInt8)
    /// The tables list no enabled processor at all.
    case noEnabledProcessor(table: StaticString)

    public func describe<S: TextSink>(into sink: inout S) {
        switch self {
        case .noRSDP:
            sink.write("no ACPI RSDP ('RSD PTR ' with a valid checksum) in the EBDA or 0xe0000-0xfffff")
        case .noMPFloatingPointer:
            sink.write("no MP floating pointer ('_MP_' with a valid checksum) in the EBDA, the last KiB of base memory or 0xf0000-0xfffff")
        case .mpDefaultConfiguration(let number):
            sink.write("the MP floating pointer names default configuration ")
            Format.decimal(UInt64(number), into: &sink)
            sink.write(" instead of a table (not supported)")
        case .unreachable(let table, let address):
            sink.write(table)
            sink.write(" at ")
            Format.hex(address, into: &sink)
            sink.write(" lies outside the memory the kernel can read")
        case .wrongSignature(let expected, let address):
            sink.write("the table at ")
            Format.hex(address, into: &sink)
            sink.write(" is not the ")
            sink.write(expected)
            sink.write(" its parent table points to (wrong signature)")
        case .badChecksum(let table, let address, let sum):
            sink.write(table)
            sink.write(" at ")
            Format.hex(address, into: &sink)
            sink.write(": bad checksum (its bytes sum to ")
            Format.hex(UInt64(sum), into: &sink)
            sink.write(", not 0)")
        case .tooShort(let table, let address, let length, let minimum):
            sink.write(table)
            sink.write(" at ")
            Format.hex(address, into: &sink)
            sink.write(": length ")
            Format.decimal(length, into: &sink)
            sink.write(" is shorter than its header (")
            Format.decimal(minimum, into: &sink)
            sink.write(" bytes)")
        case .noMADT:
            sink.write("the RSDT/XSDT lists no MADT ('APIC' table)")
        case .zeroLengthEntry(let table, let offset):
            sink.write(table)
            sink.write(": entry at offset ")
            Format.decimal(offset, into: &sink)
            sink.write(" has length 0 or 1 (walking on would never end)")
        case .truncatedEntry(let table, let offset, let entryLength, let tableLength):
            sink.write(table)
            sink.write(": entry at offset ")
            Format.decimal(offset, into: &sink)
            sink.write(" of length ")
            Format.decimal(entryLength, into: &sink)
            sink.write(" runs past the table's end (length ")
            Format.decimal(tableLength, into: &sink)
            sink.write(")")
        case .entryTooShort(let table, let offset, let type, let length, let needed):
            sink.write(table)
            sink.write(": entry at offset ")
            Format.decimal(offset, into: &sink)
            sink.write(" (type ")
            Format.decimal(UInt64(type), into: &sink)
            sink.write(") has length ")
            Format.decimal(length, into: &sink)
            sink.write(", its type needs ")
            Format.decimal(needed, into: &sink)
        case .unknownEntryType(let table, let offset, let type):
            sink.write(table)
            sink.write(": entry at offset ")
            Format.decimal(offset, into: &sink)
            sink.write(" has unknown type ")
            Format.decimal(UInt64(type), into: &sink)
            sink.write(" (its length cannot be known)")
        case .noEnabledProcessor(let table):
            sink.write(table)
            sink.write(" lists no enabled processor")
        }
    }
}

/// The outcome of reading a set of tables: a topology, or the first thing wrong with them.
public enum TopologyResult {
    case found(MachineTopology)
    case failed(FirmwareTableError)
}
