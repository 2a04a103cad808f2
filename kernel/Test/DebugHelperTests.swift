// DebugHelperTests.swift - the state the gdb helpers are checked against.
//
// The case builds known state, prints the kernel's own view of it ("view ..." lines), then
// stops at kernel_debug_checkpoint. Under `make test` the runner's gdb check
// (qemu/harness/gdbcheck.py) breaks there, runs kzones, kbuddy, kmap, kpage, kthreads and klog,
// and asserts that they show what the kernel printed (kpage: the mappings and the page's use). Run without gdb, the case just prints.

import ArchSupport

enum DebugHelperTests {
    static var suite: TestSuite {
        TestSuite("gdbhelpers", exclusive: false, [
            TestCase("printTheKernelsViewThenStop", printTheKernelsViewThenStop),
        ])
    }

    static func printTheKernelsViewThenStop() {
        let zone = Zones.create("gdb-zone", objectSize: 80, slabPages: 1, reserve: 4)
        var objects: [UnsafeMutableRawPointer] = []
        for _ in 0..<37 { objects.append(zone.allocate(.ordinary)!) }
        let wired = Kmem.allocate(5 * pageSize)!
        // A pageable page, faulted in: its word points to its own descriptor (PageablePage).
        let pageable = Kmem.allocatePageable(pageSize)!
        pointer(at: pageable).storeBytes(of: 0x6764_6221, as: UInt64.self)
        let page = PhysicalMemory.allocate(order: 0, .ordinary)!
        let first = KernelLayout.pmapTestWindowBase + 0x12_3000, second = KernelLayout.pmapTestWindowBase + 0x3567_8000
        _ = Pmap.enter(first, page: page, protection: .readWrite, .system)
        _ = Pmap.enter(second, page: page, protection: .read, .system)
        let channel = UnsafeMutableRawPointer.allocate(byteCount: 8, alignment: 8)
        let sleeper = Threads.spawn("gdb-sleeper") {
            withInterruptsDisabled { Scheduler.sleep(on: UnsafeRawPointer(channel), reason: "gdb test") }
        }
        while sleeper.pointee.state != .sleeping { Scheduler.yield() }

        withInterruptsDisabled {
            Zones.forEach { zone in
                let s = zone.state.pointee
                Log.info(.test, "view zone \(zone.name) inuse \(s.inUse) free \(s.freeObjects) static \(s.statistics.staticSlabs) dynamic \(s.statistics.dynamicSlabs)")
            }
            for order in 0...BuddyAllocator.maxOrder {
                Log.info(.test, "view buddy order \(order) \(PhysicalMemory.buddy!.pointee.freeBlockCount(order: order))")
            }
            let pool = PhysicalMemory.buddy!.pointee.descriptors
            Log.info(.test, "view pool \(pool.staticPages) \(pool.dynamicPages) \(pool.inUse) \(pool.freeCount)")
            let t = PhysicalMemory.thresholds
            Log.info(.test, "view thresholds \(t.freeMin) \(t.freeReserved) \(t.pagingStart) \(t.pagingTarget)")
            KernelMaps.kmem.pointee.map.forEach { entry in
                Log.info(.test, "view map kmem \(hex: entry.pointee.start) \(hex: entry.pointee.end)")
            }
            Log.info(.test, "view page \(hex: PhysicalMemory.physicalAddress(of: page).rawValue) mapped \(hex: first) \(hex: second)")
            // Four pages of different uses: a page taken and mapped but not typed, a kmem
            // page, a slab page (through the direct map), a pageable page.
            for address in [first, wired, VirtualAddress(objects[0]), pageable] {
                let page = PhysicalMemory.index(of: Pmap.extract(address)!)!
                Log.info(.test, "view use \(hex: address) \(PhysicalMemory.use(of: page).name)")
                if PhysicalMemory.use(of: page) == .anonymous {
                    let descriptor = PhysicalMemory.pageable(page)
                    Log.info(.test, "view pageable \(hex: address) \(hex: UInt64(UInt(bitPattern: descriptor))) \(descriptor.pointee.queue.name) \(descriptor.pointee.offset)")
                }
            }
            // Every CPU the kernel tried to start, as kcpus shows it.
            for index in 0..<SMP.areasUsed {
                let cpu = PerCPU.area(index)
                let running = cpu.pointee.currentThread
                if running == ThreadRef.unsetPlaceholder {
                    Log.info(.test, "view cpu \(cpu.pointee.index) \(cpu.pointee.apicID) \(cpu.pointee.currentState.name) none")
                } else {
                    Log.info(.test, "view cpu \(cpu.pointee.index) \(cpu.pointee.apicID) \(cpu.pointee.currentState.name) \(running.pointee.id)")
                }
            }
            Threads.forEach { thread in
                Log.info(.test, "view thread \(thread.pointee.id) \(thread.pointee.name) \(thread.pointee.state.name) \(thread.pointee.cpu)")
            }
            Log.info(.test, "view marker gdb-\(KernelOptions.seed)-\(Timer.ticks)")
            // Still with interrupts off and the kernel lock held: neither the pageout thread, a
            // timer tick nor another CPU may change what was just printed before gdb looks.
            kernel_debug_checkpoint()   // gdb stops here (kernel/Arch/x86_64/Landmarks.S)
        }

        withInterruptsDisabled { _ = Scheduler.wakeup(UnsafeRawPointer(channel)) }
        Threads.join(sleeper)
        channel.deallocate()
        Pmap.removeAll(page)
        PhysicalMemory.free(page)
        Kmem.free(wired, 5 * pageSize)
        Kmem.freePageable(pageable, pageSize)
        for object in objects { zone.free(object) }
        Zones.destroy(zone)
    }
}
