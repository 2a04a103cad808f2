// Pmap.swift - the kernel's page tables: the direct map, and mappings in kernel_map.
//
// There is one address space, the kernel's. `bootstrap` builds it from scratch with pages
// stolen at boot: the kernel image mapped section by section (text read-execute, rodata
// read-only, data read-write, no-execute wherever the CPU has NX, the boot stack's guard
// page left out), and the direct map of all usable RAM with 2 MiB pages wherever alignment
// allows. Loading it into CR3 drops the boot identity map: from then on page 0 and all low
// memory outside the kernel image are unmapped.
//
// After bootstrap, `enter`, `remove`, `extract` and `protect` work on 4 KiB pages in
// kernel_map (and the pmap tests' window). Page-table pages come from the buddy allocator,
// non-blocking: mapping a page never waits for memory; `enter` reports a shortage instead
// and changes nothing, and the caller may wait and retry. Table pages are taken under the
// caller's context raised to at least the system tier (AllocationContext.forPageTables): the
// pageout path may take the last pages, everybody else stops at free_min, which the pageout
// path lives on. Each runtime table page counts its valid
// entries in its descriptor's wireCount and is freed when that drops to zero. Every mapping
// of a managed page has a PV entry on the page's list, which `removeAll` walks to unmap the
// page everywhere. Removing never allocates: it only frees PV entries and table pages.

import ArchSupport

extension LogTag {
    static let pmap = LogTag("pmap")
}

struct PmapStatistics {
    var tablePagesAllocated: UInt64 = 0
    var tablePagesFreed: UInt64 = 0
    var enterShortages: UInt64 = 0
    var mappings: UInt64 = 0
    var directMapLargePages: UInt64 = 0
    var directMapSmallPages: UInt64 = 0
    var bootTablePages: UInt64 = 0
}

enum Pmap {
    static var root = PhysicalAddress(0)
    static var noExecuteSupported = false
    static var statistics = PmapStatistics()
    /// Identifies the kernel pmap in PV entries (there is only one pmap).
    static let kernelPmap = UnsafeMutableRawPointer(bitPattern: UInt(0x4B504D50))!  // "KPMP"

    @inline(__always)
    static func table(_ address: PhysicalAddress) -> UnsafeMutablePointer<UInt64> {
        PhysicalWindow.pointer(to: address).assumingMemoryBound(to: UInt64.self)
    }

    // MARK: - Bootstrap

    static func bootstrap(usable ranges: [PhysicalRange]) {
        noExecuteSupported = CPU.hasNXBit
        root = BootPageAllocator.steal(pages: 1)
        statistics.bootTablePages = 1
        let executable: Protection = [.read, .execute]
        mapImage(arch_kernel_start(), arch_boot_stack_guard(), executable)       // multiboot header, boot stub
        mapImage(arch_boot_stack_bottom(), arch_boot_stack_top(), .readWrite)    // the guard page stays out
        mapImage(arch_text_start(), arch_rodata_start(), executable)
        mapImage(arch_rodata_start(), arch_data_start(), .read)
        mapImage(arch_data_start(), arch_kernel_end(), .readWrite)
        for range in ranges { mapDirect(range) }
        mapDeviceRegisters()
        CPU.loadCR3(root.rawValue)
        PhysicalWindow.base = KernelLayout.directMapBase
        Log.info(.pmap, "kernel page tables loaded: direct map of \(bytes: statistics.directMapLargePages * largePageSize + statistics.directMapSmallPages * pageSize) at \(address: KernelLayout.directMapBase) (\(statistics.directMapLargePages) 2 MiB pages, \(statistics.directMapSmallPages) 4 KiB pages), \(statistics.bootTablePages) table pages; boot identity map gone, NX \(noExecuteSupported ? "on" as StaticString : "unavailable")")
    }

