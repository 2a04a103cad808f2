// FirmwareTablesTests.swift - the ACPI and MP table parsers against built and broken tables.
import Testing
@testable import KernelPortable

/// A sparse physical memory: bytes written at their addresses, everything else out of reach.
struct FakeFirmwareMemory: FirmwareMemory {
    var bytes: [UInt64: UInt8] = [:]
    func byte(at address: UInt64) -> UInt8? { bytes[address] }

    mutating func write(_ data: [UInt8], at address: UInt64) {
        for (index, byte) in data.enumerated() { bytes[address + UInt64(index)] = byte }
    }
    /// Zero-filled reachable memory (the BIOS area the RSDP search scans).
    mutating func fill(_ start: UInt64, _ end: UInt64) {
        for address in start..<end { bytes[address] = 0 }
    }
}

func le(_ value: UInt64, _ size: Int) -> [UInt8] { (0..<size).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) } }
func ascii(_ text: String) -> [UInt8] { Array(text.utf8) }
/// Sets byte `at` so that the bytes sum to zero.
func fixChecksum(_ data: inout [UInt8], at index: Int, over length: Int? = nil) {
    data[index] = 0
    let sum = data[0..<(length ?? data.count)].reduce(UInt8(0)) { $0 &+ $1 }
    data[index] = 0 &- sum
}

/// A table with the 36-byte ACPI header and `body` after it, checksummed.
func acpiTable(_ signature: String, _ body: [UInt8]) -> [UInt8] {
    var table = ascii(signature) + le(UInt64(36 + body.count), 4) + [1, 0] + ascii("SWIFTK") + ascii("KERNELTB") + le(1, 4) + le(0, 4) + le(0, 4)
    table += body
    fixChecksum(&table, at: 9)
    return table
}

enum MADTPiece {
    static func localAPIC(uid: UInt8, apic: UInt8, enabled: Bool) -> [UInt8] { [0, 8, uid, apic] + le(enabled ? 1 : 0, 4) }
    static func ioAPIC(id: UInt8, address: UInt64, base: UInt32) -> [UInt8] { [1, 12, id, 0] + le(address, 4) + le(UInt64(base), 4) }
    static func override(source: UInt8, gsi: UInt32, flags: UInt16) -> [UInt8] { [2, 10, 0, source] + le(UInt64(gsi), 4) + le(UInt64(flags), 2) }
    static func x2APIC(id: UInt32, enabled: Bool) -> [UInt8] { [9, 16, 0, 0] + le(UInt64(id), 4) + le(enabled ? 1 : 0, 4) + le(0, 4) }
}

func madt(_ entries: [UInt8], localAPIC: UInt64 = 0xFEE0_0000, flags: UInt32 = 1) -> [UInt8] {
    acpiTable("APIC", le(localAPIC, 4) + le(UInt64(flags), 4) + entries)
}

func describe(_ error: FirmwareTableError) -> String {
    var sink = StringSink()
    error.describe(into: &sink)
    return sink.text
}

/// A machine with an RSDP at 0xf5a00 in the BIOS area, an RSDT (or XSDT) at 0x7fe0000, a FACP
/// and the MADT.
func acpiMachine(madtBytes: [UInt8], revision: UInt8 = 0, extendedSum: Bool = true) -> FakeFirmwareMemory {
    var memory = FakeFirmwareMemory()
    memory.fill(0xE0000, 0x100000)
    let rsdtAddress: UInt64 = 0x7FE_0000, facp: UInt64 = 0x7FE_1000, madtAddress: UInt64 = 0x7FE_2000, xsdtAddress: UInt64 = 0x7FE_3000
    var rsdp = ascii("RSD PTR ") + [0] + ascii("SWIFTK") + [revision] + le(rsdtAddress, 4)
    if revision >= 2 {
        rsdp += le(36, 4) + le(xsdtAddress, 8) + [0, 0, 0, 0]
        fixChecksum(&rsdp, at: 8, over: 20)
        fixChecksum(&rsdp, at: 32)
        if !extendedSum { rsdp[33] = 0x55; rsdp[34] = 0 }
    } else {
        fixChecksum(&rsdp, at: 8)
    }
    memory.write(rsdp, at: 0xF5A00)
    memory.write(acpiTable("RSDT", le(facp, 4) + le(madtAddress, 4)), at: rsdtAddress)
    memory.write(acpiTable("XSDT", le(facp, 8) + le(madtAddress, 8)), at: xsdtAddress)
    memory.write(acpiTable("FACP", [UInt8](repeating: 0, count: 20)), at: facp)
    memory.write(madtBytes, at: madtAddress)
    return memory
}

func discoverACPI(_ memory: FakeFirmwareMemory) -> TopologyResult {
    guard let rsdp = ACPITables.findRSDP(memory, ebdaSegment: nil) else { return .failed(.noRSDP) }
    return ACPITables.discover(memory, rsdp: rsdp)
}

func topology(_ result: TopologyResult) -> MachineTopology? {
    if case .found(let topology) = result { return topology }
    return nil
}

func failure(_ result: TopologyResult) -> String? {
    if case .failed(let error) = result { return describe(error) }
    return nil
}

