// BuddyAllocatorTests.swift - the buddy allocator against a reference model.
import Testing
@testable import KernelPortable

/// A buddy allocator over host memory: descriptors and scratch from malloc.
final class BuddyFixture {
    let pages: UnsafeMutablePointer<VMPage>
    let scratch: UnsafeMutableRawPointer
    var buddy: BuddyAllocator
    let pageCount: Int

    /// `segments`: (base frame number, page count) per segment, in descriptor order.
    init(segments: [(UInt64, Int)]) {
        pageCount = segments.reduce(0) { $0 + $1.1 }
        pages = UnsafeMutablePointer<VMPage>.allocate(capacity: pageCount)
        scratch = UnsafeMutableRawPointer.allocate(byteCount: BuddyAllocator.scratchBytes, alignment: 16)
        buddy = BuddyAllocator(pages: pages, pageCount: pageCount, scratch: scratch)
        var first = 0
        for (base, count) in segments {
            buddy.addSegment(basePFN: base, count: count)
            buddy.addFree(first: PageIndex(first), count: count)
            first += count
        }
    }

    deinit {
        pages.deallocate()
        scratch.deallocate()
    }

    /// The free blocks as a set of (frame number, order), independent of list order.
    func freeBlocks() -> Set<[UInt64]> {
        var blocks = Set<[UInt64]>()
        for order in 0...BuddyAllocator.maxOrder {
            var index = buddy.firstFreeBlock(order: order)
            while let current = index {
                blocks.insert([buddy.frameNumber(of: current), UInt64(order)])
                let next = pages[current.int].next
                index = next == .none ? nil : next
            }
        }
        return blocks
    }
}

