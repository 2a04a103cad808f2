// AddressTests.swift - the typed addresses: their arithmetic, and that wrapping a UInt64 in
// them changes no zone object's size.
import Testing
@testable import KernelPortable

@Suite struct AddressTests {
    @Test func virtualAddressArithmeticIsInBytes() {
        let base = VirtualAddress(0x6000_0000_1000)
        #expect(base + 0x2000 == VirtualAddress(0x6000_0000_3000))
        #expect(base - 0x1000 == VirtualAddress(0x6000_0000_0000))
        #expect((base + 0x2000) - base == 0x2000, "address - address is a byte count")
        var moving = base
        moving += 4096
        #expect(moving == VirtualAddress(0x6000_0000_2000))
        #expect(base < moving && !(moving < base))
    }

    @Test func roundingAndAlignment() {
        let address = VirtualAddress(0x12_3456)
        #expect(address.roundedDown(to: pageSize) == VirtualAddress(0x12_3000))
        #expect(address.roundedUp(to: pageSize) == VirtualAddress(0x12_4000))
        #expect(VirtualAddress(0x12_3000).roundedUp(to: pageSize) == VirtualAddress(0x12_3000), "an aligned address stays")
        #expect(address.offset(within: pageSize) == 0x456)
        #expect(!address.isPageAligned && VirtualAddress(0x20_0000).isAligned(to: largePageSize))
        #expect(!VirtualAddress(0x20_1000).isAligned(to: largePageSize) && VirtualAddress(0x20_1000).isPageAligned)
        let physical = PhysicalAddress(0x20_1234)
        #expect(physical.roundedDown(to: pageSize) == PhysicalAddress(0x20_1000) && physical.roundedUp(to: largePageSize) == PhysicalAddress(0x40_0000))
        #expect(physical - PhysicalAddress(0x20_0000) == 0x1234 && PhysicalAddress(0x20_0000).isAligned(to: largePageSize))
    }

    @Test func typedFieldsKeepZoneObjectsTheSameSize() {
        #expect(MemoryLayout<VirtualAddress>.size == 8 && MemoryLayout<PhysicalAddress>.size == 8)
        #expect(MemoryLayout<Protection>.size == 1)
        // map_entry and pv_entry are zone objects: their sizes set how many fit in a slab.
        #expect(MemoryLayout<MapEntry>.size == 92 && MemoryLayout<MapEntry>.stride == 96)
        #expect(MemoryLayout<PVEntry>.size == 24 && MemoryLayout<PVEntry>.stride == 24)
    }

    @Test func protectionBitsAreWhatTheGdbHelpersDecode() {
        #expect(Protection.read.rawValue == 1 && Protection.write.rawValue == 2 && Protection.execute.rawValue == 4)
        #expect(Protection.readWrite == [.read, .write] && Protection.readWrite.rawValue == 3)
    }
}
