// BuddyDescriptorTests.swift - the buddy allocator over mem_desc words and buddy descriptors:
// split and merge accounting, the pool growing from pages that describe themselves, the
// descriptor reserve, and a seeded model test in which no free ever takes a descriptor.
//
// Nested in ZoneTests only to share its serialization: taking a descriptor checks FreePath,
// whose state is global, and the zone tests enter free paths all the time.
import Testing
@testable import KernelPortable
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A buddy allocator over host memory: mem_desc words, scratch, a static descriptor page and
/// the "physical memory" (every frame the segments name, so descriptor pages are real).
final class BuddyFixture {
    let memDescs: UnsafeMutablePointer<MemDesc>
    let scratch: UnsafeMutableRawPointer
    let window: UnsafeMutableRawPointer
    let staticPage: UnsafeMutableRawPointer
    var buddy: BuddyAllocator
    let pageCount: Int

    /// `segments`: (base frame number, page count) per segment, in index order.
    init(segments: [(UInt64, Int)]) {
        pageCount = segments.reduce(0) { $0 + $1.1 }
        memDescs = UnsafeMutablePointer<MemDesc>.allocate(capacity: pageCount)
        scratch = UnsafeMutableRawPointer.allocate(byteCount: BuddyAllocator.scratchBytes, alignment: 16)
        let frames = segments.map { Int($0.0) + $0.1 }.max()!
        var memory: UnsafeMutableRawPointer? = nil
        precondition(posix_memalign(&memory, 4096, frames * 4096) == 0)
        window = memory!
        staticPage = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 4096)
        buddy = BuddyAllocator(memDescs: memDescs, pageCount: pageCount, scratch: scratch, window: window, staticDescriptors: staticPage)
        var first = 0
        for (base, count) in segments {
            buddy.addSegment(basePFN: base, count: count)
            buddy.addFree(first: PageIndex(first), count: count)
            first += count
        }
    }

    deinit {
        memDescs.deallocate()
        scratch.deallocate()
        free(window)
        staticPage.deallocate()
    }

    /// The free blocks as a set of (frame number, order), independent of list order.
    func freeBlocks() -> Set<[UInt64]> {
        var blocks = Set<[UInt64]>()
        for order in 0...BuddyAllocator.maxOrder {
            var descriptor = buddy.firstFreeBlock(order: order)
            while let current = descriptor {
                blocks.insert([buddy.frameNumber(of: current.pointee.firstPage), UInt64(order)])
                descriptor = current.pointee.next
            }
        }
        return blocks
    }

    /// The accounting invariant: every descriptor in use describes a free or allocated block.
    var accountingHolds: Bool {
        buddy.descriptors.inUse == buddy.freeBlockTotal + buddy.allocatedBlocks
    }
}

/// Allocations inside free paths, as FreePath reported them (the kernel panics; here they are
/// recorded so a test can check what was reported).
nonisolated(unsafe) var buddyFreePathViolations: [FreePathViolation] = []

extension ZoneTests {
@Suite struct BuddyDescriptorTests {
    init() {
        buddyFreePathViolations = []
        FreePath.install { buddyFreePathViolations.append($0) }
    }

    @Test func initialStateIsMaximalAlignedBlocks() {
        let fixture = BuddyFixture(segments: [(1, 3), (0x400, 1024 + 4), (0x2100, 1028)])
        #expect(fixture.buddy.freePages == 3 + 1028 + 1028)
        // 0x2100 is aligned to 256 pages only: blocks of 256, 512, 256 and 4 pages.
        #expect(fixture.freeBlocks() == [[1, 0], [2, 1], [0x400, 10], [0x800, 2],
                                         [0x2100, 8], [0x2200, 9], [0x2400, 8], [0x2500, 2]])
        #expect(fixture.buddy.descriptors.inUse == 8 && fixture.accountingHolds)
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

