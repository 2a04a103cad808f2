// PageFault.swift - faults on pageable kernel memory.
//
// A fault in the pageable submap is resolved, not fatal: find the entry and its anonymous
// object, and the page that belongs at the address - already resident (map it again), being
// paged in or out by someone else (wait for it), on swap (read it back) or never touched
// (a zero-filled page). The faulting thread is an ordinary requester (`context`): it never
// touches a reserve, and when a page, a PV entry or a page-table page is short it waits in
// vm_wait until its own tier can be served - not merely until any page is free. Faults
// anywhere else are left to the panic path. A fault on pageable memory with interrupts off
// cannot wait for the page, and is a bug: it panics saying so.

enum PageFault {
    static var zeroFills: UInt64 = 0
    static var swapIns: UInt64 = 0
    static var remaps: UInt64 = 0

    /// Every allocation a fault makes, and every wait.
    static let context = AllocationContext.ordinary

    /// False until threads exist: before that, every page fault is fatal.
    static var isEnabled = false

    static func enable() {
        isEnabled = true
    }

    static func handle(_ frame: UnsafeMutablePointer<InterruptFrame>, _ address: VirtualAddress) -> Bool {
        let pageable = KernelMaps.pageable.pointee.map
        guard address >= pageable.start && address < pageable.end else { return false }
        guard frame.pointee.rflags & (1 << 9) != 0 else {
            panic("page fault on pageable memory at \(address: address) with interrupts off: the page cannot be waited for")
        }
        CPU.enableInterrupts()
        let resolved = resolve(address.roundedDown(to: pageSize))
        CPU.disableInterrupts()
        return resolved
    }

    private static func resolve(_ address: VirtualAddress) -> Bool {
        while true {
            if Scheduler.current.pointee.killed { Threads.exit() }
            let map = KernelMaps.pageable
            map.pointee.lock.lock()
            guard let entry = map.pointee.map.lookup(address), entry.pointee.kind == .anonymous,
                  let raw = entry.pointee.object else {
                map.pointee.lock.unlock()
                return false
            }
            let object = raw.assumingMemoryBound(to: MemoryObject.self)
            let index = Int((address - entry.pointee.start + entry.pointee.offset) / pageSize)
            map.pointee.lock.unlock()
            if object.pointee.dead { Threads.exit() }

            let resident = object.pointee.page(at: index)
            if resident != .none {
                let descriptor = PhysicalMemory.page(resident)
                let waited: Bool = withInterruptsDisabled {
                    guard descriptor.pointee.flags.contains(.busy) else { return false }
                    Scheduler.sleep(on: UnsafeRawPointer(descriptor), reason: "page busy")
                    return true
                }
                if waited { continue }
                guard Pmap.enter(address, page: resident, protection: .readWrite, context) else {
                    VMWait.wait(context, pages: 1)
                    continue
                }
                countEvent(&remaps)
                return true
            }

            // Not resident: a new page, filled from swap or with zeros.
            guard let page = PhysicalMemory.allocate(order: 0, context) else { continue }
            let descriptor = PhysicalMemory.page(page)
            // Checked and installed with interrupts off: another thread faulting on the same
            // page, or the out-of-memory policy marking the object dead, cannot come between.
            let installed: Bool = withInterruptsDisabled {
                if Scheduler.current.pointee.killed || object.pointee.dead || object.pointee.page(at: index) != .none {
                    return false
                }
                PhysicalMemory.setUse(page, .anonymous)
                descriptor.pointee.flags.insert(.busy)
                descriptor.pointee.object = UnsafeMutableRawPointer(object)
                descriptor.pointee.offset = UInt64(index)
                object.pointee.installPage(page, at: index)
                return true
            }
            if !installed {
                PhysicalMemory.free(page)      // stopped, or someone else brought the page in
                continue
            }
            if let block = SwapMetadata.lookup(object, index) {
                guard SwapPager.pageIn(page, block: block) else {
                    panic("page fault at \(address: address): swap block \(block) could not be read back; the page's contents are lost")
                }
                countEvent(&swapIns)
            } else {
                PhysicalMemory.pointer(to: page).initializeMemory(as: UInt8.self, repeating: 0, count: Int(pageSize))
                descriptor.pointee.flags.insert(.dirty)      // no copy on swap yet
                countEvent(&zeroFills)
            }
            // Queued and unbusied in one step (PageDescriptor.swift: a resident page is busy or
            // on a queue): between the two, a woken releasePages could free a page that is
            // then queued while free.
            withInterruptsDisabled {
                PageQueues.insert(page, .active)
                descriptor.pointee.flags.remove(.busy)
                Scheduler.wakeup(UnsafeRawPointer(descriptor))
            }
            if !Pmap.enter(address, page: page, protection: .readWrite, context) {
                VMWait.wait(context, pages: 1)
                continue                        // resident now; the next round maps it
            }
            return true
        }
    }
}
