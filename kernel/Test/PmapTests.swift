// PmapTests.swift - the kernel page tables: mappings, PV entries, table pages, protections.
//
// The cases map pages in the pmap test window (KernelLayout.pmapTestWindowBase), which no
// other code uses, so every mapping made here is the test's own.

import ArchSupport

enum PmapTests {
    static let window = KernelLayout.pmapTestWindowBase

    static var suite: TestSuite {
        TestSuite("pmap", [
            TestCase("enterExtractRemoveRoundTrip", enterExtractRemoveRoundTrip),
            TestCase("writeThroughOneMappingIsSeenThroughTheOther", writeThroughOneMappingIsSeenThroughTheOther),
            TestCase("removeAllLeavesNoMappingAndNoPVEntry", removeAllLeavesNoMappingAndNoPVEntry),
            TestCase("emptyPageTablesAreFreed", emptyPageTablesAreFreed),
            TestCase("enterReportsShortageAndChangesNothing", enterReportsShortageAndChangesNothing),
            TestCase("directMapCoversEveryUsablePage", directMapCoversEveryUsablePage),
            TestCase("removingFreesAndNeverAllocates", removingFreesAndNeverAllocates),
            TestCase("writeToReadOnlyMappingFaults", expectsPanic: "(write, protection violation)",
                     inFrame: "PmapTests.writeToReadOnlyMappingFaults", writeToReadOnlyMappingFaults),
            TestCase("bootIdentityMapIsGone", expectsPanic: "page fault at 0x0000000000800000 (read, page not present)",
                     inFrame: "PmapTests.bootIdentityMapIsGone", bootIdentityMapIsGone),
            TestCase("kernelTextIsReadOnly", expectsPanic: "(write, protection violation)",
                     inFrame: "PmapTests.kernelTextIsReadOnly", kernelTextIsReadOnly),
        ])
    }

    static func newPage() -> PageIndex { PhysicalMemory.allocate(order: 0, .ordinary)! }

    static func enterExtractRemoveRoundTrip() {
        let freeBefore = PhysicalMemory.freePages
        let page = newPage()
        let address = window + 0x5000
        Test.expect(Pmap.enter(address, page: page, protection: .readWrite, .system), "enter succeeds")
        let physical = PhysicalMemory.physicalAddress(of: page)
        Test.expect(Pmap.extract(address) == physical, "extract gives the page's physical address")
        Test.expect(Pmap.extract(address + 123) == physical + 123, "extract keeps the offset")
        pointer(at: address).storeBytes(of: 0xC0FFEE, toByteOffset: 8, as: UInt64.self)
        Test.expectEqual(PhysicalMemory.pointer(to: page).load(fromByteOffset: 8, as: UInt64.self), UInt64(0xC0FFEE), "direct map sees the write")
        Test.expectEqual(PhysicalMemory.mappings(of: page).count, UInt32(1), "one PV entry")
        Pmap.remove(address, pages: 1)
        Test.expect(Pmap.extract(address) == nil, "unmapped after remove")
        Test.expect(PhysicalMemory.mappings(of: page).isEmpty, "no PV entry after remove")
        PhysicalMemory.free(page)
        Test.expectEqual(PhysicalMemory.freePages, freeBefore, "page and table pages all returned")
    }

    static func writeThroughOneMappingIsSeenThroughTheOther() {
        let page = newPage()
        let first = window + 0x10_0000, second = window + 0x2345_6000
        Test.expect(Pmap.enter(first, page: page, protection: .readWrite, .system) && Pmap.enter(second, page: page, protection: .readWrite, .system), "both mappings entered")
        for offset in stride(from: 0, to: Int(pageSize), by: 512) {
            pointer(at: first).storeBytes(of: UInt64(offset) &* UInt64(0x9E37_79B9), toByteOffset: offset, as: UInt64.self)
        }
        var mismatches = 0
        for offset in stride(from: 0, to: Int(pageSize), by: 512) where pointer(at: second).load(fromByteOffset: offset, as: UInt64.self) != UInt64(offset) &* UInt64(0x9E37_79B9) {
            mismatches += 1
        }
        Test.expectEqual(mismatches, 0, "words read back through the second mapping that differ")
        Test.expectEqual(PhysicalMemory.mappings(of: page).count, UInt32(2), "two PV entries")
        Pmap.removeAll(page)
        PhysicalMemory.free(page)
    }

    static func removeAllLeavesNoMappingAndNoPVEntry() {
        let page = newPage()
        let pvBefore = PVEntries.inUse
        let addresses = [window + 0x1000, window + 0x40_1000, window + 0x3000_0000]
        for address in addresses { Test.expect(Pmap.enter(address, page: page, protection: .readWrite, .system), "enter \(hex: address)") }
        Test.expectEqual(PVEntries.inUse, pvBefore + 3, "PV entries in use")
        Pmap.removeAll(page)
        for address in addresses { Test.expect(Pmap.extract(address) == nil, "\(hex: address) unmapped") }
        Test.expect(PhysicalMemory.mappings(of: page).isEmpty && PhysicalMemory.mappings(of: page).count == 0, "PV list empty")
        Test.expectEqual(PVEntries.inUse, pvBefore, "PV entries in use")
        PhysicalMemory.free(page)
    }