    /// Maps part of the kernel image where it was loaded: virtual = physical.
    private static func mapImage(_ start: UInt64, _ end: UInt64, _ protection: Protection) {
        var address = PhysicalAddress(start).roundedDown(to: pageSize)
        while address < PhysicalAddress(end) {
            bootMap(VirtualAddress(address.rawValue), address, flags: protection.entryFlags, large: false)
            address += pageSize
        }
    }

    /// The local APIC's registers, uncached (PCD and PWT: every access must reach the device),
    /// no-execute, at their fixed window (kernel/Arch/x86_64/LocalAPIC.swift).
    private static func mapDeviceRegisters() {
        guard Machine.hasLocalAPIC else { return }
        var flags = PageTableEntry.present | PageTableEntry.writable | PageTableEntry.cacheDisabled | PageTableEntry.writeThrough
        if noExecuteSupported { flags |= PageTableEntry.noExecute }
        bootMap(KernelLayout.localAPICWindow, Machine.localAPICAddress, flags: flags, large: false)
        LocalAPIC.base = KernelLayout.localAPICWindow
    }

    private static func mapDirect(_ range: PhysicalRange) {
        var address = range.start
        let flags = Protection.readWrite.entryFlags
        while address < range.end {
            if address.isAligned(to: largePageSize) && range.end - address >= largePageSize {
                bootMap(KernelLayout.directMapAddress(of: address), address, flags: flags | PageTableEntry.largePage, large: true)
                statistics.directMapLargePages += 1
                address += largePageSize
            } else {
                bootMap(KernelLayout.directMapAddress(of: address), address, flags: flags, large: false)
                statistics.directMapSmallPages += 1
                address += pageSize
            }
        }
    }

    /// Maps one page during bootstrap, stealing table pages as needed.
    private static func bootMap(_ virtualAddress: VirtualAddress, _ physical: PhysicalAddress, flags: UInt64, large: Bool) {
        var current = root
        let leafLevel: PageTableLevel = large ? .pd : .pt
        var level = PageTableLevel.pml4
        while level != leafLevel {
            let slot = table(current) + level.index(of: virtualAddress)
            if !PageTableEntry(rawValue: slot.pointee).isPresent {
                let next = BootPageAllocator.steal(pages: 1)
                statistics.bootTablePages += 1
                slot.pointee = PageTableEntry(frame: next, flags: PageTableEntry.present | PageTableEntry.writable).rawValue
            }
            current = PageTableEntry(rawValue: slot.pointee).frame
            level = PageTableLevel(rawValue: level.rawValue - 1)!
        }
        table(current)[leafLevel.index(of: virtualAddress)] = PageTableEntry(frame: physical, flags: flags).rawValue
    }

    // MARK: - Walking

    /// The tables on the way to `address`'s 4 KiB entry: physical address of each table from
    /// the PML4 down, as far as they exist.
    struct Walk {
        var tables: (PhysicalAddress, PhysicalAddress, PhysicalAddress, PhysicalAddress) = (PhysicalAddress(0), PhysicalAddress(0), PhysicalAddress(0), PhysicalAddress(0))
        /// How many levels exist: 1 = only the PML4, 4 = the page table exists too.
        var depth = 0
        var largeLeaf: UInt64? = nil

        func table(_ number: Int) -> PhysicalAddress {
            switch number {
            case 0: return tables.0
            case 1: return tables.1
            case 2: return tables.2
            default: return tables.3
            }
        }

        mutating func push(_ address: PhysicalAddress) {
            switch depth {
            case 0: tables.0 = address
            case 1: tables.1 = address
            case 2: tables.2 = address
            default: tables.3 = address
            }
            depth += 1
        }
    }

    static func walk(_ address: VirtualAddress) -> Walk {
        var walk = Walk()
        walk.push(root)
        var level = PageTableLevel.pml4
        while level != .pt {
            let entry = PageTableEntry(rawValue: table(walk.table(walk.depth - 1))[level.index(of: address)])
            if !entry.isPresent { return walk }
            if entry.isLargePage {
                walk.largeLeaf = entry.rawValue
                return walk
            }
            walk.push(entry.frame)
            level = PageTableLevel(rawValue: level.rawValue - 1)!
        }
        return walk
    }