@Suite struct ACPITablesTests {
    static let fourCPUs = MADTPiece.localAPIC(uid: 0, apic: 0, enabled: true) + MADTPiece.localAPIC(uid: 1, apic: 1, enabled: true)
        + MADTPiece.localAPIC(uid: 2, apic: 4, enabled: true) + MADTPiece.localAPIC(uid: 3, apic: 5, enabled: false)
        + MADTPiece.ioAPIC(id: 0, address: 0xFEC0_0000, base: 0) + MADTPiece.override(source: 0, gsi: 2, flags: 0)
        + MADTPiece.override(source: 9, gsi: 9, flags: 0xD)

    @Test func readsProcessorsIOAPICAndOverridesFromTheMADT() throws {
        let result = try #require(topology(discoverACPI(acpiMachine(madtBytes: madt(Self.fourCPUs)))))
        #expect(result.source == .acpi(usedXSDT: false))
        #expect(result.localAPICAddress == 0xFEE0_0000)
        #expect(result.processors.map { $0.apicID } == [0, 1, 4, 5])
        #expect(result.processors.map { $0.enabled } == [true, true, true, false])
        #expect(result.enabledProcessors == 3)
        #expect(result.ioAPICs == [IOAPICEntry(id: 0, address: 0xFEC0_0000, interruptBase: 0)])
        #expect(result.overrides == [InterruptOverride(source: 0, globalInterrupt: 2, flags: 0), InterruptOverride(source: 9, globalInterrupt: 9, flags: 0xD)])
        #expect(result.hasLegacyPICs)
    }

    @Test func prefersTheXSDTWhenTheRSDPHasRevisionTwo() throws {
        let result = try #require(topology(discoverACPI(acpiMachine(madtBytes: madt(Self.fourCPUs), revision: 2))))
        #expect(result.source == .acpi(usedXSDT: true))
        #expect(result.enabledProcessors == 3)
    }

    @Test func readsX2APICEntriesAndTheAddressOverride() throws {
        let entries = MADTPiece.localAPIC(uid: 0, apic: 0, enabled: true) + MADTPiece.x2APIC(id: 300, enabled: true)
            + [5, 12, 0, 0] + le(0x1_FEE0_0000, 8) + [0x7F, 3, 0]   // an unknown type 0x7f, skipped by length
        let result = try #require(topology(discoverACPI(acpiMachine(madtBytes: madt(entries)))))
        #expect(result.processors.map { $0.apicID } == [0, 300])
        #expect(result.localAPICAddress == 0x1_FEE0_0000)
    }

    @Test func findsTheRSDPInTheEBDAFirst() {
        var memory = acpiMachine(madtBytes: madt(Self.fourCPUs))
        memory.fill(0x9FC00, 0xA0000)
        var rsdp = ascii("RSD PTR ") + [0] + ascii("SWIFTK") + [0] + le(0x7FE_0000, 4)
        fixChecksum(&rsdp, at: 8)
        memory.write(rsdp, at: 0x9FC40)
        #expect(ACPITables.findRSDP(memory, ebdaSegment: 0x9FC0) == 0x9FC40)
        #expect(ACPITables.findRSDP(memory, ebdaSegment: nil) == 0xF5A00)
    }

    @Test func passesOverAnRSDPSignatureWithABadChecksum() {
        var memory = FakeFirmwareMemory()
        memory.fill(0xE0000, 0x100000)
        memory.write(ascii("RSD PTR ") + [0x12] + ascii("SWIFTK") + [0] + le(0, 4), at: 0xE0010)
        #expect(ACPITables.findRSDP(memory, ebdaSegment: nil) == nil)
        #expect(describe(.noRSDP).contains("no ACPI RSDP"))
    }

    @Test func rejectsAnMADTWithABadChecksum() {
        var table = madt(Self.fourCPUs)
        table[50] &+= 1
        #expect(failure(discoverACPI(acpiMachine(madtBytes: table))) == "MADT at 0x7fe2000: bad checksum (its bytes sum to 0x1, not 0)")
    }

    @Test func rejectsABadExtendedRSDPChecksum() {
        let message = failure(discoverACPI(acpiMachine(madtBytes: madt(Self.fourCPUs), revision: 2, extendedSum: false)))
        #expect(message?.hasPrefix("RSDP (extended) at 0xf5a00: bad checksum") == true)
    }

    @Test func rejectsAZeroLengthEntryInsteadOfLoopingForever() {
        let entries = MADTPiece.localAPIC(uid: 0, apic: 0, enabled: true) + [0, 0, 0, 0, 0, 0, 0, 0]
        #expect(failure(discoverACPI(acpiMachine(madtBytes: madt(entries)))) == "MADT: entry at offset 52 has length 0 or 1 (walking on would never end)")
    }

    @Test func rejectsAnEntryThatRunsPastTheTable() {
        let entries = MADTPiece.localAPIC(uid: 0, apic: 0, enabled: true) + [1, 12, 0, 0]   // an I/O APIC entry cut short
        #expect(failure(discoverACPI(acpiMachine(madtBytes: madt(entries)))) == "MADT: entry at offset 52 of length 12 runs past the table's end (length 56)")
    }