    @Test func aSplitTakesOneDescriptorPerHalfAndMergesGiveThemBack() {
        let fixture = BuddyFixture(segments: [(0, 1024)])
        let initial = fixture.freeBlocks()
        #expect(fixture.buddy.descriptors.inUse == 1)
        let a = fixture.buddy.allocate(order: 0)!
        // The order-10 block's descriptor now describes page 0; halves of order 0...9 each got one.
        #expect(fixture.buddy.descriptors.inUse == 11 && fixture.accountingHolds)
        let b = fixture.buddy.allocate(order: 0)!
        #expect(fixture.buddy.descriptors.inUse == 11, "an exact fit reuses the free block's descriptor")
        #expect(fixture.buddy.frameNumber(of: a) == 0 && fixture.buddy.frameNumber(of: b) == 1)
        #expect((1...9).allSatisfy { fixture.buddy.freeBlockCount(order: $0) == 1 }, "one block of each smaller order")
        fixture.buddy.free(a, order: 0)
        #expect(fixture.buddy.descriptors.inUse == 11, "a free that cannot merge keeps its own descriptor")
        fixture.buddy.free(b, order: 0)
        #expect(fixture.buddy.descriptors.inUse == 1, "every merge gave one back")
        #expect(fixture.freeBlocks() == initial && fixture.buddy.isConsistent())
    }

    @Test func everyPageOfABlockPointsToItsDescriptor() {
        let fixture = BuddyFixture(segments: [(0, 16)])
        let whole = fixture.memDescs[0].buddy!
        #expect((0..<16).allSatisfy { fixture.memDescs[$0] == MemDesc(.free, whole) })
        let block = fixture.buddy.allocate(order: 2)!
        #expect(block.int == 0 && fixture.memDescs[0].buddy == whole, "the lower half keeps the split block's descriptor")
        #expect((0..<4).allSatisfy { fixture.memDescs[$0] == MemDesc(.allocated, whole) })
        #expect(whole.pointee.order == 2 && whole.pointee.state == .allocated)
        let upper = fixture.memDescs[8].buddy!
        #expect(upper != whole && (8..<16).allSatisfy { fixture.memDescs[$0] == MemDesc(.free, upper) })
        fixture.buddy.setUse(block, .slab)
        #expect((0..<4).allSatisfy { fixture.memDescs[$0] == MemDesc(.slab, whole) }, "the owner's tag, the same descriptor")
        fixture.buddy.setUse(block, .allocated)
        #expect(fixture.buddy.isConsistent())
        fixture.buddy.free(block, order: 2)
        #expect((0..<16).allSatisfy { fixture.memDescs[$0] == MemDesc(.free, whole) }, "the merged block keeps the freed block's descriptor")
        #expect(whole.pointee.order == 4 && fixture.buddy.isConsistent())
    }

    @Test func aStaleTagInsideAFreeBlockIsInconsistent() {
        // An owner that types every page of its block must give back every page: a stale
        // .slab page inside a free block would send a later kfree to a dead slab.
        let fixture = BuddyFixture(segments: [(0, 16)])
        let block = fixture.buddy.allocate(order: 1)!
        let other = fixture.buddy.allocate(order: 3)!       // pages 8...15, held
        fixture.buddy.free(block, order: 1)
        let descriptor = fixture.memDescs[block.int + 1].buddy!
        fixture.memDescs[block.int + 1] = MemDesc(.slab, descriptor)
        #expect(!fixture.buddy.isConsistent())
        fixture.memDescs[block.int + 1] = MemDesc(.free, descriptor)
        #expect(fixture.buddy.isConsistent())
        // A page pointing to a descriptor whose block does not hold it is caught too.
        fixture.memDescs[block.int + 1] = MemDesc(.free, fixture.memDescs[other.int].buddy!)
        #expect(!fixture.buddy.isConsistent())
    }

    @Test func exhaustionReturnsNil() {
        let fixture = BuddyFixture(segments: [(0, 16)])
        #expect(fixture.buddy.allocate(order: 5) == nil)
        var taken: [PageIndex] = []
        while let page = fixture.buddy.allocate(order: 0) { taken.append(page) }
        #expect(taken.count == 16 && fixture.buddy.freePages == 0)
        for page in taken { fixture.buddy.free(page, order: 0) }
        #expect(fixture.buddy.freeBlockCount(order: 4) == 1 && fixture.buddy.descriptors.inUse == 1)
    }

    @Test func buddiesDoNotMergeAcrossSegments() {
        // Frames 0..3 and 4..7 are buddies by number but are separate segments.
        let fixture = BuddyFixture(segments: [(0, 4), (4, 4)])
        #expect(fixture.freeBlocks() == [[0, 2], [4, 2]])
        let block = fixture.buddy.allocate(order: 2)!
        fixture.buddy.free(block, order: 2)
        #expect(fixture.freeBlocks() == [[0, 2], [4, 2]])
    }

