// PhysicalMemoryMap.swift - from the loader's memory map to the page ranges the kernel manages.
//
// Firmware maps are untidy: entries come unsorted, overlap each other, have zero length or
// edges in the middle of a page, reach above 4 GiB, and leave holes. The rules here:
//   - memory is usable only if some entry says usable and no entry says anything else about
//     it (a reserved entry overlapping a usable one wins: the conservative reading);
//   - the caller's exclusions (kernel image, boot page tables, multiboot structures, page 0)
//     are cut out;
//   - what is left is shrunk inwards to whole pages, sorted and merged;
//   - memory at or above `limit` (what the direct map can reach) is dropped and counted.
// The result is deterministic for a given input, whatever its order.

public struct PhysicalMemoryMap {
    /// Sorted, disjoint, non-adjacent, page-aligned, non-empty ranges.
    public private(set) var usable: [PhysicalRange] = []
    /// Bytes in the usable ranges.
    public private(set) var usableBytes: UInt64 = 0
    /// Bytes the map reports as anything but usable (after merging overlaps).
    public private(set) var reservedBytes: UInt64 = 0
    /// Usable bytes given up to exclusions, to page alignment, or to the limit.
    public private(set) var excludedBytes: UInt64 = 0
    /// Usable bytes at or above the limit.
    public private(set) var beyondLimitBytes: UInt64 = 0

    public init(entries: [MemoryMapEntry], exclusions: [PhysicalRange], limit: PhysicalAddress = PhysicalAddress(UInt64.max)) {
        let declaredUsable = PhysicalMemoryMap.merge(entries.filter { $0.kind == .usable && $0.length > 0 }.map { $0.range })
        let reserved = PhysicalMemoryMap.merge(entries.filter { $0.kind != .usable && $0.length > 0 }.map { $0.range })
        reservedBytes = reserved.reduce(0) { $0 + $1.byteCount }

        var remaining = PhysicalMemoryMap.subtract(reserved, from: declaredUsable)
        let usableBeforeExclusions = remaining.reduce(0) { $0 + $1.byteCount }
        remaining = PhysicalMemoryMap.subtract(PhysicalMemoryMap.merge(exclusions), from: remaining)
        let beyond = PhysicalMemoryMap.subtract([PhysicalRange(start: PhysicalAddress(0), end: limit)], from: remaining)
        beyondLimitBytes = beyond.reduce(0) { $0 + $1.byteCount }
        remaining = PhysicalMemoryMap.subtract(beyond, from: remaining)

        for range in remaining {
            let aligned = PhysicalRange(start: range.start.roundedUp(to: pageSize), end: range.end.roundedDown(to: pageSize))
            if aligned.start < aligned.end && aligned.start >= range.start {
                usable.append(aligned)
            }
        }
        usable = PhysicalMemoryMap.merge(usable)
        usableBytes = usable.reduce(0) { $0 + $1.byteCount }
        excludedBytes = usableBeforeExclusions - usableBytes
    }

    public var usablePages: UInt64 { usableBytes >> pageShift }

    /// Sorts and merges overlapping or touching ranges; drops empty ones.
    public static func merge(_ ranges: [PhysicalRange]) -> [PhysicalRange] {
        var sorted = ranges.filter { !$0.isEmpty }
        sorted.sort { $0.start < $1.start || ($0.start == $1.start && $0.end < $1.end) }
        var merged: [PhysicalRange] = []
        for range in sorted {
            if let last = merged.last, range.start <= last.end {
                merged[merged.count - 1].end = max(last.end, range.end)
            } else {
                merged.append(range)
            }
        }
        return merged
    }

    /// `ranges` minus `holes`; both must be merged (sorted, disjoint).
    public static func subtract(_ holes: [PhysicalRange], from ranges: [PhysicalRange]) -> [PhysicalRange] {
        var result: [PhysicalRange] = []
        var holeIndex = 0
        for range in ranges {
            var start = range.start
            while holeIndex < holes.count && holes[holeIndex].end <= start { holeIndex += 1 }
            var index = holeIndex
            while index < holes.count && holes[index].start < range.end {
                let hole = holes[index]
                if hole.start > start { result.append(PhysicalRange(start: start, end: hole.start)) }
                start = max(start, hole.end)
                index += 1
            }
            if start < range.end { result.append(PhysicalRange(start: start, end: range.end)) }
        }
        return result
    }
}
