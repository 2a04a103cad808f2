// PhysicalMemoryMapTests.swift - the memory map cleaner against every malformed shape.
import Testing
@testable import KernelPortable

@Suite struct PhysicalMemoryMapTests {
    func usable(_ base: UInt64, _ length: UInt64) -> MemoryMapEntry { MemoryMapEntry(base: base, length: length, kind: .usable) }
    func reserved(_ base: UInt64, _ length: UInt64) -> MemoryMapEntry { MemoryMapEntry(base: base, length: length, kind: .reserved) }
    func range(_ start: UInt64, _ end: UInt64) -> PhysicalRange { PhysicalRange(start: PhysicalAddress(start), end: PhysicalAddress(end)) }

    @Test func qemuLikeMapWithKernelExcluded() {
        let map = PhysicalMemoryMap(entries: [
            usable(0, 0x9fc00), reserved(0x9fc00, 0x400), reserved(0xf0000, 0x10000),
            usable(0x100000, 0x7ee0000), reserved(0x7fe0000, 0x20000), reserved(0xfffc0000, 0x40000),
        ], exclusions: [range(0, 0x1000), range(0x100000, 0x255000)])
        #expect(map.usable == [range(0x1000, 0x9f000), range(0x255000, 0x7fe0000)])
        #expect(map.usableBytes == (0x9f000 - 0x1000) + (0x7fe0000 - 0x255000))
        #expect(map.reservedBytes == 0x400 + 0x10000 + 0x20000 + 0x40000)
    }

    @Test func unsortedEntriesGiveTheSameResult() {
        let entries = [usable(0x300000, 0x100000), usable(0x100000, 0x100000), usable(0x500000, 0x1000)]
        let sorted = PhysicalMemoryMap(entries: entries, exclusions: [])
        let reversed = PhysicalMemoryMap(entries: entries.reversed(), exclusions: [])
        #expect(sorted.usable == reversed.usable)
        #expect(sorted.usable == [range(0x100000, 0x200000), range(0x300000, 0x400000), range(0x500000, 0x501000)])
    }

    @Test func overlappingUsableEntriesMerge() {
        let map = PhysicalMemoryMap(entries: [usable(0x100000, 0x200000), usable(0x200000, 0x200000), usable(0x400000, 0x1000)], exclusions: [])
        #expect(map.usable == [range(0x100000, 0x401000)])
    }

    @Test func reservedWinsOverUsableWhereTheyOverlap() {
        let map = PhysicalMemoryMap(entries: [usable(0x100000, 0x400000), reserved(0x200000, 0x1000)], exclusions: [])
        #expect(map.usable == [range(0x100000, 0x200000), range(0x201000, 0x500000)])
    }

    @Test func zeroLengthEntriesAreIgnored() {
        let map = PhysicalMemoryMap(entries: [usable(0x100000, 0), reserved(0x100000, 0), usable(0x200000, 0x2000)], exclusions: [])
        #expect(map.usable == [range(0x200000, 0x202000)])
        #expect(map.reservedBytes == 0)
    }

    @Test func unalignedEdgesShrinkInwardToWholePages() {
        let map = PhysicalMemoryMap(entries: [usable(0x100123, 0x3000), usable(0x200000, 0xfff)], exclusions: [])
        #expect(map.usable == [range(0x101000, 0x103000)])
    }

    @Test func memoryAboveFourGiBAndHoles() {
        let map = PhysicalMemoryMap(entries: [
            usable(0x100000, 0xbff00000), reserved(0xfeffc000, 0x4000), usable(0x1_0000_0000, 0x4000_0000),
            reserved(0xfd_0000_0000, 0x3_0000_0000),
        ], exclusions: [])
        #expect(map.usable == [range(0x100000, 0xc000_0000), range(0x1_0000_0000, 0x1_4000_0000)])
        #expect(map.usableBytes == 0xbff00000 + 0x4000_0000)
    }

    @Test func exclusionsCutInTheMiddleAndAtEdges() {
        let map = PhysicalMemoryMap(entries: [usable(0, 0x1000000)], exclusions: [
            range(0, 0x1000), range(0x9000, 0x9078), range(0x10_0000, 0x23_4567), range(0xfff000, 0x1000000),
        ])
        #expect(map.usable == [range(0x1000, 0x9000), range(0xa000, 0x100000), range(0x235000, 0xfff000)])
    }

    @Test func entryThatWrapsAroundIsClampedAndLimitApplies() {
        let map = PhysicalMemoryMap(entries: [usable(0xffff_ffff_ffff_0000, 0x20000), usable(0x1000, 0x3000)],
                                    exclusions: [], limit: PhysicalAddress(0x4000_0000_0000))
        #expect(map.usable == [range(0x1000, 0x4000)])
        #expect(map.beyondLimitBytes == UInt64.max - 0xffff_ffff_ffff_0000)
    }

    @Test func everythingReservedGivesNothing() {
        let map = PhysicalMemoryMap(entries: [usable(0x100000, 0x100000), reserved(0, 0x1000000)], exclusions: [])
        #expect(map.usable.isEmpty)
        #expect(map.usableBytes == 0)
    }

    @Test func seededRandomMapsMatchAPageBitmap() {
        // Reference model: a bitmap of 4096 pages, marked by the same rules, page by page.
        for seed in UInt64(1)...200 {
            var random = SeededRandom(seed: seed)
            var entries: [MemoryMapEntry] = []
            for _ in 0..<random.next(below: 8) {
                let base = random.next(below: UInt64(4096 * 4096))
                let length: UInt64 = random.next(below: 4) == 0 ? 0 : random.next(below: UInt64(1024 * 4096))
                entries.append(MemoryMapEntry(base: base, length: length, kind: random.next(below: 3) == 0 ? .reserved : .usable))
            }
            var exclusions: [PhysicalRange] = []
            for _ in 0..<random.next(below: 3) {
                let start = random.next(below: UInt64(4096 * 4096))
                exclusions.append(range(start, start + random.next(below: UInt64(64 * 4096))))
            }
            let map = PhysicalMemoryMap(entries: entries, exclusions: exclusions)
            var expectedPages = 0
            for page in UInt64(0)..<(4096 + 1100) {
                let start = page * 4096, end = start + 4096
                let covered = entries.contains { $0.kind == .usable && $0.base <= start && $0.end >= end }
                let blocked = entries.contains { $0.kind != .usable && $0.length > 0 && $0.base < end && $0.end > start }
                    || exclusions.contains { $0.start.rawValue < end && $0.end.rawValue > start }
                let good = covered && !blocked
                if good { expectedPages += 1 }
                let inMap = map.usable.contains { $0.start.rawValue <= start && $0.end.rawValue >= end }
                #expect(inMap == good, "seed \(seed) page \(page)")
            }
            #expect(map.usablePages == UInt64(expectedPages), "seed \(seed)")
        }
    }
}
