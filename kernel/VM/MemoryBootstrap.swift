// MemoryBootstrap.swift - bringing up the memory system, from the memory map to kmem.
//
// The order is forced by what each step needs:
//   1. the memory map, cleaned (kernel/Mem/Portable/PhysicalMemoryMap.swift), with the kernel image,
//      page 0 and the loader's structures cut out;
//   2. the boot page allocator over the usable ranges (below 4 GiB, identity-mapped);
//   3. the kernel page tables, built from stolen pages and loaded: the direct map exists;
//   4. the zones that must exist before any page allocator (pv_entry, map_entry), from
//      static slabs in the kernel image;
//   5. kernel_map and its submaps, with map entries from those static slabs;
//   6. the page descriptors and the buddy allocator, taking every page not stolen;
//   7. kmalloc, which the Swift runtime's heap switches to, and the zones' reserves filled
//      (kmem-backed zones such as swblock grow through kmem from here on).
// From step 6 on, pages come from PhysicalMemory and page tables from the buddy allocator.

import ArchSupport

enum MemoryBootstrap {
    /// The fewest usable pages the kernel boots with: page tables for the direct map, the page
    /// descriptors, the zones' first slabs and a few threads' stacks.
    static let minimumUsablePages: UInt64 = 256

    static var map: PhysicalMemoryMap? = nil

    static func run() {
        var exclusions: [(PhysicalRange, StaticString)] = [
            (PhysicalRange(start: PhysicalAddress(0), end: PhysicalAddress(pageSize)), "page 0"),
            (PhysicalRange(start: PhysicalAddress(arch_kernel_start()), end: PhysicalAddress(arch_kernel_end())), "kernel image"),
        ]
        if let page = SMP.trampolinePage {
            exclusions.append((PhysicalRange(start: page, end: page + pageSize), "AP start-up trampoline"))
        }
        for (start, end) in BootInfo.loaderRanges {
            exclusions.append((PhysicalRange(start: PhysicalAddress(start), end: PhysicalAddress(end)), "multiboot structures"))
        }
        for (range, what) in exclusions {
            Log.info(.pmm, "excluded \(address: range.start) - \(address: range.end) \(what)")
        }
        let cleaned = PhysicalMemoryMap(entries: BootInfo.memoryMap, exclusions: exclusions.map { $0.0 },
                                        limit: KernelLayout.directMapLimit)
        for range in cleaned.usable {
            Log.info(.pmm, "usable \(address: range.start) - \(address: range.end) (\(range.pageCount) pages)")
        }
        Log.info(.pmm, "usable memory \(bytes: cleaned.usableBytes) in \(cleaned.usable.count) ranges; address space the firmware marks reserved \(bytes: cleaned.reservedBytes); excluded \(bytes: cleaned.excludedBytes)")
        if cleaned.beyondLimitBytes > 0 {
            Log.warn(.pmm, "\(bytes: cleaned.beyondLimitBytes) of memory lies beyond the direct map's reach and is not used")
        }
        // Too little memory is a boot failure, not a crash: one line saying so and the boot
        // stub's exit status (the stub itself refuses a machine the image does not fit in).
        guard cleaned.usablePages >= MemoryBootstrap.minimumUsablePages else {
            Log.error(.pmm, "too little memory: \(cleaned.usablePages) usable pages (\(bytes: cleaned.usableBytes)) besides the kernel image; the kernel needs at least \(MemoryBootstrap.minimumUsablePages) (the memory map may be malformed); give the machine more memory")
            QEMU.exit(.bootFailure)
        }
        map = cleaned
        BootPageAllocator.initialize(cleaned.usable)
        Pmap.bootstrap(usable: cleaned.usable)
        Zones.bootstrap()
        zoneSelfCheckBeforePageAllocator()
        KernelMaps.bootstrap()
        PhysicalMemory.bootstrap(cleaned, pageoutFloor: UInt64(ReserveBounds.pageoutPages))
        configureFaultInjection()
        Kmalloc.bootstrap()
        KernelMaps.pinPageTables()
        Zones.refillAll()
        logReserveBounds()
    }

    /// The bounds docs/reserves.md derives, as the kernel uses them (the runner checks the
    /// document against this line).
    static func logReserveBounds() {
        let step = ReserveBounds.pageoutStep, growth = ReserveBounds.pageoutZoneGrowth
        let refill = ReserveBounds.swapBlockRefill, bound = ReserveBounds.bound
        Log.info(.zone, "reserve needs: pageout step swblock \(step.swapBlocks) map_entry \(step.mapEntries) pv_entry \(step.pvEntries) pages \(step.pages); pageout zone growth map_entry \(growth.mapEntries) pv_entry \(growth.pvEntries) pages \(growth.pages); pageout entry top-up pages \(ReserveBounds.pageoutEntryTopUp.pages); swblock refill map_entry \(refill.mapEntries) pv_entry \(refill.pvEntries)")
        Log.info(.zone, "reserve bounds: swblock \(bound.swapBlocks) map_entry \(bound.mapEntries) pv_entry \(bound.pvEntries) pages \(bound.pages) zone chain \(ReserveBounds.zoneGrowthChain); without zone reserves pages \(ReserveBounds.boundWithoutZoneReserves.pages); without the page tier swblock \(ReserveBounds.swapBlocksWithoutPageTier); reserves swblock \(ReserveBounds.swapBlockReserve) map_entry \(ReserveBounds.mapEntryReserve) pv_entry \(ReserveBounds.pvEntryReserve) (margin x\(ReserveBounds.margin))")
    }

    /// The reserves for the CPUs now online: the chains that can hold draws at once do not
    /// grow with the CPU count (ReserveBounds.pageoutThreads, swapBlockRefillsAtOnce), so the
    /// bounds and reserves logged above are the ones for this machine.
    static func logReserveConcurrency() {
        Log.info(.zone, "reserves for \(SMP.onlineCount) CPUs: chains at once \(ReserveBounds.pageoutThreads) pageout thread, \(ReserveBounds.swapBlockRefillsAtOnce) swblock refill, whatever the CPU count; bounds and reserves as above")
    }

    /// Proves at every boot that the static-slab zones serve objects before any page
    /// allocator exists (problem A of the seeds): one object from each, back and forth.
    static func zoneSelfCheckBeforePageAllocator() {
        kassert(PhysicalMemory.buddy == nil, "the self-check must run before the page allocator")
        for zone in [Zones.pvEntry, Zones.mapEntry] {
            let object = zone.allocate(.system)
            kassert(object != nil, "zone \(zone.name) has no object before the page allocator exists")
            zone.free(object!)
        }
    }

    /// `pagefail=` from the command line; a malformed pattern is reported and ignored.
    static func configureFaultInjection() {
        let text = KernelOptions.pageFailure
        guard !text.isEmpty, !text.equals("off") else { return }
        guard let injector = FaultInjector.parse(text, seed: KernelOptions.seed) else {
            Log.error(.cmdline, "pagefail=\(text): expected every:N[:requesters] or random:PERMILLE[:requesters] (requester ordinary, system or pageout); fault injection stays off")
            return
        }
        PhysicalMemory.configureFaultInjection(injector)
        Log.info(.pmm, "fault injection on: pagefail=\(text), seed \(KernelOptions.seed)")
    }
}