    /// The 4 KiB leaf entry for `address`, if its page table exists.
    static func leafEntry(_ address: VirtualAddress) -> UnsafeMutablePointer<UInt64>? {
        let path = walk(address)
        guard path.depth == 4 else { return nil }
        return table(path.table(3)) + PageTableLevel.pt.index(of: address)
    }

    /// Adds `delta` to the valid-entry count of a runtime table page (boot tables are not counted).
    @discardableResult
    private static func adjustEntryCount(_ tableAddress: PhysicalAddress, by delta: Int) -> Int? {
        guard let index = PhysicalMemory.index(of: tableAddress), let table = PhysicalMemory.tableDescriptor(index) else { return nil }
        let count = table.pointee.tableEntries + delta
        kassert(count >= 0 && count <= 512, "pmap: table page \(hex: tableAddress.rawValue) entry count \(count)")
        table.pointee.tableEntries = count
        return count
    }

    // MARK: - Mapping

    /// Maps the managed page `page` at `address` with `protection`, replacing any mapping
    /// there. Returns false - and changes nothing - when a PV entry or a page-table page
    /// cannot be had right now under `context`; the caller decides whether to wait and retry.
    /// VM internals and the pageout path may take the PV zone's reserve; an ordinary caller
    /// may instead wait for the PV entry when its context allows. Page-table pages never wait.
    @discardableResult
    static func enter(_ address: VirtualAddress, page: PageIndex, protection: Protection, _ context: AllocationContext) -> Bool {
        kassert(address.isPageAligned && KernelLayout.isMappable(address), "pmap.enter: \(address: address) is not a mappable page address")
        let frame = PhysicalMemory.physicalAddress(of: page)
        // Everything that can fail is taken first: the PV entry, then the tables that are
        // missing. Both are allocated with interrupts on; the tables are linked with them off,
        // after walking again - another thread may have linked (or freed) some meanwhile.
        guard let pv = PVEntries.allocate(context) else {
            statistics.enterShortages += 1
            return false
        }
        while true {
            let missing = 4 - walk(address).depth
            var spares: (PageIndex, PageIndex, PageIndex) = (.none, .none, .none)
            for number in 0..<missing {
                guard let tablePage = PhysicalMemory.allocate(order: 0, context.forPageTables) else {
                    for taken in 0..<number { PhysicalMemory.free(tableSlot(spares, taken)) }
                    PVEntries.free(pv)
                    statistics.enterShortages += 1
                    return false
                }
                switch number {
                case 0: spares.0 = tablePage
                case 1: spares.1 = tablePage
                default: spares.2 = tablePage
                }
            }
            var used = 0
            let mapped: Bool? = withInterruptsDisabled {
                let path = walk(address)
                kassert(path.largeLeaf == nil, "pmap.enter: \(address: address) is inside a large page")
                if 4 - path.depth > missing { return nil }          // tables vanished meanwhile: start over
                var current = path.table(path.depth - 1)
                var level = PageTableLevel(rawValue: 4 - path.depth)!
                while path.depth + used < 4 {
                    let tablePage = tableSlot(spares, used)
                    used += 1
                    PhysicalMemory.pointer(to: tablePage).initializeMemory(as: UInt8.self, repeating: 0, count: Int(pageSize))
                    PhysicalMemory.setUse(tablePage, .pageTable)      // no entries, not pinned
                    let tableAddress = PhysicalMemory.physicalAddress(of: tablePage)
                    table(current)[level.index(of: address)] = PageTableEntry(frame: tableAddress, flags: PageTableEntry.present | PageTableEntry.writable).rawValue
                    adjustEntryCount(current, by: 1)
                    statistics.tablePagesAllocated += 1
                    current = tableAddress
                    level = PageTableLevel(rawValue: level.rawValue - 1)!
                }
                return installLeaf(address, frame: frame, page: page, protection: protection, table: current, pv: pv)
            }
            for unused in used..<missing { PhysicalMemory.free(tableSlot(spares, unused)) }
            if let result = mapped { return result }
        }
    }

