// BuddyAllocatorTests.swift - the page descriptor record, and the PV list on it. The buddy
// allocator's own tests are in BuddyDescriptorTests.swift.
import Testing
@testable import KernelPortable

@Suite struct PageDescriptorTests {
    @Test func descriptorIsAtMost48Bytes() {
        // 48 bytes of VMPage plus the 8-byte mem_desc word per 4 KiB page (1.37% of RAM).
        #expect(MemoryLayout<VMPage>.stride == 48)
        #expect(MemoryLayout<MemDesc>.stride == 8)
    }

    @Test func queueIsOneByteAndANewDescriptorIsEmpty() {
        #expect(MemoryLayout<PageUse>.size == 1 && MemoryLayout<PageQueue>.size == 1)
        let page = VMPage()
        #expect(page.queue == .none && page.flags.isEmpty && page.object == nil)
    }

    @Test func pvListInsertAndRemove() {
        var page = VMPage()
        let entries = UnsafeMutablePointer<PVEntry>.allocate(capacity: 3)
        defer { entries.deallocate() }
        let pmap = UnsafeMutableRawPointer(bitPattern: 0x1000)
        for index in 0..<3 {
            entries[index] = PVEntry(pmap: pmap, virtualAddress: VirtualAddress(UInt64(index) * 4096))
            page.insertMapping(entries + index)
        }
        #expect(page.pvCount == 3)
        #expect(page.removeMapping(pmap: pmap, virtualAddress: VirtualAddress(4096)) == entries + 1)
        #expect(page.removeMapping(pmap: pmap, virtualAddress: VirtualAddress(4096)) == nil)
        #expect(page.removeMapping(pmap: nil, virtualAddress: VirtualAddress(0)) == nil, "another pmap's mapping")
        #expect(page.removeMapping(pmap: pmap, virtualAddress: VirtualAddress(0)) == entries)
        #expect(page.removeMapping(pmap: pmap, virtualAddress: VirtualAddress(8192)) == entries + 2)
        #expect(page.pvList == nil && page.pvCount == 0)
    }
}
