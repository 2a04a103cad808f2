// VMMapTests.swift - the vm_map against a reference model (a sorted array), validated after
// every step, thousands of operations per seed.
import Testing
@testable import KernelPortable

/// A map over host memory, with entries from a simple pool and the reference model beside it.
final class MapFixture {
    var map: VMMapState
    var pool: [EntryPointer] = []
    var allocated: [EntryPointer] = []
    /// The model: sorted (start, end, protection, tag) tuples.
    var model: [(UInt64, UInt64, UInt8, UInt64)] = []
    var spares = EntryReservation()

    init(start: UInt64, end: UInt64) {
        map = VMMapState(name: "test", start: VirtualAddress(start), end: VirtualAddress(end))
    }

    deinit {
        for entry in allocated { entry.deallocate() }
    }

    func newEntry() -> EntryPointer {
        if let entry = pool.popLast() { return entry }
        let entry = EntryPointer.allocate(capacity: 1)
        allocated.append(entry)
        return entry
    }

    /// Keeps two spares in the reservation (protect may clip both ends), as the kernel does
    /// before locking a map.
    func reserve() {
        while spares.count < 2 { spares.add(newEntry()) }
    }

    func returnSpares() {
        while let entry = spares.takeAny() { pool.append(entry) }
    }

    func insert(_ start: UInt64, _ end: UInt64, tag: UInt64) {
        let entry = newEntry()
        entry.initialize(to: MapEntry(start: VirtualAddress(start), end: VirtualAddress(end), kind: .wired, protection: .readWrite))
        entry.pointee.offset = tag
        map.insert(entry)
        let index = model.firstIndex { $0.0 > start } ?? model.count
        model.insert((start, end, 3, tag), at: index)
    }

    /// The model's view of removing [start, end): trims and splits entries.
    func modelRemove(_ start: UInt64, _ end: UInt64) {
        var result: [(UInt64, UInt64, UInt8, UInt64)] = []
        for (s, e, p, tag) in model {
            if e <= start || s >= end { result.append((s, e, p, tag)); continue }
            if s < start { result.append((s, start, p, tag)) }
            if e > end { result.append((end, e, p, tag + (end - s))) }
        }
        model = result
    }

    func modelProtect(_ start: UInt64, _ end: UInt64, _ protection: UInt8) {
        var result: [(UInt64, UInt64, UInt8, UInt64)] = []
        for (s, e, p, tag) in model {
            if e <= start || s >= end { result.append((s, e, p, tag)); continue }
            if s < start { result.append((s, start, p, tag)) }
            result.append((max(s, start), min(e, end), protection, tag + (max(s, start) - s)))
            if e > end { result.append((end, e, p, tag + (end - s))) }
        }
        model = result
    }

    /// The model's lowest fit: the first gap of at least `need` bytes.
    func modelFindSpace(size: UInt64, alignment: UInt64) -> UInt64? {
        let need = size + alignment - 4096
        let leadingStart = roundUp(map.start.rawValue, to: alignment)
        let firstStart = model.first?.0 ?? map.end.rawValue
        if firstStart >= leadingStart && firstStart - leadingStart >= size { return leadingStart }
        for (index, entry) in model.enumerated() {
            let gapEnd = index + 1 < model.count ? model[index + 1].0 : map.end.rawValue
            if gapEnd - entry.1 >= need { return roundUp(entry.1, to: alignment) }
        }
        return nil
    }

    func matchesModel() -> Bool {
        var entries: [(UInt64, UInt64, UInt8, UInt64)] = []
        map.forEach { entries.append(($0.pointee.start.rawValue, $0.pointee.end.rawValue, $0.pointee.protection.rawValue, $0.pointee.offset)) }
        return entries.count == model.count && zip(entries, model).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 && $0.2 == $1.2 && $0.3 == $1.3 }
    }
}

@Suite struct VMMapTests {
    let page: UInt64 = 4096

    @Test func emptyMapHasOneGap() {
        let fixture = MapFixture(start: 0x10_0000, end: 0x20_0000)
        #expect(fixture.map.validate() == nil)
        #expect(fixture.map.findSpace(size: 0x10_0000, alignment: page) == VirtualAddress(0x10_0000))
        #expect(fixture.map.findSpace(size: 0x10_1000, alignment: page) == nil)
    }

