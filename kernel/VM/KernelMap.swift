// KernelMap.swift - kernel_map and its submaps.
//
// kernel_map covers the kernel's 512 GiB of virtual address space for mappings
// (KernelLayout.kernelMapBase; the direct map and the image are outside it). It is created at
// boot, before the page allocator exists, with entries from the map_entry zone's static slabs.
// Submaps are carved out of it then, each with its own lock, stock and size limit:
//
//   kmem      64 GiB   wired kernel allocations (kmem_alloc) and kmem-backed zone slabs
//   pageable  64 GiB   pageable anonymous memory (kmem_alloc_pageable); paged out to swap
//   pager     64 MiB   windows where the swap pager maps pages for I/O
//
// Running out of a submap fails the one allocation with a message naming the submap.

enum KernelMaps {
    // Set by `bootstrap`; until then the never-mapped placeholder (kernel/Lib/UnsetPlaceholder.swift).
    static var kernelMap = MapRef.unsetPlaceholder
    static var kmem = MapRef.unsetPlaceholder
    static var pageable = MapRef.unsetPlaceholder
    static var pager = MapRef.unsetPlaceholder

    static let kmemSize: UInt64 = 64 << 30
    /// Whether kmem_alloc can be called: `bootstrap` has made the submaps.
    static var isReady: Bool { kmem != MapRef.unsetPlaceholder }
    static let pageableSize: UInt64 = 64 << 30
    static let pagerSize: UInt64 = 64 << 20

    static func bootstrap() {
        kernelMap = VMMaps.create("kernel_map", start: KernelLayout.kernelMapBase, end: KernelLayout.kernelMapBase + KernelLayout.kernelMapSize)
        kmem = makeSubmap("kmem", kmemSize)
        pageable = makeSubmap("pageable", pageableSize)
        pager = makeSubmap("pager", pagerSize)
        Log.info(.vm, "kernel_map \(address: kernelMap.pointee.map.start) - \(address: kernelMap.pointee.map.end): submaps kmem \(bytes: kmemSize), pageable \(bytes: pageableSize), pager \(bytes: pagerSize); \(Zones.mapEntry.inUse) map entries from the map_entry zone")
    }

    private static func makeSubmap(_ name: StaticString, _ size: UInt64) -> MapRef {
        guard let submap = VMMaps.createSubmap(name, in: kernelMap, size: size) else {
            panic("cannot create the \(name) submap of kernel_map")
        }
        return submap
    }

    /// kernel_map's PDPT, and the pager submap's tables down to its page tables, are made now
    /// and never freed: the pageout path maps pager windows without needing a page-table
    /// page, and a kmem mapping needs at most two (docs/reserves.md).
    static func pinPageTables() {
        Pmap.pinTables(kernelMap.pointee.map.start, kernelMap.pointee.map.end, .topLevelOnly)
        Pmap.pinTables(pager.pointee.map.start, pager.pointee.map.end, .downToPageTables)
    }

    static func logMaps() {
        for map in [kernelMap, kmem, pageable, pager] {
            let m = map.pointee.map
            Log.info(.vm, "map \(m.name): \(m.count) entries, \(bytes: m.mappedBytes) of \(bytes: m.size) in use, \(map.pointee.exhaustionFailures) allocations refused for lack of space")
        }
    }
}