    @Test func thePoolGrowsFromTheSmallestBlockAndThePageDescribesItself() {
        // 2048 pages at frame 3: blocks of 1, 4, 8, ... The static page runs out after
        // descriptorsPerPage descriptors; the pool then takes the smallest free block.
        let fixture = BuddyFixture(segments: [(3, 2048)])
        let perPage = BuddyDescriptorPool.descriptorsPerPage
        #expect(perPage >= 160 && fixture.buddy.descriptors.dynamicPages == 0)
        var held: [PageIndex] = []
        while fixture.buddy.descriptors.dynamicPages == 0 {
            held.append(fixture.buddy.allocate(order: 0)!)
        }
        #expect(fixture.buddy.descriptors.takenBeforeSwitch == perPage, "the static page was used up first")
        // Find the descriptor page: the one page tagged .slab.
        let pages = (0..<fixture.pageCount).filter { fixture.memDescs[$0].use == .slab }
        #expect(pages.count == 1)
        let page = PageIndex(pages[0])
        let own = fixture.memDescs[page.int].buddy!
        let memory = fixture.buddy.pageMemory(page)
        #expect(UnsafeMutableRawPointer(own) > memory && UnsafeMutableRawPointer(own) < memory + 4096, "its descriptor lives in the page itself")
        #expect(own.pointee.flags.contains(.descriptorPage) && own.pointee.firstPage == page && own.pointee.order == 0)
        #expect(fixture.buddy.deepestChain == 2 && fixture.buddy.deepestChain <= BuddyAllocator.chainBound)
        #expect(fixture.accountingHolds && fixture.buddy.isConsistent())
        for block in held { fixture.buddy.free(block, order: 0) }
        #expect(fixture.buddy.freePages == 2048 - 1 && fixture.accountingHolds && fixture.buddy.isConsistent())
    }

    @Test func movablePagesOfDescriptorsGoBackAndTheirMemoryCanBeReused() {
        // Every page taken singly: a descriptor each, a dozen pages of them. Freed again, the
        // blocks merge and those pages describe only themselves; the reclaim gives them back.
        let fixture = BuddyFixture(segments: [(3, 2048)])
        let initial = fixture.freeBlocks()
        var held: [PageIndex] = []
        while let page = fixture.buddy.allocate(order: 0) { held.append(page) }
        let peak = fixture.buddy.descriptors.dynamicPages
        #expect(peak >= 10 && held.count == 2048 - peak)
        for page in held { fixture.buddy.free(page, order: 0) }
        #expect(fixture.buddy.descriptors.movablePages == peak)
        #expect(fixture.buddy.reclaimDescriptorPages(keeping: 100_000) == 0, "a pool that must keep more gives nothing back")
        let freed = fixture.buddy.reclaimDescriptorPages(keeping: 0)
        #expect(freed == peak && fixture.buddy.descriptors.dynamicPages == 0 && fixture.buddy.descriptors.pagesGivenBack == peak)
        #expect(fixture.buddy.freePages == 2048 && fixture.freeBlocks() == initial, "every page is free, in the blocks it started as")
        #expect(buddyFreePathViolations.isEmpty && fixture.accountingHolds && fixture.buddy.isConsistent())
        // No descriptor may live in a page that is free now: scribble over every free page,
        // as its next owner would, and the allocator still works and stays consistent.
        for index in 0..<fixture.pageCount where fixture.memDescs[index].use == .free {
            fixture.buddy.pageMemory(PageIndex(index)).initializeMemory(as: UInt8.self, repeating: 0xA5, count: 4096)
        }
        #expect(fixture.buddy.isConsistent())
        let again = (0..<64).map { _ in fixture.buddy.allocate(order: 0)! }
        for page in again { fixture.buddy.free(page, order: 0) }
        #expect(fixture.buddy.freePages == 2048 - UInt64(fixture.buddy.descriptors.dynamicPages) && fixture.buddy.isConsistent())
    }