    @Test func removingTheMiddleSplitsAnEntryWithOneSpare() {
        let fixture = MapFixture(start: 0, end: 0x100_0000)
        fixture.insert(0x1000, 0x9000, tag: 0)
        fixture.spares.add(fixture.newEntry())
        var taken = RemovedRange()
        fixture.map.removeRange(VirtualAddress(0x3000), VirtualAddress(0x5000), using: &fixture.spares, removed: &taken)
        var removed: [MapEntry] = []
        taken.forEach { removed.append($0) }
        #expect(removed.count == 1 && removed[0].start == VirtualAddress(0x3000) && removed[0].end == VirtualAddress(0x5000))
        #expect(taken.entryCount == 0, "no whole entry was removed")
        var ranges: [(UInt64, UInt64)] = []
        fixture.map.forEach { ranges.append(($0.pointee.start.rawValue, $0.pointee.end.rawValue)) }
        #expect(ranges.count == 2 && ranges[0] == (0x1000, 0x3000) && ranges[1] == (0x5000, 0x9000))
        #expect(fixture.spares.used == 1, "the split took exactly one spare")
        #expect(fixture.spares.count == 0)
        #expect(fixture.map.validate() == nil)
    }

    @Test func alignedFindSpace() {
        let fixture = MapFixture(start: 0x1000, end: 0x100_0000)
        fixture.insert(0x1000, 0x3000, tag: 0)
        let address = fixture.map.findSpace(size: 0x2000, alignment: 0x10000)!
        #expect(address.isAligned(to: 0x10000) && address >= VirtualAddress(0x3000))
        fixture.insert(address.rawValue, address.rawValue + 0x2000, tag: 1)
        #expect(fixture.map.validate() == nil)
    }

    @Test func validatorCatchesABrokenGap() {
        let fixture = MapFixture(start: 0, end: 0x100_0000)
        fixture.insert(0x1000, 0x2000, tag: 0)
        fixture.insert(0x5000, 0x6000, tag: 0)
        fixture.map.first!.pointee.gapAfter += 4096
        #expect(fixture.map.validate() != nil)
    }

