// Benchmarks.swift - bench=: timing the memory system from inside the kernel.
//
// Each measurement runs its operation a number of times after a warm-up, repeats that
// `repetitions` times, and reports the median rdtsc ticks per operation (lfence first). What
// a tick is depends on how QEMU runs the kernel, which only qemu/bench.py knows:
//   - TCG with `-icount shift=0,align=off` (make bench's primary figures): rdtsc counts guest
//     instructions, so every figure is instructions per operation - identical on every run;
//   - plain TCG: host time scaled to QEMU's TSC rate - noisy, only comparable within a run;
//   - KVM on hardware virtualisation: host CPU cycles.
// Results are lines "B <group> <name> <value> <unit>" for qemu/bench.py to collect, plus a
// readable log. Benchmarks are not tests: nothing here fails.

import Synchronization

extension LogTag {
    static let bench = LogTag("bench")
}

enum Benchmarks {
    static let repetitions = 9

    /// Median cycles per operation of `body`, which performs `operations` operations.
    static func measure(operations: Int, warmUp: Bool = true, _ body: () -> Void) -> UInt64 {
        if warmUp { body() }
        var samples: [UInt64] = []
        samples.reserveCapacity(repetitions)
        for _ in 0..<repetitions {
            let start = CPU.timestamp()
            body()
            samples.append((CPU.timestamp() - start) / UInt64(max(1, operations)))
        }
        samples.sort()
        return samples[repetitions / 2]
    }

    static func report(_ group: StaticString, _ name: StaticString, _ value: UInt64, _ unit: StaticString) {
        Console.printLine("B \(group) \(name) \(value) \(unit)")
    }

    static func run(_ selection: ByteString) -> Never {
        Log.info(.bench, "benchmarks: \(selection); median of \(repetitions) repetitions after a warm-up; rdtsc ticks (guest instructions under -icount)")
        let hertz = timestampFrequency()
        report("machine", "tsc-hz", hertz, "Hz")
        let all = selection.equals("all")
        Preemption.disable()
        if all || selection.equals("cpu") { primitives() }
        if all || selection.equals("pmm") { pageAllocator() }
        if all || selection.equals("zones") { zones() }
        if all || selection.equals("pmap") { pmap() }
        if all || selection.equals("vmmap") { vmMap() }
        Preemption.enable()
        // Threads on every CPU: not with preemption off, which keeps the others idle.
        if selection.equals("zonescaling") { zoneScaling() }
        if all || selection.equals("fault") { faults() }
        if all || selection.equals("swap") { swapRoundTrip() }
        if all || selection.equals("pageout") { pageout(hertz) }
        if all || selection.equals("overhead") { overhead() }
        Log.info(.bench, "benchmarks done")
        QEMU.exit(.success)
    }

    /// rdtsc ticks per second, measured against 20 timer ticks (0.2 s).
    static func timestampFrequency() -> UInt64 {
        let first = Timer.ticks + 1
        while Timer.ticks < first { CPU.pause() }
        let start = CPU.timestamp()
        while Timer.ticks < first + 20 { CPU.pause() }
        return (CPU.timestamp() - start) * Timer.hertz / 20
    }

    /// What the fast paths are made of: interrupts off and on (every zone and page
    /// operation), reading the flags, rdtsc. Under a nested hypervisor some of these may
    /// trap, which dominates everything else - this says so.
    static func primitives() {
        report("cpu", "interrupts off+on (pushf, cli, sti)", measure(operations: 1000) {
            for _ in 0..<1000 { withInterruptsDisabled { CPU.pause() } }
        }, "cycles")
        report("cpu", "pause", measure(operations: 1000) {
            for _ in 0..<1000 { CPU.pause() }
        }, "cycles")
        report("cpu", "rdtsc", measure(operations: 1000) {
            for _ in 0..<1000 { _ = CPU.timestamp() }
        }, "cycles")
        // A loop of plain instructions (multiply, add, count, branch: nothing a hypervisor
        // traps). Under -icount this gives its instructions per iteration; under KVM its cycles
        // and, with tsc-hz, its nanoseconds: qemu/bench.py compares the two to tell hardware
        // virtualisation (well under 1 ns per instruction) from an emulated KVM.
        // The whole loop is the figure (LLVM unrolls it and merges steps, so its instructions
        // are whatever -icount counts, not one per source line).
        var value = UInt64(Timer.ticks) | 1
        report("cpu", "plain loop of 100000 iterations", measure(operations: 1) {
            for _ in 0..<100_000 { value = value &* 6364136223846793005 &+ 1442695040888963407 }
        }, "cycles")
        Log.info(.bench, "plain loop result \(value) (printed so that the loop is not optimised away)")
    }