    /// Sets the leaf entry (interrupts off). Consumes `pv` one way or the other.
    private static func installLeaf(_ address: VirtualAddress, frame: PhysicalAddress, page: PageIndex, protection: Protection,
                                    table current: PhysicalAddress, pv: UnsafeMutablePointer<PVEntry>) -> Bool {
        let slot = table(current) + PageTableLevel.pt.index(of: address)
        let old = PageTableEntry(rawValue: slot.pointee)
        if old.isPresent {
            if old.frame == frame {
                // Same page: only the protection changes; keep A/D, drop the spare PV entry.
                slot.pointee = PageTableEntry(frame: frame, flags: protection.entryFlags | (old.rawValue & (PageTableEntry.accessed | PageTableEntry.dirty))).rawValue
                CPU.invalidatePage(address)
                TLBShootdown.invalidate(address, pages: 1)
                PVEntries.free(pv)
                return true
            }
            // Another page replaces this one: no CPU may keep reaching the old one.
            unmapLeaf(address, slot: slot, tableAddress: current, freeTables: false)
            TLBShootdown.invalidate(address, pages: 1)
        }
        slot.pointee = PageTableEntry(frame: frame, flags: protection.entryFlags).rawValue
        adjustEntryCount(current, by: 1)
        pv.pointee = PVEntry(pmap: kernelPmap, virtualAddress: address)
        PhysicalMemory.withMappings(page) { $0.insert(pv) }
        statistics.mappings += 1
        return true
    }

    private static func tableSlot(_ tables: (PageIndex, PageIndex, PageIndex), _ number: Int) -> PageIndex {
        switch number {
        case 0: return tables.0
        case 1: return tables.1
        default: return tables.2
        }
    }

    /// Unmaps `count` pages from `address` on. Frees the PV entries and any table page left
    /// empty; allocates nothing. When it returns no CPU reaches the pages any more: one TLB
    /// shootdown covers the whole range (TLBShootdown.swift), so the caller may free them.
    static func remove(_ address: VirtualAddress, pages count: Int) {
        FreePath.enter(.pmapRemove)
        var current = address
        let end = address + UInt64(count) * pageSize
        var first: VirtualAddress? = nil
        var last = address
        while current < end {
            withInterruptsDisabled {
                let path = walk(current)
                if path.depth == 4 {
                    let slot = table(path.table(3)) + PageTableLevel.pt.index(of: current)
                    if PageTableEntry(rawValue: slot.pointee).isPresent {
                        unmapLeaf(current, slot: slot, tableAddress: path.table(3), freeTables: true, path: path)
                        if first == nil { first = current }
                        last = current
                    }
                }
            }
            current += pageSize
        }
        if let first = first { TLBShootdown.invalidate(first, pages: Int((last - first) / pageSize) + 1) }
        FreePath.leave()
    }