    static func emptyPageTablesAreFreed() {
        let page = newPage()
        let freeWithPage = PhysicalMemory.freePages
        let allocatedBefore = Pmap.statistics.tablePagesAllocated
        let freedBefore = Pmap.statistics.tablePagesFreed
        // A fresh 512 GiB slot would need a PDPT too; the window shares the PML4 slot, so at
        // least a PD and a PT are new at an address no other case uses.
        let address = window + 0x2000_0000 + 0x7000
        Test.expect(Pmap.enter(address, page: page, protection: .readWrite, .system), "enter")
        let tables = Pmap.statistics.tablePagesAllocated - allocatedBefore
        Test.expect(tables >= 2, "new table pages were allocated (\(tables))")
        Test.expectEqual(freeWithPage - PhysicalMemory.freePages, tables, "free pages used by tables")
        Pmap.remove(address, pages: 1)
        Test.expectEqual(Pmap.statistics.tablePagesFreed - freedBefore, tables, "table pages freed")
        Test.expectEqual(PhysicalMemory.freePages, freeWithPage, "free pages after remove")
        PhysicalMemory.free(page)
    }

    static func enterReportsShortageAndChangesNothing() {
        let page = newPage()
        let saved = PhysicalMemory.faultInjector
        let free = PhysicalMemory.freePages
        let pv = PVEntries.inUse
        PhysicalMemory.faultInjector = FaultInjector(pattern: .everyNth(2), onlyRequester: .system, seed: 1)
        // Needs at least two new tables: the first one is granted, the second refused.
        let address = window + 0x3800_0000
        let entered = Pmap.enter(address, page: page, protection: .readWrite, .system)
        PhysicalMemory.faultInjector = saved
        Test.expect(!entered, "enter reports the shortage")
        Test.expect(Pmap.extract(address) == nil, "nothing mapped")
        Test.expectEqual(PhysicalMemory.freePages, free, "no table page kept")
        Test.expectEqual(PVEntries.inUse, pv, "no PV entry kept")
        Test.expect(Pmap.enter(address, page: page, protection: .readWrite, .system), "enter succeeds once memory is there")
        Pmap.removeAll(page)
        PhysicalMemory.free(page)
    }

    static func directMapCoversEveryUsablePage() {
        for range in MemoryBootstrap.map!.usable {
            let middle = range.start + ((range.byteCount / 2) & ~(pageSize - 1))
            for physical in [range.start, range.end - pageSize, middle] {
                let virtual = KernelLayout.directMapAddress(of: physical)
                Test.expect(Pmap.extract(virtual) == physical, "direct map of \(hex: physical)")
            }
        }
        Test.expect(Pmap.extract(KernelLayout.directMapBase) == nil, "page 0 is not in the direct map")
        Test.expect(Pmap.extract(VirtualAddress(0)) == nil, "virtual page 0 is not mapped")
        Test.expect(Pmap.extract(VirtualAddress(arch_boot_stack_guard())) == nil, "the boot stack guard page is not mapped")
        Test.expect(Pmap.extract(VirtualAddress(arch_text_start())) == PhysicalAddress(arch_text_start()), "kernel text at its link address")
    }

    static func removingFreesAndNeverAllocates() {
        let page = newPage()
        for number in 0..<8 { _ = Pmap.enter(window + 0x0800_0000 + UInt64(number) * pageSize, page: page, protection: .readWrite, .system) }
        let pvBefore = Zones.pvEntry.statistics.allocations
        // Any allocation inside these free paths panics (kernel/Lib/FreePath.swift).
        Pmap.remove(window + 0x0800_0000, pages: 8)
        PhysicalMemory.free(page)
        Test.expectEqual(Zones.pvEntry.statistics.allocations, pvBefore, "PV entries allocated while removing")
        Test.expectEqual(FreePath.currentDepth, 0, "free path depth after returning")
    }

    @inline(never)
    static func writeToReadOnlyMappingFaults() {
        let page = newPage()
        let address = window + 0x6000
        _ = Pmap.enter(address, page: page, protection: .readWrite, .system)
        pointer(at: address).storeBytes(of: 1, as: UInt64.self)
        Pmap.protect(address, pages: 1, .read)
        Test.expectEqual(pointer(at: address).load(as: UInt64.self), UInt64(1), "still readable")
        pointer(at: address).storeBytes(of: 2, as: UInt64.self)
    }

    @inline(never)
    static func bootIdentityMapIsGone() {
        let lowMemory = UnsafePointer<UInt64>(bitPattern: UInt(PanicTests.opaque(UInt64(0x80_0000))))!
        Test.diagnostic("read \(lowMemory.pointee)")
    }

    @inline(never)
    static func kernelTextIsReadOnly() {
        let text = UnsafeMutablePointer<UInt8>(bitPattern: UInt(PanicTests.opaque(arch_text_start())))!
        text.pointee = 0x90
    }
}