    // MARK: - Page allocator

    static func pageAllocator() {
        // The CPU page list's pair (CPUPageLists.swift): a pop and a push on this CPU's list,
        // with no kernel-lock section once the list has pages. The pairs after it measure the
        // buddy allocator itself, with the lists suspended.
        if CPUPageLists.storage != nil {
            report("pmm", "order-0 pair on the CPU page list", measure(operations: 10_000) {
                for _ in 0..<10_000 { PhysicalMemory.free(PhysicalMemory.allocate(order: 0, .ordinaryNoWait)!) }
            }, "cycles")
            let sectionsBefore = PerCPU.this.pointee.pageAllocatorSections
            for _ in 0..<1_000 { PhysicalMemory.free(PhysicalMemory.allocate(order: 0, .ordinaryNoWait)!) }
            report("pmm", "page-allocator lock sections per 1000 order-0 pairs (steady state)", PerCPU.this.pointee.pageAllocatorSections - sectionsBefore, "sections")
        } else {
            Log.info(.bench, "CPU page lists are off in this boot (pagelists=off, or too little memory per CPU): no list pair to measure")
        }
        CPUPageLists.whileSuspended { centralPairs() }
    }

    /// The buddy allocator's own pairs, the CPU page lists suspended.
    static func centralPairs() {
        for (order, name) in [(0, "order-0 allocate+free pair" as StaticString), (3, "order-3 allocate+free pair")] {
            let cycles = measure(operations: 10_000) {
                for _ in 0..<10_000 {
                    let block = PhysicalMemory.allocate(order: order, .ordinaryNoWait)!
                    PhysicalMemory.free(block, order: order)
                }
            }
            report("pmm", name, cycles, "cycles")
        }
        // The pair above splits the smallest free block down to the order asked for and merges
        // it back, retagging every page of each half both ways: its cost depends on how deep
        // that split is in this boot's free lists, which the next line says. The pair below
        // holds the block's buddy so that the block stays on its own free list: no split, no
        // merge - the allocator's fixed cost per pair.
        for (order, name, depthName) in [(0, "order-0 pair without a split (its buddy held)" as StaticString, "order-0 pair: split depth" as StaticString),
                                         (3, "order-3 pair without a split (its buddy held)", "order-3 pair: split depth")] {
            var from = order
            while from <= BuddyAllocator.maxOrder && PhysicalMemory.buddy!.pointee.freeBlockCount(order: from) == 0 { from += 1 }
            report("pmm", depthName, UInt64(from - order), "orders")
            let first = PhysicalMemory.allocate(order: order, .ordinaryNoWait)!
            let buddy = PhysicalMemory.allocate(order: order, .ordinaryNoWait)!
            PhysicalMemory.free(first, order: order)
            let cycles = measure(operations: 10_000) {
                for _ in 0..<10_000 {
                    let block = PhysicalMemory.allocate(order: order, .ordinaryNoWait)!
                    PhysicalMemory.free(block, order: order)
                }
            }
            PhysicalMemory.free(buddy, order: order)
            report("pmm", name, cycles, "cycles")
        }
    }

    // MARK: - Zones

