// MonitorTables.swift - what the monitor's looking commands print: zones, buddy, map, page,
// threads, reserves.
//
// Each reads the kernel's own structures - the zone table, the buddy allocator's free counts,
// the vm_maps, the page descriptors and their PV lists, the thread list - which are exactly
// what the gdb helpers read through kernel_debug_table (qemu/gdb/kernel_helpers.py), and
// prints them in the helpers' layout, so that a person who knows `kzones` knows `zones`, and
// the monitor scenario can hold the two against each other line for line. Keep the two in
// step: a column changed here is a column to change in kernel_helpers.py.
// Every table is printed with interrupts off: on one CPU that excludes every lock holder
// (the zone, buddy, map and thread locks are all "interrupts off"), so a table is one
// consistent snapshot, and no trace sample or stress line lands in the middle of it.
// `reserves` has no gdb twin: it gathers, in one place, what docs/reserves.md is about.

enum MonitorTables {
    // MARK: - zones (kzones)

    static func zones() {
        withInterruptsDisabled {
            if !Zones.reservesEnabled {
                Console.printLine("reserves=off: the reserve column is configured but not enforced")
            }
            Console.printLine("zone             size slab/obj   in-use     free  static dynamic  reserve  lowest  deepest       allocs        frees")
            Zones.forEach { zone in
                let s = zone.state.pointee
                let t = s.statistics
                let lowest = t.lowestFree > 1 << 62 ? 0 : t.lowestFree
                Console.printLine("\(s.name, left: 14) \(s.objectSize, width: 6) \(s.slabBytes / 1024, width: 4)K/\(s.objectsPerSlab, left: 3) \(s.inUse, width: 8) \(s.freeObjects, width: 8) \(t.staticSlabs, width: 7) \(t.dynamicSlabs, width: 7) \(s.reserveTarget, width: 8) \(lowest, width: 7) \(t.deepestReserveUse, width: 8) \(t.allocations, width: 12) \(t.frees, width: 12)")
            }
        }
    }

    // MARK: - buddy (kbuddy)

    static func buddy() {
        withInterruptsDisabled {
            let buddy = PhysicalMemory.buddy!.pointee
            var total: UInt64 = 0
            for order in 0..<BuddyAllocator.orderCount {
                let blocks = buddy.freeBlockCount(order: order)
                total += UInt64(blocks) << UInt64(order)
                Console.printLine("order \(order, width: 2): \(blocks, width: 8) free blocks (\(UInt64(blocks) << UInt64(order)) pages)")
            }
            Console.printLine("free pages: \(buddy.freePages) (the lists add up to \(total))")
            if CPUPageLists.storage != nil {
                let lists = CPUPageLists.totals
                Console.printLine("CPU page lists: \(lists.count) pages more (free, but not the buddy allocator's), up to \(CPUPageLists.limits.high) per CPU; \(lists.allocations) allocations and \(lists.frees) frees served by them")
            }
            let t = PhysicalMemory.thresholds
            Console.printLine("thresholds: free_min \(t.freeMin), free_reserved \(t.freeReserved), paging_start \(t.pagingStart), paging_target \(t.pagingTarget) pages")
            // The pool of buddy descriptors, and every page of it (as kbuddy).
            let pool = PhysicalMemory.buddy!.pointee.descriptors
            Console.printLine("buddy descriptors: \(pool.staticPages) static + \(pool.dynamicPages) dynamic pages, \(pool.inUse) in use, \(pool.freeCount) free, reserve \(pool.reserveTarget); \(pool.pagesGivenBack) pages given back so far")
            var page = pool.pageList
            while let header = page {
                let address = UInt64(UInt(bitPattern: header))
                let inUse = Int(header.pointee.inUse)
                if header.pointee.isStatic {
                    Console.printLine("  static  page \(hex: address): \(inUse, width: 3) of \(BuddyDescriptorPool.descriptorsPerPage) descriptors in use")
                } else {
                    Console.printLine("  dynamic page \(hex: address): \(inUse, width: 3) of \(BuddyDescriptorPool.descriptorsPerPage) descriptors in use")
                }
                page = header.pointee.nextPage
            }
        }
    }

    // MARK: - map (kmap)