    @Test func rejectsAnEntryTooShortForItsType() {
        let entries = MADTPiece.localAPIC(uid: 0, apic: 0, enabled: true) + [0, 4, 1, 1]
        #expect(failure(discoverACPI(acpiMachine(madtBytes: madt(entries)))) == "MADT: entry at offset 52 (type 0) has length 4, its type needs 8")
    }

    @Test func rejectsALengthShorterThanTheHeader() {
        var table = madt(Self.fourCPUs)
        table[4] = 20; table[5] = 0; table[6] = 0; table[7] = 0
        #expect(failure(discoverACPI(acpiMachine(madtBytes: table)))?.hasPrefix("MADT at 0x7fe2000: length 20 is shorter than its header") == true)
    }

    @Test func reportsAMissingMADTAndAnUnreachableTable() {
        var memory = acpiMachine(madtBytes: acpiTable("SSDT", []))
        #expect(failure(discoverACPI(memory)) == "the RSDT/XSDT lists no MADT ('APIC' table)")
        memory = acpiMachine(madtBytes: madt(Self.fourCPUs))
        for address in UInt64(0x7FE_0000)..<0x7FE_0040 { memory.bytes[address] = nil }
        #expect(failure(discoverACPI(memory)) == "RSDT at 0x7fe0000 lies outside the memory the kernel can read")
    }

    @Test func reportsAnMADTWithNoEnabledProcessor() {
        let entries = MADTPiece.localAPIC(uid: 0, apic: 0, enabled: false)
        #expect(failure(discoverACPI(acpiMachine(madtBytes: madt(entries)))) == "MADT lists no enabled processor")
    }
}

@Suite struct MPTablesTests {
    /// A floating pointer at 0xf6a0 and a configuration table at 0xf6b00 with `entries`.
    func mpMachine(_ entries: [[UInt8]], lengthCut: Int = 0, breakSum: Bool = false) -> FakeFirmwareMemory {
        var memory = FakeFirmwareMemory()
        memory.fill(0xF0000, 0x100000)
        var pointer = ascii("_MP_") + le(0xF6B00, 4) + [1, 4, 0, 0, 0, 0, 0, 0]
        fixChecksum(&pointer, at: 10)
        memory.write(pointer, at: 0xF6A00)
        let body = entries.flatMap { $0 }
        var table = ascii("PCMP") + le(UInt64(44 + body.count - lengthCut), 2) + [4, 0] + ascii("SWIFTK  ") + ascii("KERNEL      ")
            + le(0, 4) + le(0, 2) + le(UInt64(entries.count), 2) + le(0xFEE0_0000, 4) + le(0, 4)
        table += body
        fixChecksum(&table, at: 7, over: table.count - lengthCut)
        if breakSum { table[20] &+= 1 }
        memory.write(table, at: 0xF6B00)
        return memory
    }

    func processor(_ apic: UInt8, enabled: Bool) -> [UInt8] { [0, apic, 0x14, enabled ? 1 : 0] + [UInt8](repeating: 0, count: 16) }

    func discover(_ memory: FakeFirmwareMemory) -> TopologyResult {
        guard let pointer = MPTables.findFloatingPointer(memory, ebdaSegment: nil, baseMemoryKiB: 639) else { return .failed(.noMPFloatingPointer) }
        return MPTables.discover(memory, floatingPointer: pointer)
    }

    @Test func readsProcessorsAndIOAPICs() throws {
        let bus: [UInt8] = [1, 0] + ascii("ISA   ")
        let ioapic: [UInt8] = [2, 2, 0x11, 1] + le(0xFEC0_0000, 4)
        let result = try #require(topology(discover(mpMachine([processor(0, enabled: true), processor(1, enabled: true), processor(2, enabled: false), bus, ioapic]))))
        #expect(result.source == .mpTable)
        #expect(result.processors.map { $0.apicID } == [0, 1, 2])
        #expect(result.enabledProcessors == 2)
        #expect(result.ioAPICs == [IOAPICEntry(id: 2, address: 0xFEC0_0000, interruptBase: 0)])
    }

    @Test func rejectsABadChecksum() {
        #expect(failure(discover(mpMachine([processor(0, enabled: true)], breakSum: true)))?.hasPrefix("MP configuration table at 0xf6b00: bad checksum") == true)
    }

    @Test func rejectsAnUnknownEntryTypeAndATruncatedEntry() {
        #expect(failure(discover(mpMachine([processor(0, enabled: true), [9, 0, 0, 0, 0, 0, 0, 0]]))) == "MP configuration table: entry at offset 64 has unknown type 9 (its length cannot be known)")
        #expect(failure(discover(mpMachine([processor(0, enabled: true), processor(1, enabled: true)], lengthCut: 4))) == "MP configuration table: entry at offset 64 of length 20 runs past the table's end (length 80)")
    }

    @Test func reportsNoFloatingPointer() {
        var memory = FakeFirmwareMemory()
        memory.fill(0xF0000, 0x100000)
        #expect(failure(discover(memory))?.hasPrefix("no MP floating pointer") == true)
    }
}
