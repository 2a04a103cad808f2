// ACPITables.swift - finding the MADT through ACPI's RSDP and RSDT/XSDT, and reading it.
//
// The chain (ACPI 6.5, chapter 5.2):
//   RSDP  "RSD PTR " on a 16-byte boundary in the first KiB of the EBDA or in 0xe0000-0xfffff;
//         20 bytes with a checksum (revision 0), 36 with an extended checksum (revision >= 2,
//         which adds the 64-bit XSDT address);
//   RSDT/XSDT  a table of 32-bit (RSDT) or 64-bit (XSDT) physical addresses of other tables;
//   MADT  signature "APIC": the local APIC address, flags, then variable-length entries,
//         each starting with a type byte and a length byte.
// Every table starts with the same 36-byte header (signature, length, revision, checksum, ...)
// and its bytes, over `length`, sum to 0. The walk refuses what would send it astray: a
// length shorter than the header, an entry of length 0 or 1 (the next entry would be the same
// one, forever), an entry that runs past the table's end, an entry too short for its type.

public enum ACPITables {
    static let headerLength: UInt64 = 36
    static let madtEntriesOffset: UInt64 = 44

    /// MADT entry types the kernel reads; others are skipped by their length.
    enum MADTEntry: UInt8 {
        case localAPIC = 0, ioAPIC = 1, interruptOverride = 2, localAPICAddressOverride = 5, localX2APIC = 9

        /// The fewest bytes an entry of this type has.
        var minimumLength: UInt64 {
            switch self {
            case .localAPIC: return 8
            case .ioAPIC: return 12
            case .interruptOverride: return 10
            case .localAPICAddressOverride: return 12
            case .localX2APIC: return 16
            }
        }
    }

    /// Where the RSDP may be: the first KiB of the EBDA (when its segment is known) and the
    /// BIOS read-only area.
    public static func searchRegions(ebdaSegment: UInt16?) -> [(start: UInt64, end: UInt64)] {
        var regions: [(start: UInt64, end: UInt64)] = []
        if let segment = ebdaSegment, segment != 0 {
            let start = UInt64(segment) << 4
            regions.append((start, start + 1024))
        }
        regions.append((0xE0000, 0x100000))
        return regions
    }

    /// The RSDP's address, or nil. A candidate with the signature but a bad checksum is passed
    /// over (the signature can occur by chance in ROM), so this finds the first valid one.
    public static func findRSDP<M: FirmwareMemory>(_ memory: M, ebdaSegment: UInt16?) -> UInt64? {
        for region in searchRegions(ebdaSegment: ebdaSegment) {
            var address = region.start
            while address + 20 <= region.end {
                if memory.matches("RSD PTR ", at: address), memory.checksum(at: address, length: 20) == 0 {
                    return address
                }
                address += 16
            }
        }
        return nil
    }

    /// Reads the CPUs and APICs from the MADT the RSDP at `rsdp` leads to.
    public static func discover<M: FirmwareMemory>(_ memory: M, rsdp: UInt64) -> TopologyResult {
        guard let revision = memory.u8(rsdp + 15), let rsdtAddress = memory.u32(rsdp + 16) else {
            return .failed(.unreachable(table: "RSDP", address: rsdp))
        }
        var rootAddress = UInt64(rsdtAddress)
        var entrySize: UInt64 = 4
        var rootSignature: StaticString = "RSDT"
        if revision >= 2 {
            guard let length = memory.u32(rsdp + 20), let xsdt = memory.u64(rsdp + 24) else {
                return .failed(.unreachable(table: "RSDP", address: rsdp))
            }
            guard let sum = memory.checksum(at: rsdp, length: UInt64(length)) else { return .failed(.unreachable(table: "RSDP", address: rsdp)) }
            if sum != 0 { return .failed(.badChecksum(table: "RSDP (extended)", address: rsdp, sum: sum)) }
            if xsdt != 0 {
                rootAddress = xsdt
                entrySize = 8
                rootSignature = "XSDT"
            }
        }
        let rootLength: UInt64
        switch checkTable(memory, at: rootAddress, signature: rootSignature, name: rootSignature) {
        case .failure(let error): return .failed(error)
        case .valid(let length): rootLength = length
        }
        var offset = headerLength
        while offset + entrySize <= rootLength {
            guard let tableAddress = memory.integer(at: rootAddress + offset, size: Int(entrySize)) else {
                return .failed(.unreachable(table: rootSignature, address: rootAddress + offset))
            }
            offset += entrySize
            // Only the MADT interests us; a table we cannot reach or that is some other table is
            // not our business, so its signature is read before anything is demanded of it.
            guard memory.matches("APIC", at: tableAddress) else { continue }
            return readMADT(memory, at: tableAddress, usedXSDT: entrySize == 8)
        }
        return .failed(.noMADT)
    }