    /// Clears one present leaf entry, drops the page's PV entry and, with `freeTables`, frees
    /// the tables that became empty, bottom up (never the PML4).
    private static func unmapLeaf(_ address: VirtualAddress, slot: UnsafeMutablePointer<UInt64>, tableAddress: PhysicalAddress,
                                  freeTables: Bool, path: Walk? = nil) {
        let frame = PageTableEntry(rawValue: slot.pointee).frame
        slot.pointee = 0
        CPU.invalidatePage(address)
        statistics.mappings -= 1
        // A frame of another use was mapped without a PV entry (boot mappings): nothing to drop.
        if let index = PhysicalMemory.index(of: frame), PhysicalMemory.use(of: index).keepsMappings,
           let pv = PhysicalMemory.withMappings(index, { $0.remove(pmap: kernelPmap, virtualAddress: address) }) {
            PVEntries.free(pv)
        }
        guard let remaining = adjustEntryCount(tableAddress, by: -1), remaining == 0, freeTables, let path = path else { return }
        // Tables are freed below: first every CPU drops what it cached of them (an invlpg
        // drops the paging-structure caches too). The leaf entries the caller removed before
        // this one are shot down when it finishes (Pmap.remove): their pages are not freed
        // before that.
        TLBShootdown.invalidate(address, pages: 1)
        // Free empty tables upwards: PT (level 3 in the walk), then PD, then PDPT.
        var number = 3
        while number >= 1 {
            let emptyTable = path.table(number)
            guard let index = PhysicalMemory.index(of: emptyTable),
                  let descriptor = PhysicalMemory.tableDescriptor(index),
                  !descriptor.pointee.isPinnedTable,
                  descriptor.pointee.tableEntries == 0 else { return }
            let parent = path.table(number - 1)
            let parentLevel = PageTableLevel(rawValue: 4 - number)!
            table(parent)[parentLevel.index(of: address)] = 0
            PhysicalMemory.clearUse(index, .pageTable)
            PhysicalMemory.free(index)
            statistics.tablePagesFreed += 1
            guard let left = adjustEntryCount(parent, by: -1), left == 0 else { return }
            number -= 1
        }
    }

    /// The physical address `address` translates to, or nil when it is not mapped.
    static func extract(_ address: VirtualAddress) -> PhysicalAddress? {
        let path = walk(address)
        if let large = path.largeLeaf {
            return PhysicalAddress((large & PageTableEntry.frameMask & ~(largePageSize - 1)) + address.offset(within: largePageSize))
        }
        guard path.depth == 4 else { return nil }
        let entry = PageTableEntry(rawValue: table(path.table(3))[PageTableLevel.pt.index(of: address)])
        guard entry.isPresent else { return nil }
        return entry.frame + address.offset(within: pageSize)
    }

    /// Changes the protection of the mapped pages in [address, address + count pages); one
    /// TLB shootdown covers the range.
    static func protect(_ address: VirtualAddress, pages count: Int, _ protection: Protection) {
        var changed = false
        for number in 0..<count {
            let current = address + UInt64(number) * pageSize
            withInterruptsDisabled {
                guard let slot = leafEntry(current), PageTableEntry(rawValue: slot.pointee).isPresent else { return }
                let old = PageTableEntry(rawValue: slot.pointee)
                slot.pointee = PageTableEntry(frame: old.frame, flags: protection.entryFlags | (old.rawValue & (PageTableEntry.accessed | PageTableEntry.dirty))).rawValue
                CPU.invalidatePage(current)
                changed = true
            }
        }
        if changed { TLBShootdown.invalidate(address, pages: count) }
    }

    /// How far down `pinTables` makes and pins the tables of a range.
    enum PinDepth {
        /// Only the tables the PML4 points to (the PDPTs): the range's top-level entries never
        /// change again, and its lower tables come and go with its mappings.
        case topLevelOnly
        /// Every table down to the page tables: mapping a 4 KiB page there never needs a
        /// table page.
        case downToPageTables

        /// How many levels of tables below the PML4 are made.
        var levels: Int {
            switch self {
            case .topLevelOnly: return 1
            case .downToPageTables: return 3
            }
        }

        /// Bytes covered by one table at the lowest level made: the walk visits each once.
        var step: UInt64 {
            switch self {
            case .topLevelOnly: return PageTableLevel.pml4.entrySpan
            case .downToPageTables: return PageTableLevel.pd.entrySpan
            }
        }
    }