    @Test func aPageOfDescriptorsStillInUseStaysAndTheKeepIsHonoured() {
        let fixture = BuddyFixture(segments: [(0, 4096)])
        var held: [PageIndex] = []
        while let page = fixture.buddy.allocate(order: 0) { held.append(page) }
        let peak = fixture.buddy.descriptors.dynamicPages
        // Keep every 300th page: its descriptor pins the page of descriptors it lives in.
        var kept: [PageIndex] = []
        for (number, page) in held.enumerated() {
            if number % 300 == 0 { kept.append(page) } else { fixture.buddy.free(page, order: 0) }
        }
        let movable = fixture.buddy.descriptors.movablePages
        #expect(movable > 0 && movable < peak)
        let perPage = BuddyDescriptorPool.descriptorsPerPage
        let keep = fixture.buddy.descriptors.freeCount - 2 * perPage - 1
        let freed = fixture.buddy.reclaimDescriptorPages(keeping: keep)
        #expect(freed == min(movable, 2), "each page costs its free descriptors and one more: two fit above the keep")
        #expect(fixture.buddy.descriptors.freeCount >= keep && fixture.buddy.isConsistent())
        #expect(fixture.buddy.reclaimDescriptorPages(keeping: 0) == movable - freed)
        #expect(fixture.buddy.descriptors.movablePages == 0 && fixture.buddy.isConsistent())
        for page in kept { fixture.buddy.free(page, order: 0) }
        #expect(fixture.accountingHolds && fixture.buddy.isConsistent())
    }

    @Test func bootGrowsThePoolWhenTheStaticPageCannotDescribeEveryBlock() {
        // 60 segments of 7 pages at 8k + 1: blocks of 1, 2 and 4 pages in each, 180 free
        // blocks at boot, more than the static page describes.
        let segments = (0..<60).map { (UInt64($0) * 8 + 1, 7) }
        let fixture = BuddyFixture(segments: segments)
        #expect(fixture.buddy.descriptors.dynamicPages >= 1)
        #expect(fixture.buddy.freePages == UInt64(420 - fixture.buddy.descriptors.dynamicPages))
        #expect(fixture.accountingHolds && fixture.buddy.isConsistent())
    }