@Suite struct BuddyAllocatorTests {
    @Test func initialStateIsMaximalAlignedBlocks() {
        let fixture = BuddyFixture(segments: [(1, 3), (0x400, 1024 + 4), (0x2100, 1028)])
        #expect(fixture.buddy.freePages == 3 + 1028 + 1028)
        // 0x2100 is aligned to 256 pages only: blocks of 256, 512, 256 and 4 pages.
        #expect(fixture.freeBlocks() == [[1, 0], [2, 1], [0x400, 10], [0x800, 2],
                                         [0x2100, 8], [0x2200, 9], [0x2400, 8], [0x2500, 2]])
        #expect(fixture.buddy.isConsistent())
    }

    @Test func blocksAreAlignedToTheirSize() {
        let fixture = BuddyFixture(segments: [(0x37, 5000)])
        for order in [0, 3, 5, 1, 10, 2, 7] {
            let block = fixture.buddy.allocate(order: order)!
            let pfn = fixture.buddy.frameNumber(of: block)
            #expect(pfn % (1 << UInt64(order)) == 0, "order \(order) block at frame \(pfn)")
        }
        #expect(fixture.buddy.isConsistent())
    }

    @Test func splitAndCoalesceRestoreTheInitialState() {
        let fixture = BuddyFixture(segments: [(0, 1024)])
        let initial = fixture.freeBlocks()
        let a = fixture.buddy.allocate(order: 0)!
        let b = fixture.buddy.allocate(order: 0)!
        #expect(fixture.buddy.frameNumber(of: a) == 0 && fixture.buddy.frameNumber(of: b) == 1)
        #expect(fixture.buddy.freeBlockCount(order: 10) == 0, "the order-10 block was split")
        #expect((1...9).allSatisfy { fixture.buddy.freeBlockCount(order: $0) == 1 }, "one block of each smaller order")
        fixture.buddy.free(a, order: 0)
        fixture.buddy.free(b, order: 0)
        #expect(fixture.freeBlocks() == initial)
    }

    @Test func exhaustionReturnsNil() {
        let fixture = BuddyFixture(segments: [(0, 16)])
        #expect(fixture.buddy.allocate(order: 5) == nil)
        var taken: [PageIndex] = []
        while let page = fixture.buddy.allocate(order: 0) { taken.append(page) }
        #expect(taken.count == 16 && fixture.buddy.freePages == 0)
        for page in taken { fixture.buddy.free(page, order: 0) }
        #expect(fixture.buddy.freeBlockCount(order: 4) == 1)
    }

    @Test func buddiesDoNotMergeAcrossSegments() {
        // Frames 0..3 and 4..7 are buddies by number but are separate segments.
        let fixture = BuddyFixture(segments: [(0, 4), (4, 4)])
        #expect(fixture.freeBlocks() == [[0, 2], [4, 2]])
        let block = fixture.buddy.allocate(order: 2)!
        fixture.buddy.free(block, order: 2)
        #expect(fixture.freeBlocks() == [[0, 2], [4, 2]])
    }

    @Test func allocationMakesTheHeadAllocatedAndFreeingMakesTheMergedHeadFree() {
        let fixture = BuddyFixture(segments: [(0, 16)])
        #expect(fixture.pages[0].use == .free && (1..<16).allSatisfy { fixture.pages[$0].use == .tail })
        let block = fixture.buddy.allocate(order: 2)!
        #expect(block.int == 0 && fixture.pages[0].use == .allocated && fixture.pages[0].order == 2)
        #expect((1..<4).allSatisfy { fixture.pages[$0].use == .tail }, "the block's other pages are tails")
        #expect(fixture.pages[4].use == .free && fixture.pages[8].use == .free, "the split-off halves are free heads")
        #expect(fixture.buddy.isConsistent())
        fixture.buddy.free(block, order: 2)
        #expect(fixture.pages[0].use == .free && fixture.pages[0].order == 4)
        #expect((1..<16).allSatisfy { fixture.pages[$0].use == .tail }, "merged heads became tails")
        #expect(fixture.buddy.isConsistent())
    }

    @Test func aTypedPageLeftInsideAFreeBlockIsInconsistent() {
        // An owner that types every page of its block (slabs) must give back every page: a
        // stale .slab tail inside a free block would send a later kfree to a dead slab.
        let fixture = BuddyFixture(segments: [(0, 16)])
        let block = fixture.buddy.allocate(order: 1)!
        fixture.pages[block.int + 1].use = .slab
        fixture.buddy.free(block, order: 1)
        #expect(!fixture.buddy.isConsistent())
        fixture.pages[block.int + 1].use = .tail
        #expect(fixture.buddy.isConsistent())
    }

    @Test(arguments: [UInt64(1), 2, 3, 42, 20261122])
    func seededRandomWorkloadMatchesModel(seed: UInt64) {
        // Model: which frames are allocated. Checks: no frame handed out twice, alignment,
        // free count, consistency, and the initial state back after freeing everything.
        let fixture = BuddyFixture(segments: [(3, 1500), (0x1000, 3000), (0x3001, 700)])
        let initial = fixture.freeBlocks()
        var random = SeededRandom(seed: seed)
        var allocated = Set<UInt64>()
        var live: [(PageIndex, Int)] = []
        for step in 0..<6000 {
            if live.isEmpty || random.next(below: 100) < 55 {
                let order = random.next(below: 100) < 70 ? 0 : random.next(below: BuddyAllocator.maxOrder + 1)
                let freeBefore = fixture.buddy.freePages
                if let block = fixture.buddy.allocate(order: order) {
                    let pfn = fixture.buddy.frameNumber(of: block)
                    #expect(pfn % (1 << UInt64(order)) == 0, "seed \(seed) step \(step): misaligned")
                    for frame in pfn..<(pfn + (1 << UInt64(order))) {
                        #expect(allocated.insert(frame).inserted, "seed \(seed) step \(step): frame \(frame) handed out twice")
                    }
                    #expect(fixture.buddy.freePages == freeBefore - (1 << UInt64(order)))
                    live.append((block, order))
                } else {
                    #expect(fixture.buddy.freePages < 1 << UInt64(order) || order > 0, "seed \(seed): nil with enough pages for order 0")
                }
            } else {
                let (block, order) = live.remove(at: random.next(below: live.count))
                let pfn = fixture.buddy.frameNumber(of: block)
                for frame in pfn..<(pfn + (1 << UInt64(order))) { allocated.remove(frame) }
                fixture.buddy.free(block, order: order)
            }
            if step % 500 == 0 { #expect(fixture.buddy.isConsistent(), "seed \(seed) step \(step)") }
        }
        #expect(fixture.buddy.freePages == UInt64(5200 - allocated.count))
        for (block, order) in live { fixture.buddy.free(block, order: order) }
        #expect(fixture.buddy.isConsistent())
        #expect(fixture.freeBlocks() == initial, "seed \(seed): free lists differ from the initial state")
    }
}

@Suite struct PageDescriptorTests {
    @Test func descriptorIsAtMost48Bytes() {
        // 48 bytes per 4 KiB page is 1.17% of RAM; the target is at most 64 (1.6%).
        #expect(MemoryLayout<VMPage>.stride == 48)
    }

    @Test func useAndQueueAreOneByteEachAndANewDescriptorIsReserved() {
        #expect(MemoryLayout<PageUse>.size == 1 && MemoryLayout<PageQueue>.size == 1)
        let page = VMPage()
        #expect(page.use == .reserved && page.queue == .none && page.flags.isEmpty)
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