    /// Allocates every missing page table for [start, end) now, down to `depth`, and pins
    /// them, so that mapping there later never needs a table page at those levels.
    static func pinTables(_ start: VirtualAddress, _ end: VirtualAddress, _ depth: PinDepth) {
        var address = start
        let step = depth.step
        while address < end {
            withInterruptsDisabled {
                var current = root
                var level = PageTableLevel.pml4
                for _ in 0..<depth.levels {
                    let slot = table(current) + level.index(of: address)
                    if !PageTableEntry(rawValue: slot.pointee).isPresent {
                        // Blocking: at boot this must succeed, injected failures or not.
                        guard let tablePage = PhysicalMemory.allocate(order: 0, AllocationContext(.system, .wait)) else {
                            panic("pmap: no page to pin page tables for \(address: address)")
                        }
                        PhysicalMemory.pointer(to: tablePage).initializeMemory(as: UInt8.self, repeating: 0, count: Int(pageSize))
                        PhysicalMemory.setUse(tablePage, .pageTable)
                        PhysicalMemory.tableDescriptor(tablePage)!.pointee.isPinnedTable = true
                        let tableAddress = PhysicalMemory.physicalAddress(of: tablePage)
                        slot.pointee = PageTableEntry(frame: tableAddress, flags: PageTableEntry.present | PageTableEntry.writable).rawValue
                        adjustEntryCount(current, by: 1)
                        statistics.tablePagesAllocated += 1
                    }
                    let next = PageTableEntry(rawValue: slot.pointee).frame
                    if let index = PhysicalMemory.index(of: next) {
                        // A table made here or earlier at run time, or a boot table (reserved,
                        // never freed: nothing to pin).
                        let use = PhysicalMemory.use(of: index)
                        kassert(use == .pageTable || use == .reserved, "pmap: pinning table page \(hex: next.rawValue) whose use is \(use.name)")
                        PhysicalMemory.tableDescriptor(index)?.pointee.isPinnedTable = true
                    }
                    current = next
                    level = PageTableLevel(rawValue: level.rawValue - 1)!
                }
            }
            address += step
        }
    }

    /// Unmaps `page` everywhere it is mapped, through its PV list.
    static func removeAll(_ page: PageIndex) {
        while let pv = PhysicalMemory.mappings(of: page).head {
            let address = pv.pointee.virtualAddress
            remove(address, pages: 1)
            kassert(PhysicalMemory.mappings(of: page).head != pv, "pmap.removeAll: mapping at \(address: address) did not go away")
        }
    }

    // MARK: - Accessed and dirty bits, for the pageout thread

    /// Whether any mapping of `page` was used since the last call; clears the accessed bits.
    static func testAndClearReferenced(_ page: PageIndex) -> Bool {
        var referenced = false
        var pv = PhysicalMemory.mappings(of: page).head
        while let entry = pv {
            withInterruptsDisabled {
                if let slot = leafEntry(entry.pointee.virtualAddress), slot.pointee & PageTableEntry.accessed != 0 {
                    slot.pointee &= ~PageTableEntry.accessed
                    CPU.invalidatePage(entry.pointee.virtualAddress)
                    referenced = true
                }
            }
            pv = entry.pointee.next
        }
        return referenced
    }

    /// Whether any mapping of `page` was used since the accessed bits were last cleared; clears
    /// nothing (a page-out cluster looks at its followers without deciding for the scan).
    static func isReferenced(_ page: PageIndex) -> Bool { anyMapping(of: page, has: PageTableEntry.accessed) }

    /// Whether any mapping of `page` was written through.
    static func isModified(_ page: PageIndex) -> Bool { anyMapping(of: page, has: PageTableEntry.dirty) }

    /// Whether the leaf entry of any mapping of `page` has `bit` set.
    private static func anyMapping(of page: PageIndex, has bit: UInt64) -> Bool {
        var pv = PhysicalMemory.mappings(of: page).head
        while let entry = pv {
            if let slot = leafEntry(entry.pointee.virtualAddress), slot.pointee & bit != 0 { return true }
            pv = entry.pointee.next
        }
        return false
    }
}
