// BuddyAllocatorTests.swift - the per-page records: the mem_desc word, the pageable page's
// descriptor, the PV list and where it lives. The buddy allocator's own tests are in
// BuddyDescriptorTests.swift.
import Testing
@testable import KernelPortable

@Suite struct PageDescriptorTests {
    @Test func aPageIsOneWordAndItsDescriptorsAreSmall() {
        // The only static per-page memory: 8 bytes per 4 KiB page (0.2% of RAM).
        #expect(MemoryLayout<MemDesc>.stride == 8)
        #expect(MemoryLayout<BuddyDescriptor>.stride == 24)
        #expect(MemoryLayout<PageablePage>.stride == 48)
        // MemDesc.buddy reads a pageable page's buddy descriptor from the first field.
        #expect(MemoryLayout<PageablePage>.offset(of: \.buddy) == 0)
        #expect(MemoryLayout<PageUse>.size == 1 && MemoryLayout<PageQueue>.size == 1)
    }

    @Test func aWordFindsTheBuddyDescriptorThroughAPageableDescriptor() {
        let block = UnsafeMutablePointer<BuddyDescriptor>.allocate(capacity: 1)
        block.initialize(to: BuddyDescriptor())
        let pageable = UnsafeMutablePointer<PageablePage>.allocate(capacity: 1)
        pageable.initialize(to: PageablePage(buddy: block))
        defer { block.deallocate(); pageable.deallocate() }
        let word = MemDesc(.anonymous, owner: UnsafeMutableRawPointer(pageable))
        #expect(word.use == .anonymous)
        #expect(word.descriptor == UnsafeMutableRawPointer(pageable))
        #expect(word.buddy == block)
        let plain = MemDesc(.wired, block)
        #expect(plain.use == .wired && plain.buddy == block)
        #expect(MemDesc.reserved.buddy == nil)
        let fresh = pageable.pointee
        #expect(fresh.queue == .none && fresh.flags.isEmpty && fresh.object == nil && fresh.mappings.isEmpty)
    }

    @Test func everyTagReadsBackAsItsUse() {
        let block = UnsafeMutablePointer<BuddyDescriptor>.allocate(capacity: 1)
        defer { block.deallocate() }
        for raw in UInt8(0)...7 {
            let use = PageUse(rawValue: raw)!
            #expect(MemDesc(use, block).use == use)
            #expect(MemDesc(rawValue: UInt64(raw)).use.rawValue == raw)
        }
    }

    @Test func theOwnerWordsAreTheFreeListLinksWhileTheBlockIsFree() {
        var descriptor = BuddyDescriptor()
        let other = UnsafeMutablePointer<BuddyDescriptor>.allocate(capacity: 1)
        defer { other.deallocate() }
        descriptor.next = other
        #expect(descriptor.ownerWords.first == UInt(bitPattern: other))
        descriptor.next = nil
        descriptor.prev = nil
        #expect(descriptor.ownerWords.isZero)
        descriptor.tableEntries = 511
        descriptor.isPinnedTable = true
        #expect(descriptor.tableEntries == 511 && descriptor.isPinnedTable)
        #expect(descriptor.mappings.count == 1, "the same words, read as a PV list")
    }

    @Test func pvListInsertAndRemove() {
        var list = PVList()
        let entries = UnsafeMutablePointer<PVEntry>.allocate(capacity: 3)
        defer { entries.deallocate() }
        let pmap = UnsafeMutableRawPointer(bitPattern: 0x1000)
        for index in 0..<3 {
            entries[index] = PVEntry(pmap: pmap, virtualAddress: VirtualAddress(UInt64(index) * 4096))
            list.insert(entries + index)
        }
        #expect(list.count == 3)
        #expect(list.remove(pmap: pmap, virtualAddress: VirtualAddress(4096)) == entries + 1)
        #expect(list.remove(pmap: pmap, virtualAddress: VirtualAddress(4096)) == nil)
        #expect(list.remove(pmap: nil, virtualAddress: VirtualAddress(0)) == nil, "another pmap's mapping")
        #expect(list.remove(pmap: pmap, virtualAddress: VirtualAddress(0)) == entries)
        #expect(list.remove(pmap: pmap, virtualAddress: VirtualAddress(8192)) == entries + 2)
        #expect(list.isEmpty && list.count == 0)
    }

    @Test func aPVListInTheOwnerWordsSurvivesTheRoundTrip() {
        var descriptor = BuddyDescriptor()
        let entries = UnsafeMutablePointer<PVEntry>.allocate(capacity: 2)
        defer { entries.deallocate() }
        for index in 0..<2 {
            entries[index] = PVEntry(pmap: nil, virtualAddress: VirtualAddress(UInt64(index) * 4096))
            descriptor.mappings.insert(entries + index)
        }
        #expect(descriptor.mappings.count == 2 && descriptor.mappings.head == entries + 1)
        #expect(descriptor.mappings.remove(pmap: nil, virtualAddress: VirtualAddress(0)) == entries)
        #expect(descriptor.mappings.remove(pmap: nil, virtualAddress: VirtualAddress(4096)) == entries + 1)
        #expect(descriptor.ownerWords.isZero, "an empty list leaves the words at zero, as clearUse requires")
    }
}