    @Test func anOrdinarySplitLeavesTheReserveAndGrowsThePoolInstead() {
        // Blocks of 1 page (frame 1) and 4 pages (frames 4...7); the reserve is more than the
        // static page holds above it. An ordinary order-1 request must split the 4-page block
        // and may not take reserved descriptors: the pool grows from the smallest blocks, and
        // the request ends in an exact fit from what growing left over.
        let fixture = BuddyFixture(segments: [(1, 1), (4, 4)])
        let free = fixture.buddy.descriptors.freeCount
        fixture.buddy.descriptors.reserveTarget = free + 200
        let perPage = UInt64(BuddyAllocator.netDescriptorsPerPage)
        #expect(fixture.buddy.extraPages(order: 1, .aboveReserve) == (201 + perPage - 1) / perPage,
                "the page policy is told how many pages growing may take")
        #expect(fixture.buddy.extraPages(order: 1, .reserve) == 0, "the pageout path takes the reserve instead")
        let block = fixture.buddy.allocate(order: 1, .aboveReserve)!
        #expect(fixture.buddy.descriptors.dynamicPages == 2 && fixture.buddy.freePages == 1)
        #expect(fixture.buddy.frameNumber(of: block) == 6)
        #expect(fixture.buddy.descriptors.deepestReserveDraw == 0, "nothing was taken from the reserve")
        #expect(fixture.accountingHolds && fixture.buddy.isConsistent())
        #expect(fixture.buddy.allocate(order: 1, .aboveReserve) == nil, "no block left to split or grow from")
    }

    @Test func thePageoutPathTakesTheReserveAndItsDeepestDrawIsCheckedAgainstTheBound() {
        let fixture = BuddyFixture(segments: [(0, 1024)])
        let pool = fixture.buddy.descriptors
        fixture.buddy.descriptors.reserveTarget = pool.freeCount       // every descriptor is reserve
        fixture.buddy.descriptors.reserveDrawBound = 10
        #expect(fixture.buddy.extraPages(order: 0, .reserve) == 0)
        let page = fixture.buddy.allocate(order: 0, .reserve)!           // splits order 10: 10
        #expect(fixture.buddy.descriptors.dynamicPages == 0, "no page taken for descriptors")
        #expect(fixture.buddy.descriptors.deepestReserveDraw == 10 && fixture.buddy.descriptors.drawBeyondBound == 0)
        let big = fixture.buddy.allocate(order: 8, .reserve)!             // an exact fit: none
        #expect(fixture.buddy.descriptors.deepestReserveDraw == 10)
        let two = fixture.buddy.allocate(order: 8, .reserve)!             // splits order 9: 1 more
        #expect(fixture.buddy.descriptors.deepestReserveDraw == 11)
        #expect(fixture.buddy.descriptors.drawBeyondBound == 11, "the first draw beyond the bound is kept for the kernel to panic about")
        for (block, order) in [(page, 0), (big, 8), (two, 8)] { fixture.buddy.free(block, order: order) }
        #expect(fixture.buddy.descriptors.inUse == 1 && fixture.buddy.isConsistent())
    }

    @Test func takingADescriptorInsideAFreePathIsReported() {
        var pool = BuddyDescriptorPool()
        let page = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { page.deallocate() }
        _ = pool.addPage(page, isStatic: true)
        FreePath.enter(.pageFree)
        _ = pool.take(.aboveReserve)
        FreePath.leave()
        #expect(buddyFreePathViolations.count == 1)
        #expect(buddyFreePathViolations.first?.allocator == .buddyDescriptor && buddyFreePathViolations.first?.path == .pageFree)
    }

    @Test(arguments: [UInt64(1), 2, 3, 42, 20261122])
    func seededModelKeepsTheAccountingAndNoFreeTakesADescriptor(seed: UInt64) {
        // Model: which frames are allocated. Checks after every step: no frame handed out
        // twice, alignment, free count, descriptors in use == free blocks + allocated blocks;
        // every free runs inside a free path (a descriptor taken there is reported) and never
        // raises the descriptors in use. A small static page and ~5000 pages make the pool
        // grow many times.
        let fixture = BuddyFixture(segments: [(3, 1500), (0x1000, 3000), (0x3001, 700)])
        let initialFree = fixture.buddy.freePages
        var random = SeededRandom(seed: seed)
        var allocated = Set<UInt64>()
        var live: [(PageIndex, Int)] = []
        for step in 0..<6000 {
            if live.isEmpty || random.next(below: 100) < 55 {
                let order = random.next(below: 100) < 70 ? 0 : random.next(below: BuddyAllocator.maxOrder + 1)
                let access: DescriptorAccess = random.next(below: 10) == 0 ? .reserve : .aboveReserve
                if let block = fixture.buddy.allocate(order: order, access) {
                    let pfn = fixture.buddy.frameNumber(of: block)
                    #expect(pfn % (1 << UInt64(order)) == 0, "seed \(seed) step \(step): misaligned")
                    for frame in pfn..<(pfn + (1 << UInt64(order))) {
                        #expect(allocated.insert(frame).inserted, "seed \(seed) step \(step): frame \(frame) handed out twice")
                    }
                    live.append((block, order))
                } else {
                    #expect(order > 0 || fixture.buddy.freePages == 0, "seed \(seed): nil with a free page for order 0")
                }
            } else {
                let (block, order) = live.remove(at: random.next(below: live.count))
                let pfn = fixture.buddy.frameNumber(of: block)
                for frame in pfn..<(pfn + (1 << UInt64(order))) { allocated.remove(frame) }
                let inUseBefore = fixture.buddy.descriptors.inUse
                FreePath.enter(.pageFree)
                fixture.buddy.free(block, order: order)
                FreePath.leave()
                #expect(fixture.buddy.descriptors.inUse <= inUseBefore, "seed \(seed) step \(step): a free took a descriptor")
            }
            #expect(fixture.accountingHolds, "seed \(seed) step \(step): descriptors in use \(fixture.buddy.descriptors.inUse), free blocks \(fixture.buddy.freeBlockTotal), allocated \(fixture.buddy.allocatedBlocks)")
            #expect(fixture.buddy.allocatedBlocks == live.count + fixture.buddy.descriptors.dynamicPages)
            if step % 500 == 0 { #expect(fixture.buddy.isConsistent(), "seed \(seed) step \(step)") }
        }
        let descriptorPages = UInt64(fixture.buddy.descriptors.dynamicPages)
        #expect(fixture.buddy.freePages == initialFree - UInt64(allocated.count) - descriptorPages)
        for (block, order) in live { fixture.buddy.free(block, order: order) }
        #expect(buddyFreePathViolations.isEmpty, "seed \(seed): no free took a descriptor")
        #expect(fixture.buddy.freePages == initialFree - descriptorPages && fixture.accountingHolds)
        #expect(fixture.buddy.deepestChain <= BuddyAllocator.chainBound)
        #expect(fixture.buddy.isConsistent())
    }
}
}