    static func map(_ which: MonitorMap) {
        let control: MapRef
        switch which {
        case .kernelMap: control = KernelMaps.kernelMap
        case .kmem: control = KernelMaps.kmem
        case .pageable: control = KernelMaps.pageable
        case .pager: control = KernelMaps.pager
        }
        withInterruptsDisabled {
            let map = control.pointee.map
            Console.printLine("\(which.name): \(hex: map.start.rawValue) - \(hex: map.end.rawValue), \(map.count) entries")
            map.forEach { entry in
                let e = entry.pointee
                let r: StaticString = e.protection.contains(.read) ? "r" : "-"
                let w: StaticString = e.protection.contains(.write) ? "w" : "-"
                let x: StaticString = e.protection.contains(.execute) ? "x" : "-"
                var extra = LogMessage()
                if e.kind == .submap {
                    let submap = e.object!.assumingMemoryBound(to: MapControl.self)
                    extra = " -> submap \(submap.pointee.map.name)"
                } else if e.kind == .anonymous {
                    extra = " object \(hex: UInt64(UInt(bitPattern: e.object)))"
                }
                Console.printLine("  \(hex: e.start.rawValue, digits: 16) - \(hex: e.end.rawValue, digits: 16) \(message: humanSize(e.end - e.start), right: 10)  \(kindName(e.kind), left: 9) \(r)\(w)\(x)\(message: extra)")
            }
        }
    }

    static func kindName(_ kind: MapEntryKind) -> StaticString {
        switch kind {
        case .wired: return "wired"
        case .submap: return "submap"
        case .anonymous: return "anonymous"
        case .reserved: return "reserved"
        }
    }

    /// The largest of GiB, MiB, KiB that divides `size` exactly (map sizes are page multiples),
    /// as the gdb helpers write it.
    static func humanSize(_ size: UInt64) -> LogMessage {
        if size % (1 << 30) == 0 { return "\(size >> 30) GiB" }
        if size % (1 << 20) == 0 { return "\(size >> 20) MiB" }
        if size % (1 << 10) == 0 { return "\(size >> 10) KiB" }
        return "\(size) B"
    }

    // MARK: - page (kpage)

    static func page(_ address: PhysicalAddress) {
        withInterruptsDisabled {
            guard let index = PhysicalMemory.index(of: address) else {
                Console.printLine("error: page: \(hex: address.rawValue) is not a page of managed memory, which is:")
                let buddy = PhysicalMemory.buddy!.pointee
                for number in 0..<buddy.segmentCount {
                    let segment = buddy.segment(number)
                    let start = PhysicalAddress(frameNumber: segment.basePFN)
                    Console.printLine("  \(hex: start.rawValue) - \(hex: (start + UInt64(segment.pageCount) * pageSize).rawValue) (\(segment.pageCount) pages)")
                }
                return
            }
            // The use from the page's mem_desc word, the order from its block's buddy
            // descriptor, then what the owner keeps - as gdb's kpage shows them.
            let word = PhysicalMemory.memDescs![index.int]
            let use = word.use
            let order = PhysicalMemory.order(of: index)
            Console.printLine("page \(hex: address.rawValue): page \(index.int), mem_desc at \(hex: UInt64(UInt(bitPattern: PhysicalMemory.memDescs! + index.int)))")
            Console.printLine("  use \(use.name), order \(order)")
            if let block = word.buddy {
                var marks = LogMessage()
                if block.pointee.flags.contains(.fromReserve) { marks = "fromReserve" }
                if block.pointee.flags.contains(.descriptorPage) { marks = marks.count == 0 ? "descriptorPage" : "\(message: marks) descriptorPage" }
                if block.pointee.flags.contains(.onCPUList) { marks = marks.count == 0 ? "onCPUList" : "\(message: marks) onCPUList" }
                if marks.count == 0 { marks = "none" }
                Console.printLine("  mem_desc \(hex: word.rawValue): buddy descriptor \(hex: UInt64(UInt(bitPattern: block))), block of \(1 << order) pages from descriptor \(block.pointee.firstPage.int), flags \(message: marks)")
            }
            if use == .anonymous {
                let page = PhysicalMemory.pageable(index).pointee
                var flags = LogMessage()
                if page.flags.contains(.busy) { flags = "busy" }
                if page.flags.contains(.dirty) { flags = flags.count == 0 ? "dirty" : "\(message: flags) dirty" }
                if flags.count == 0 { flags = "none" }
                Console.printLine("  pageable descriptor \(hex: UInt64(UInt(bitPattern: word.descriptor))): flags \(hex: page.flags.rawValue) (\(message: flags)), queue \(page.queue.name), object \(hex: UInt64(UInt(bitPattern: page.object))), offset \(page.offset)")
            }
            if use == .pageTable, let table = PhysicalMemory.tableDescriptor(index) {
                if table.pointee.isPinnedTable {
                    Console.printLine("  page table: \(table.pointee.tableEntries) valid entries, pinned")
                } else {
                    Console.printLine("  page table: \(table.pointee.tableEntries) valid entries")
                }
            }
            let mappings = PhysicalMemory.mappings(of: index)
            Console.printLine("  mapped at \(mappings.count) addresses:")
            var pv = mappings.head
            while let entry = pv {
                Console.printLine("    \(hex: entry.pointee.virtualAddress.rawValue, digits: 16)")
                pv = entry.pointee.next
            }
        }
    }

