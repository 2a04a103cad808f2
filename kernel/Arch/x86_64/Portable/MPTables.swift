// MPTables.swift - Intel's MultiProcessor Specification tables, the fallback when ACPI has no MADT.
//
// MP specification 1.4, chapter 4: a 16-byte floating pointer structure "_MP_" (checksummed)
// on a 16-byte boundary in the first KiB of the EBDA, the last KiB of base memory, or the BIOS
// ROM at 0xf0000-0xfffff, points to a configuration table "PCMP": a 44-byte checksummed
// header (with the local APIC address and the entry count), then entries whose length is
// fixed by their type - 20 bytes for a processor, 8 for everything else. An unknown type
// cannot be skipped (there is no length field), so it ends the walk with an error.

public enum MPTables {
    static let headerLength: UInt64 = 44

    /// Where the floating pointer may be. `baseMemoryKiB` is the loader's mem_lower.
    public static func searchRegions(ebdaSegment: UInt16?, baseMemoryKiB: UInt64) -> [(start: UInt64, end: UInt64)] {
        var regions: [(start: UInt64, end: UInt64)] = []
        if let segment = ebdaSegment, segment != 0 {
            let start = UInt64(segment) << 4
            regions.append((start, start + 1024))
        }
        if baseMemoryKiB >= 1 {
            let top = baseMemoryKiB * 1024
            regions.append((top - 1024, top))
        }
        regions.append((0xF0000, 0x100000))
        return regions
    }

    public static func findFloatingPointer<M: FirmwareMemory>(_ memory: M, ebdaSegment: UInt16?, baseMemoryKiB: UInt64) -> UInt64? {
        for region in searchRegions(ebdaSegment: ebdaSegment, baseMemoryKiB: baseMemoryKiB) {
            var address = region.start
            while address + 16 <= region.end {
                if memory.matches("_MP_", at: address), memory.checksum(at: address, length: 16) == 0 {
                    return address
                }
                address += 16
            }
        }
        return nil
    }

    public static func discover<M: FirmwareMemory>(_ memory: M, floatingPointer: UInt64) -> TopologyResult {
        guard let tableAddress = memory.u32(floatingPointer + 4), let defaultConfiguration = memory.u8(floatingPointer + 11) else {
            return .failed(.unreachable(table: "MP floating pointer", address: floatingPointer))
        }
        if defaultConfiguration != 0 { return .failed(.mpDefaultConfiguration(defaultConfiguration)) }
        let address = UInt64(tableAddress)
        guard memory.u8(address) != nil else { return .failed(.unreachable(table: "MP configuration table", address: address)) }
        guard memory.matches("PCMP", at: address) else { return .failed(.wrongSignature(expected: "MP configuration table", address: address)) }
        guard let length16 = memory.u16(address + 4) else { return .failed(.unreachable(table: "MP configuration table", address: address)) }
        let length = UInt64(length16)
        guard length >= headerLength else {
            return .failed(.tooShort(table: "MP configuration table", address: address, length: length, minimum: headerLength))
        }
        guard let sum = memory.checksum(at: address, length: length) else {
            return .failed(.unreachable(table: "MP configuration table", address: address))
        }
        guard sum == 0 else { return .failed(.badChecksum(table: "MP configuration table", address: address, sum: sum)) }
        let entryCount = memory.u16(address + 34)!
        var topology = MachineTopology(source: .mpTable, localAPICAddress: UInt64(memory.u32(address + 36)!), hasLegacyPICs: true)
        var offset = headerLength
        for _ in 0..<entryCount {
            guard offset < length else {
                return .failed(.truncatedEntry(table: "MP configuration table", offset: offset, entryLength: 1, tableLength: length))
            }
            let type = memory.u8(address + offset)!
            let entryLength: UInt64
            switch type {
            case 0: entryLength = 20
            case 1, 2, 3, 4: entryLength = 8
            default: return .failed(.unknownEntryType(table: "MP configuration table", offset: offset, type: type))
            }
            guard offset + entryLength <= length else {
                return .failed(.truncatedEntry(table: "MP configuration table", offset: offset, entryLength: entryLength, tableLength: length))
            }
            let entry = address + offset
            if type == 0 {
                let flags = memory.u8(entry + 3)!
                topology.processors.append(ProcessorEntry(apicID: UInt32(memory.u8(entry + 1)!), enabled: flags & 1 != 0))
            } else if type == 2 && memory.u8(entry + 3)! & 1 != 0 {
                topology.ioAPICs.append(IOAPICEntry(id: memory.u8(entry + 1)!, address: UInt64(memory.u32(entry + 4)!), interruptBase: 0))
            }
            offset += entryLength
        }
        guard topology.enabledProcessors > 0 else { return .failed(.noEnabledProcessor(table: "MP configuration table")) }
        return .found(topology)
    }
}