    static func zones() {
        let zone = Zones.create("bench-64", objectSize: 64, slabPages: 1, reserve: 0)
        report("zones", "allocate+free pair (64 B, warm)", measure(operations: 100_000) {
            for _ in 0..<100_000 { zone.free(zone.allocate(.ordinaryNoWait)!) }
        }, "cycles")
        // The CPU layer's promise: at steady state a pair takes no shared lock.
        let sectionsBefore = PerCPU.this.pointee.zoneLockSections
        for _ in 0..<1_000 { zone.free(zone.allocate(.ordinaryNoWait)!) }
        report("zones", "zone-lock sections per 1000 pairs (steady state)", PerCPU.this.pointee.zoneLockSections - sectionsBefore, "sections")
        let held = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: 100_000)
        for (count, name) in [(1_000, "allocate 1000 then free 1000, per object" as StaticString), (100_000, "allocate 100000 then free 100000, per object")] {
            report("zones", name, measure(operations: 2 * count) {
                for index in 0..<count { held[index] = zone.allocate(.ordinaryNoWait)! }
                for index in 0..<count { zone.free(held[index]) }
            }, "cycles")
        }
        // Seeded interleaving: the same operation sequence every repetition.
        var random = SeededRandom(seed: 2026)
        let operations = 100_000
        let plan = UnsafeMutablePointer<UInt16>.allocate(capacity: operations)
        for index in 0..<operations { plan[index] = UInt16(random.next(below: 1000)) }
        report("zones", "seeded random interleaving (live set up to 1000), per operation", measure(operations: operations) {
            var live = 0
            for index in 0..<operations {
                if live < 1000 && (live == 0 || plan[index] >= 500) {
                    held[live] = zone.allocate(.ordinaryNoWait)!
                    live += 1
                } else {
                    let victim = Int(plan[index]) % live
                    zone.free(held[victim])
                    live -= 1
                    held[victim] = held[live]
                }
            }
            for index in 0..<live { zone.free(held[index]) }
        }, "cycles")
        plan.deallocate()
        held.deallocate()
        Zones.destroy(zone)
        for (size, name) in [(32, "kmalloc 32 B pair" as StaticString), (256, "kmalloc 256 B pair"), (2048, "kmalloc 2048 B pair")] {
            report("zones", name, measure(operations: 100_000) {
                for _ in 0..<100_000 { Kmalloc.free(Kmalloc.allocate(size, alignment: 16, .ordinaryNoWait)!) }
            }, "cycles")
        }
    }

    /// bench=zonescaling, booted with -smp 1, 2 and 4: one thread bound to each CPU, all doing
    /// allocate+free pairs on one shared zone at once (each also keeps a few objects, so that
    /// magazines move through the depot) - once with the zone's CPU layer, once without it
    /// (every operation through the zone lock, the kernel lock), in the same boot. Under
    /// -icount QEMU runs the CPUs round-robin on one virtual clock, so the figure is guest
    /// instructions per pair over all CPUs: flat when the CPUs do not get in each other's
    /// way, higher when they spin on a lock. Then the same for single pages: with the CPU page
    /// lists and with the buddy allocator alone (the lists suspended).
    static func zoneScaling() {
        let zone = Zones.create("bench-scale", objectSize: 64, slabPages: 1, reserve: 0)
        let zoneRound = { (layer: StaticString) in
            scalingRound("zonescaling", layer, sections: totalZoneLockSections, sectionName: "zone-lock", keptBurst: 64,
                         allocate: { zone.allocate(.ordinaryNoWait)! }, free: { zone.free($0) },
                         write: { $0.storeBytes(of: UInt64($1), as: UInt64.self) })
        }
        zoneRound("with the CPU layer")
        zone.setCaching(false)
        zoneRound("without it")
        Zones.destroy(zone)
        // The same pairs of single pages: the CPU page lists, then the buddy allocator alone.
        let pageRound = { (layer: StaticString) in
            scalingRound("pagescaling", layer, sections: totalPageAllocatorSections, sectionName: "page-allocator lock", keptBurst: 16,
                         allocate: { PhysicalMemory.allocate(order: 0, .ordinaryNoWait)! }, free: { PhysicalMemory.free($0) },
                         write: { PhysicalMemory.pointer(to: $0).storeBytes(of: UInt64($1), as: UInt64.self) })
        }
        if CPUPageLists.storage != nil { pageRound("with the CPU page lists") }
        CPUPageLists.whileSuspended { pageRound("without them") }
    }

    /// One thread bound to each CPU online, all doing `pairs` allocate+free pairs at once, each
    /// keeping a quarter of its objects for a while (48 of every 64 freed at once, the others
    /// freed in bursts of `keptBurst`): the instructions per pair over all CPUs together, the
    /// lock sections `sections` counts and the kernel lock's contention, per 1,000 pairs.
    static func scalingRound<Item>(_ group: StaticString, _ layer: StaticString, sections: () -> UInt64, sectionName: StaticString, keptBurst: Int,
                                   allocate: @escaping () -> Item, free: @escaping (Item) -> Void, write: @escaping (Item, Int) -> Void) {
        let cpus = SMP.onlineCount
        let pairs = 20_000
        scalingStart.store(0, ordering: .relaxed)
        scalingReady.store(0, ordering: .relaxed)
        let sectionsBefore = sections()
        let contendedBefore = KernelLock.contended
        var threads: [ThreadRef] = []
        for cpu in 0..<cpus {
            threads.append(Threads.spawn("scaler", affinity: .only(cpu)) {
                var kept: [Item] = []
                kept.reserveCapacity(keptBurst)
                scalingReady.wrappingAdd(1, ordering: .releasing)
                while scalingStart.load(ordering: .acquiring) == 0 { CPU.pause() }
                for index in 0..<pairs {
                    let item = allocate()
                    write(item, index)
                    if index % 64 < 48 { free(item) } else { kept.append(item) }
                    if kept.count == keptBurst { for held in kept { free(held) }; kept.removeAll(keepingCapacity: true) }
                }
                for held in kept { free(held) }
            })
        }
        while scalingReady.load(ordering: .acquiring) < UInt64(cpus) { Scheduler.yield() }
        let start = CPU.timestamp()
        scalingStart.store(1, ordering: .releasing)
        for thread in threads { Threads.join(thread) }
        let elapsed = CPU.timestamp() - start
        let taken = sections() - sectionsBefore
        let contended = KernelLock.contended - contendedBefore
        let total = UInt64(cpus * pairs)
        Log.info(.bench, "\(group), \(layer): \(cpus) CPUs x \(pairs) pairs in \(elapsed) ticks; \(taken) \(sectionName) sections; kernel lock contended \(contended) times")
        Console.printLine("B \(group) \(layer): ticks per pair, all CPUs together \(elapsed / total) cycles")
        Console.printLine("B \(group) \(layer): \(sectionName) sections per 1000 pairs \(taken * 1000 / total) sections")
        Console.printLine("B \(group) \(layer): kernel lock contended per 1000 pairs \(contended * 1000 / total) times")
    }

    static let scalingStart = Atomic<UInt64>(0)
    static let scalingReady = Atomic<UInt64>(0)

    static func totalZoneLockSections() -> UInt64 {
        var total: UInt64 = 0
        for index in 0..<SMP.areasUsed { total &+= PerCPU.area(index).pointee.zoneLockSections }
        return total
    }

    static func totalPageAllocatorSections() -> UInt64 {
        var total: UInt64 = 0
        for index in 0..<SMP.areasUsed { total &+= PerCPU.area(index).pointee.pageAllocatorSections }
        return total
    }

    // MARK: - pmap

    static func pmap() {
        let page = PhysicalMemory.allocate(order: 0, .ordinary)!
        let address = KernelLayout.pmapTestWindowBase + 0x40_0000
        // Keep the page table alive across repetitions: a neighbour stays mapped.
        _ = Pmap.enter(address + pageSize, page: page, protection: .readWrite, .system)
        report("pmap", "enter+remove one 4 KiB mapping", measure(operations: 10_000) {
            for _ in 0..<10_000 {
                _ = Pmap.enter(address, page: page, protection: .readWrite, .system)
                Pmap.remove(address, pages: 1)
            }
        }, "cycles")
        Pmap.removeAll(page)
        PhysicalMemory.free(page)
    }

    // MARK: - vm_map

    /// A map with `count` one-page entries separated by random gaps of 1 to 8 pages.
    static func vmMap() {
        for (count, lookupName, findName) in [
            (10, "lookup, 10 entries" as StaticString, "find-space, 10 entries" as StaticString),
            (100, "lookup, 100 entries", "find-space, 100 entries"),
            (1_000, "lookup, 1000 entries", "find-space, 1000 entries"),
            (10_000, "lookup, 10000 entries", "find-space, 10000 entries"),
            (100_000, "lookup, 100000 entries", "find-space, 100000 entries"),
        ] {
            // Up to 9.6 MB of entries: kmem, which needs no physically contiguous block.
            let bytes = UInt64(count * MemoryLayout<MapEntry>.stride)
            let entries = Kmem.allocate(bytes)!.pointer.bindMemory(to: MapEntry.self, capacity: count)
            var map = VMMapState(name: "bench", start: VirtualAddress(0x1000_0000_0000), end: VirtualAddress(0x1000_0000_0000 + (1 << 36)))
            var random = SeededRandom(seed: 7)
            var address = map.start
            for index in 0..<count {
                address += UInt64(1 + random.next(below: 8)) * pageSize
                (entries + index).initialize(to: MapEntry(start: address, end: address + pageSize, kind: .reserved, protection: []))
                map.insert(entries + index)
                address += pageSize
            }
            let span = address - map.start
            var probes = SeededRandom(seed: 11)
            var found = 0
            report("vmmap", lookupName, measure(operations: 10_000) {
                for _ in 0..<10_000 where map.lookup(map.start + probes.next(below: span)) != nil { found += 1 }
            }, "cycles")
            // The algorithm's own cost, free of memory-system effects: tree nodes one lookup
            // visits, in hundredths.
            var visits = 0
            var visitProbes = SeededRandom(seed: 13)
            for _ in 0..<10_000 {
                let target = map.start + visitProbes.next(below: span)
                var node = map.root
                while let entry = node {
                    visits += 1
                    if target < entry.pointee.start { node = entry.pointee.left }
                    else if target >= entry.pointee.end { node = entry.pointee.right }
                    else { break }
                }
            }
            Console.printLine("B vmmap nodes visited per lookup, \(count) entries \(visits / 100) hundredths")
            // 9 pages only fit past the last entry: the search must prove no gap fits on the way.
            report("vmmap", findName, measure(operations: 10_000) {
                for _ in 0..<10_000 { found &+= Int(truncatingIfNeeded: map.findSpace(size: 9 * pageSize, alignment: pageSize)!.rawValue) }
            }, "cycles")
            Kmem.free(VirtualAddress(entries), bytes)
        }
    }

    // MARK: - Faults and pageout

    static func faults() {
        let pages = 2048
        var cycles: [UInt64] = []
        for _ in 0..<5 {
            let address = Kmem.allocatePageable(UInt64(pages) * pageSize)!
            let start = CPU.timestamp()
            for page in 0..<pages { pointer(at: address + UInt64(page) * pageSize).storeBytes(of: 1, as: UInt8.self) }
            cycles.append((CPU.timestamp() - start) / UInt64(pages))
            Kmem.freePageable(address, UInt64(pages) * pageSize)
        }
        cycles.sort()
        report("fault", "zero-fill page fault", cycles[cycles.count / 2], "cycles")
    }

    /// One page written to swap and read back, per page: the pages of a pageable range are
    /// evicted (unmapped, written to the swap disk, freed: Pageout.evict, what a pageout pass
    /// does to a page) and then written to, which faults each back in from swap (and dirties
    /// it, so the next repetition writes it out again). Needs a swap disk.
    static func swapRoundTrip() {
        guard SwapDevice.isPresent else {
            Log.warn(.bench, "no swap disk: skipping the swap round-trip benchmark")
            return
        }
        let pages = 64
        let bytes = UInt64(pages) * pageSize
        let address = Kmem.allocatePageable(bytes)!
        for page in 0..<pages { pointer(at: address + UInt64(page) * pageSize).storeBytes(of: UInt64(page), as: UInt64.self) }
        let object = Kmem.withPageableObject(at: address, { object, _ in object })!
        var outTicks: [UInt64] = []
        var inTicks: [UInt64] = []
        var evicted = 0
        for _ in 0..<repetitions {
            let start = CPU.timestamp()
            evicted += Pageout.evict(object)
            let middle = CPU.timestamp()
            for page in 0..<pages { pointer(at: address + UInt64(page) * pageSize).storeBytes(of: UInt64(page), as: UInt64.self) }
            let end = CPU.timestamp()
            outTicks.append((middle - start) / UInt64(pages))
            inTicks.append((end - middle) / UInt64(pages))
        }
        Kmem.freePageable(address, bytes)
        if evicted != repetitions * pages {
            Log.warn(.bench, "swap round trip: \(evicted) of \(repetitions * pages) pages evicted; the figures are not one page each")
        }
        outTicks.sort()
        inTicks.sort()
        let out = outTicks[repetitions / 2], back = inTicks[repetitions / 2]
        report("swap", "swap-out of one page (unmap, write, free)", out, "cycles")
        report("swap", "swap-in of one page (fault, read)", back, "cycles")
        report("swap", "swap-out+swap-in of one page", out + back, "cycles")
    }

    /// Pages per second the pageout thread cleans to swap, against the swap disk's raw write rate.
    static func pageout(_ hertz: UInt64) {
        guard SwapDevice.isPresent else {
            Log.warn(.bench, "no swap disk: skipping the pageout benchmark")
            return
        }
        let buffer = Kmalloc.allocate(Int(pageSize), alignment: Int(pageSize))!
        let blocks: UInt32 = 512
        let start = CPU.timestamp()
        for block in 0..<blocks { _ = SwapDevice.write(block: block, from: buffer) }
        let rawCycles = (CPU.timestamp() - start) / UInt64(blocks)
        Kmalloc.free(buffer)
        // The same 512 pages in requests of Disk.maximumTransferPages: the rate the device
        // gives a clustered page-out, the fair yardstick for it.
        let run = Disk.maximumTransferPages
        let runBuffer = Kmalloc.allocate(run * Int(pageSize), alignment: Int(pageSize))!
        let runStart = CPU.timestamp()
        var first: UInt32 = 0
        while first < blocks {
            _ = SwapDevice.write(blocks: first, count: run, from: runBuffer)
            first += UInt32(run)
        }
        let runCycles = (CPU.timestamp() - runStart) / UInt64(blocks)
        Kmalloc.free(runBuffer)
        // Dirty twice the memory there is: everything beyond RAM goes through the pageout thread.
        let pages = Int(PhysicalMemory.managedPages) * 2
        let address = Kmem.allocatePageable(UInt64(pages) * pageSize)!
        let writtenBefore = Pageout.statistics.written
        let requestsBefore = Pageout.statistics.writeRequests
        let begin = CPU.timestamp()
        for page in 0..<pages { pointer(at: address + UInt64(page) * pageSize).storeBytes(of: UInt64(page), as: UInt64.self) }
        let elapsed = CPU.timestamp() - begin
        let cleaned = Pageout.statistics.written - writtenBefore
        let requests = Pageout.statistics.writeRequests - requestsBefore
        Kmem.freePageable(address, UInt64(pages) * pageSize)
        let rawRate = hertz / max(1, rawCycles)
        let pageoutRate = cleaned * hertz / max(1, elapsed)
        report("pageout", "raw swap write", rawRate, "pages/s")
        report("pageout", "pages cleaned to swap by the pageout thread", pageoutRate, "pages/s")
        let runRate = hertz / max(1, runCycles)
        report("pageout", "raw swap write in 16-page requests", runRate, "pages/s")
        report("pageout", "pageout rate / raw write rate", pageoutRate * 1000 / max(1, rawRate), "per-mille")
        report("pageout", "pageout rate / raw 16-page write rate", pageoutRate * 1000 / max(1, runRate), "per-mille")
        // How many pages each of the pageout thread's requests carried (pageoutcluster=).
        report("pageout", "pages per pageout write request (x100)", cleaned * 100 / max(1, requests), "pages")
    }

    // MARK: - Overhead

    static func overhead() {
        // The static part: the mem_desc word (buddy descriptors, 24 bytes per block, and
        // pageable pages' descriptors come on top: docs/memory-descriptors.md).
        let descriptor = UInt64(MemoryLayout<MemDesc>.stride)
        report("overhead", "page descriptor per 4 KiB page", descriptor, "bytes")
        report("overhead", "pages of buddy descriptors now", UInt64(PhysicalMemory.buddy!.pointee.descriptors.dynamicPages), "pages")
        report("overhead", "buddy descriptor", UInt64(MemoryLayout<BuddyDescriptor>.stride), "bytes")
        report("overhead", "pageable page descriptor", UInt64(MemoryLayout<PageablePage>.stride), "bytes")
        report("overhead", "page descriptors, share of RAM", descriptor * 100_000 / pageSize, "per-100000")
        Zones.forEach { zone in
            let s = zone.state.pointee
            // What a full slab does not use for objects: header, bitmap, padding, the tail.
            let unused = UInt64(s.slabBytes - s.objectsPerSlab * s.objectSize)
            Console.printLine("B overhead zone \(zone.name) \(unused * 1000 / UInt64(s.slabBytes)) per-mille-of-a-full-slab")
        }
    }
}