    // MARK: - threads (kthreads)

    static func threads() {
        withInterruptsDisabled {
            Threads.forEach { thread in
                let t = thread.pointee
                let mark: StaticString = thread == Scheduler.current ? "*" : " "
                var line = LogMessage.Appender(message: "\(mark) thread \(t.id) \(t.name): \(t.state.name)")
                if t.state == .sleeping {
                    let wait = t.wait
                    line.write(" in ")
                    line.write(wait.reason)
                    if let requester = wait.requester {
                        line.write(" for ")
                        Format.decimal(wait.pagesWanted, into: &line)
                        line.write(" ")
                        line.write(requester.name)
                        line.write("-class page(s)")
                    }
                    if let zone = wait.zone {
                        line.write(" while growing zone ")
                        line.write(zone)
                    }
                    line.write(" on channel ")
                    Format.hex(UInt64(UInt(bitPattern: wait.channel)), into: &line)
                    line.write(" for ")
                    Format.decimal(Timer.ticks - wait.sinceTick, into: &line)
                    line.write(" ticks")
                }
                Console.printLine(line.message)
            }
        }
    }

    // MARK: - reserves

    /// The pageout path's reserves in one place (docs/reserves.md): which protections are on,
    /// each zone's reserve against the bound the derivation gives it, the free-page tiers and
    /// the deepest draws so far.
    static func reserves() {
        withInterruptsDisabled {
            Console.printLine("protections: \(protections: Reserves.protections)\(Zones.reservesEnabled ? "" : " (zone reserves configured but not enforced)")")
            Console.printLine("zone           reserve     free   lowest  deepest    bound  refills   failed")
            Zones.forEach { zone in
                let s = zone.state.pointee
                let t = s.statistics
                guard s.reserveTarget > 0 else { return }
                let lowest = t.lowestFree > 1 << 62 ? 0 : t.lowestFree
                let bound: LogMessage = s.reserveBound == Int.max ? "-" : "\(s.reserveBound)"
                Console.printLine("\(s.name, left: 14) \(s.reserveTarget, width: 7) \(s.freeObjects, width: 8) \(lowest, width: 8) \(t.deepestReserveUse, width: 8) \(message: bound, right: 8) \(t.refills, width: 8) \(t.failedRefills, width: 8)")
            }
            let t = PhysicalMemory.thresholds
            Console.printLine("pages: \(PhysicalMemory.freePages) free of \(PhysicalMemory.managedPages); ordinary requests stop at free_reserved \(t.freeReserved), system ones at free_min \(t.freeMin), pageout goes below it")
            Console.printLine("pages: lowest free \(PhysicalMemory.lowestFreePages == UInt64.max ? 0 : PhysicalMemory.lowestFreePages); deepest draw below its floor: system \(PhysicalMemory.statistics[.system].deepestReserveUse), pageout \(PhysicalMemory.statistics[.pageout].deepestReserveUse) of bound \(PhysicalMemory.pageoutDrawBound)")
            Console.printLine("paging: starts below \(t.pagingStart) free pages, stops at \(t.pagingTarget); \(VMWait.waiters) threads in vm_wait; swap \(SwapDevice.usedBlocks) of \(SwapDevice.blocks) blocks in use")
            let w = PageoutRequests.statistics
            Console.printLine("writes in flight: \(PageoutRequests.requestsInFlight) of \(PageoutRequests.slots) slots (\(PageoutRequests.pagesInFlight) pages, counted as coming); at most \(w.peakRequests) at once; \(w.written) written, \(w.failed) failed, \(w.slotWaits) waits for a slot")
        }
    }
}

extension LogMessage.Interpolation {
    /// `text`, then spaces to `width` columns (Python's `%-14s`).
    mutating func appendInterpolation(_ text: StaticString, left width: Int) {
        appender.write(text)
        appender.write(repeating: UInt8(ascii: " "), count: max(0, width - text.utf8CodeUnitCount))
    }

    /// `value` in decimal, then spaces to `width` columns (`%-3d`).
    mutating func appendInterpolation<T: BinaryInteger>(_ value: T, left width: Int) {
        let before = appender.message.count
        appendInterpolation(value)
        appender.write(repeating: UInt8(ascii: " "), count: max(0, width - (appender.message.count - before)))
    }

    /// `message` right-aligned in `width` columns (`%10s`).
    mutating func appendInterpolation(message: LogMessage, right width: Int) {
        appender.write(repeating: UInt8(ascii: " "), count: max(0, width - message.count))
        message.write(into: &appender)
    }
}