    enum TableCheck {
        case valid(length: UInt64)
        case failure(FirmwareTableError)
    }

    /// Signature, a length at least the header's, every byte reachable, a zero checksum.
    /// `name` is what messages call the table (the MADT's signature is "APIC").
    static func checkTable<M: FirmwareMemory>(_ memory: M, at address: UInt64, signature: StaticString, name: StaticString) -> TableCheck {
        guard memory.u8(address) != nil else { return .failure(.unreachable(table: name, address: address)) }
        guard memory.matches(signature, at: address) else { return .failure(.wrongSignature(expected: name, address: address)) }
        guard let length = memory.u32(address + 4) else { return .failure(.unreachable(table: name, address: address)) }
        guard UInt64(length) >= headerLength else {
            return .failure(.tooShort(table: name, address: address, length: UInt64(length), minimum: headerLength))
        }
        guard let sum = memory.checksum(at: address, length: UInt64(length)) else {
            return .failure(.unreachable(table: name, address: address))
        }
        guard sum == 0 else { return .failure(.badChecksum(table: name, address: address, sum: sum)) }
        return .valid(length: UInt64(length))
    }

    /// Reads a MADT: its header, then each entry by its length.
    public static func readMADT<M: FirmwareMemory>(_ memory: M, at address: UInt64, usedXSDT: Bool) -> TopologyResult {
        let length: UInt64
        switch checkTable(memory, at: address, signature: "APIC", name: "MADT") {
        case .failure(let error): return .failed(error)
        case .valid(let checked): length = checked
        }
        guard length >= madtEntriesOffset else {
            return .failed(.tooShort(table: "MADT", address: address, length: length, minimum: madtEntriesOffset))
        }
        // Reachable: checkTable summed every byte.
        let flags = memory.u32(address + 40)!
        var topology = MachineTopology(source: .acpi(usedXSDT: usedXSDT), localAPICAddress: UInt64(memory.u32(address + 36)!),
                                       hasLegacyPICs: flags & 1 != 0)
        var offset = madtEntriesOffset
        while offset < length {
            guard offset + 2 <= length else {
                return .failed(.truncatedEntry(table: "MADT", offset: offset, entryLength: 2, tableLength: length))
            }
            let type = memory.u8(address + offset)!
            let entryLength = UInt64(memory.u8(address + offset + 1)!)
            if entryLength < 2 { return .failed(.zeroLengthEntry(table: "MADT", offset: offset)) }
            if offset + entryLength > length {
                return .failed(.truncatedEntry(table: "MADT", offset: offset, entryLength: entryLength, tableLength: length))
            }
            let entry = address + offset
            if let kind = MADTEntry(rawValue: type) {
                if entryLength < kind.minimumLength {
                    return .failed(.entryTooShort(table: "MADT", offset: offset, type: type, length: entryLength, needed: kind.minimumLength))
                }
                switch kind {
                case .localAPIC:
                    let flags = memory.u32(entry + 4)!
                    topology.processors.append(ProcessorEntry(apicID: UInt32(memory.u8(entry + 3)!), enabled: flags & 1 != 0))
                case .localX2APIC:
                    let flags = memory.u32(entry + 8)!
                    topology.processors.append(ProcessorEntry(apicID: memory.u32(entry + 4)!, enabled: flags & 1 != 0))
                case .ioAPIC:
                    topology.ioAPICs.append(IOAPICEntry(id: memory.u8(entry + 2)!, address: UInt64(memory.u32(entry + 4)!),
                                                        interruptBase: memory.u32(entry + 8)!))
                case .interruptOverride:
                    topology.overrides.append(InterruptOverride(source: memory.u8(entry + 3)!, globalInterrupt: memory.u32(entry + 4)!,
                                                                flags: memory.u16(entry + 8)!))
                case .localAPICAddressOverride:
                    topology.localAPICAddress = memory.u64(entry + 4)!
                }
            }
            offset += entryLength
        }
        guard topology.enabledProcessors > 0 else { return .failed(.noEnabledProcessor(table: "MADT")) }
        return .found(topology)
    }
}