    @Test(arguments: [UInt64(1), 2, 3, 4, 5, 42, 777, 2026])
    func seededOperationsMatchTheModel(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        let fixture = MapFixture(start: 0x4000_0000, end: 0x4000_0000 + 0x400_0000)
        for step in 0..<3000 {
            let roll = random.next(below: 100)
            fixture.reserve()
            if roll < 45 || fixture.model.isEmpty {
                let size = (1 + random.next(below: UInt64(64))) * page
                let alignment = page << random.next(below: UInt64(5))
                let expected = fixture.modelFindSpace(size: size, alignment: alignment)
                let found = fixture.map.findSpace(size: size, alignment: alignment)?.rawValue
                #expect(found == expected, "seed \(seed) step \(step): findSpace")
                if let found = found {
                    #expect(found % alignment == 0)
                    fixture.insert(found, found + size, tag: UInt64(step) << 32)
                }
            } else if roll < 75 {
                let entry = fixture.model[random.next(below: fixture.model.count)]
                let pages = (entry.1 - entry.0) / page
                let first = entry.0 + random.next(below: pages) * page
                let last = min(fixture.map.end.rawValue, first + (1 + random.next(below: UInt64(80))) * page)
                var removed = RemovedRange()
                fixture.map.removeRange(VirtualAddress(first), VirtualAddress(last), using: &fixture.spares, removed: &removed)
                var removedBytes: UInt64 = 0
                removed.forEach { removedBytes += $0.end - $0.start }
                let before = fixture.model.reduce(UInt64(0)) { $0 + $1.1 - $1.0 }
                fixture.modelRemove(first, last)
                let after = fixture.model.reduce(UInt64(0)) { $0 + $1.1 - $1.0 }
                #expect(removedBytes == before - after, "seed \(seed) step \(step): removed pieces cover what went away")
                removed.recycleEntries(into: &fixture.spares)
            } else if roll < 90 {
                let entry = fixture.model[random.next(below: fixture.model.count)]
                let pages = (entry.1 - entry.0) / page
                let first = entry.0 + random.next(below: pages) * page
                let last = min(fixture.map.end.rawValue, first + (1 + random.next(below: UInt64(40))) * page)
                let protection = UInt8(random.next(below: UInt64(8)))
                fixture.map.protect(VirtualAddress(first), VirtualAddress(last), Protection(rawValue: protection), using: &fixture.spares) { _ in }
                fixture.modelProtect(first, last, protection)
            } else {
                let address = fixture.map.start.rawValue + random.next(below: fixture.map.size)
                let found = fixture.map.lookup(VirtualAddress(address))
                let expected = fixture.model.first { $0.0 <= address && address < $0.1 }
                #expect((found == nil) == (expected == nil), "seed \(seed) step \(step): lookup")
                if let found = found, let expected = expected { #expect(found.pointee.start.rawValue == expected.0) }
            }
            fixture.returnSpares()
            let problem = fixture.map.validate()
            #expect(problem == nil, "seed \(seed) step \(step): \(problem.map { String(decoding: $0.bytes, as: UTF8.self) } ?? "")")
            if problem != nil { return }
            #expect(fixture.matchesModel(), "seed \(seed) step \(step): map differs from the model")
        }
    }

    @Test func treeStaysBalancedWithManyEntries() {
        let fixture = MapFixture(start: 0, end: 1 << 40)
        for index in 0..<20000 { fixture.insert(UInt64(index) * 2 * page, UInt64(index) * 2 * page + page, tag: 0) }
        #expect(fixture.map.validate() == nil)
        var height = 0
        func depth(_ node: EntryPointer?) -> Int { node.map { 1 + max(depth($0.pointee.left), depth($0.pointee.right)) } ?? 0 }
        height = depth(fixture.map.root)
        #expect(height <= 2 * 15, "red-black height bound for 20000 entries")
        // Every gap is one page: a two-page request must go past the last entry.
        #expect(fixture.map.findSpace(size: 2 * page, alignment: page) == VirtualAddress(20000 * 2 * page - page))
    }
}

@Suite struct SwapSpaceTests {
    @Test func allocatesEveryBlockOnceThenReportsFull() {
        let storage = UnsafeMutablePointer<UInt64>.allocate(capacity: SwapSpace.wordCount(blocks: 200))
        defer { storage.deallocate() }
        var space = SwapSpace(blocks: 200, storage: storage)
        var seen = Set<UInt32>()
        while let block = space.allocate() { #expect(seen.insert(block).inserted) }
        #expect(seen.count == 200 && space.isFull && space.free == 0)
        space.free(17)
        #expect(space.allocate() == 17 && space.allocate() == nil)
    }

    /// A cluster's followers: the block right after the last one, taken exactly when free;
    /// a taken block, or one past the end, is refused and changes nothing.
    @Test func exactBlocksAreTakenOnlyWhenFree() {
        let storage = UnsafeMutablePointer<UInt64>.allocate(capacity: SwapSpace.wordCount(blocks: 130))
        defer { storage.deallocate() }
        var space = SwapSpace(blocks: 130, storage: storage)
        let first = space.allocate()!
        let second = space.allocate(exactly: first + 1), third = space.allocate(exactly: first + 2)
        #expect(second && third)
        let again = space.allocate(exactly: first + 1), beyond = space.allocate(exactly: 130)
        #expect(!again, "already taken")
        #expect(!beyond, "past the end")
        #expect(space.used == 3 && space.isConsistent())
        let next = space.allocate()
        #expect(next == first + 3, "the next-fit search goes on after the exact ones")
        for block in UInt32(64)..<128 {
            let taken = space.allocate(exactly: block)
            #expect(taken)
        }
        #expect(space.isConsistent(), "a word filled by exact takes is marked full in the summary")
    }

    /// Against a plain array of Bools: seeded allocations and frees over sizes that end inside
    /// a word, on a word, and past several summary words; the summary and the counts agree
    /// with the bitmap after every step, and a full device hands out nothing.
    @Test(arguments: [1 as UInt32, 63, 64, 65, 200, 4096, 4097, 70_000])
    func seededWorkloadMatchesAModel(blocks: UInt32) {
        let storage = UnsafeMutablePointer<UInt64>.allocate(capacity: SwapSpace.wordCount(blocks: blocks))
        defer { storage.deallocate() }
        var space = SwapSpace(blocks: blocks, storage: storage)
        var model = [Bool](repeating: false, count: Int(blocks))
        var random = SeededRandom(seed: UInt64(blocks))
        var held: [UInt32] = []
        var inUse = 0
        for step in 0..<(min(Int(blocks), 5000) * 3 + 50) {
            if random.next(below: 100) < 60 {
                if let block = space.allocate() {
                    #expect(!model[Int(block)], "blocks \(blocks) step \(step): \(block) handed out twice")
                    model[Int(block)] = true
                    held.append(block)
                    inUse += 1
                } else {
                    #expect(inUse == Int(blocks), "blocks \(blocks) step \(step): nil while a block is free")
                }
            } else if !held.isEmpty {
                let block = held.remove(at: random.next(below: held.count))
                space.free(block)
                model[Int(block)] = false
                inUse -= 1
            }
            #expect(Int(space.used) == inUse)
            if step % 997 == 0 { #expect(space.isConsistent(), "blocks \(blocks) step \(step)") }
        }
        while let block = space.allocate() { model[Int(block)] = true }
        #expect(space.isFull && !model.contains(false) && space.isConsistent())
    }

    @Test func nextFitKeepsPageOutsConsecutive() {
        let storage = UnsafeMutablePointer<UInt64>.allocate(capacity: SwapSpace.wordCount(blocks: 100))
        defer { storage.deallocate() }
        var space = SwapSpace(blocks: 100, storage: storage)
        let a = space.allocate()!, b = space.allocate()!
        space.free(a)
        #expect(space.allocate() == b + 1, "next fit continues after the last allocation")
    }
}
