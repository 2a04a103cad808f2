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
    /// Faults that found a page but no pageable descriptor for it (and waited for memory).
    static var descriptorShortages: UInt64 = 0

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

    /// What one attempt at resolving a fault came to.
    private enum Attempt {
        case mapped
        /// Something changed while we looked (the page was freed, replaced or busy): look again.
        case retry
        /// A page, PV entry, page table or pager window was short: wait in vm_wait, then retry.
        case waitForMemory
        /// The thread was stopped or its memory is dead: it ends here.
        case stop
    }

    private static func resolve(_ address: VirtualAddress) -> Bool {
        while true {
            if Scheduler.current.pointee.killed { Threads.exit() }
            // Pinned, so that the object outlives a concurrent free of the range while the
            // fault works on it.
            guard let (object, index) = Kmem.withPageableObject(at: address, { object, index in
                withInterruptsDisabled { MemoryObjects.pin(object) }
                return (object, index)
            }) else { return false }
            let attempt = resolve(address, object, index)
            // Unpinned before any wait: a thread freeing the object waits only while we work
            // on it, never while we wait for memory.
            MemoryObjects.unpin(object)
            switch attempt {
            case .mapped: return true
            case .retry: continue
            case .waitForMemory: VMWait.wait(context, pages: 1)
            case .stop: Threads.exit()
            }
        }
    }

    /// One attempt. The rule (PageDescriptor.swift): a page is mapped, filled or given up only
    /// while this thread holds it busy, and nothing here sleeps for memory while holding a busy
    /// page - every allocation made while busy is a non-waiting one, and on a shortage the page
    /// is released first and the wait happens in `resolve`. So the out-of-memory policy,
    /// which waits for busy pages, never waits for a thread that waits for memory.
    private static func resolve(_ address: VirtualAddress, _ object: ObjectRef, _ index: Int) -> Attempt {
        if object.pointee.dead { return .stop }
        let resident = object.pointee.page(at: index)
        if resident != .none {
            // Already resident: claim it (off its queue, busy) to map it, rechecking that the
            // slot still holds it - it may have been cleaned and freed since we looked (and
            // its descriptor with it: it is looked at only after the recheck).
            let claimed: Attempt? = withInterruptsDisabled {
                guard object.pointee.page(at: index) == resident else { return .retry }
                let descriptor = PhysicalMemory.pageable(resident)
                if descriptor.pointee.flags.contains(.busy) {
                    Scheduler.sleep(on: UnsafeRawPointer(descriptor), reason: "page busy", kind: .busyPage)
                    return .retry
                }
                PageQueues.claim(resident)
                return nil
            }
            if let other = claimed { return other }
            let mapped = Pmap.enter(address, page: resident, protection: .readWrite, context.withoutWaiting)
            PageQueues.release(resident, to: .active)
            guard mapped else { return .waitForMemory }
            countEvent(&remaps)
            return .mapped
        }

        // Not resident: a new page, filled from swap or with zeros, installed busy, and its
        // descriptor (PageablePage), allocated with it - both without waiting; short of
        // either, nothing is held when the thread waits.
        guard let page = PhysicalMemory.allocate(order: 0, context.withoutWaiting) else { return .waitForMemory }
        guard let descriptor = PhysicalMemory.allocatePageableDescriptor(for: page, context.withoutWaiting) else {
            PhysicalMemory.free(page)
            countEvent(&descriptorShortages)
            return .waitForMemory
        }
        // Checked and installed with interrupts off: another thread faulting on the same
        // page, or the out-of-memory policy marking the object dead, cannot come between.
        let installed: Bool = withInterruptsDisabled {
            if Scheduler.current.pointee.killed || object.pointee.dead || object.pointee.page(at: index) != .none {
                return false
            }
            descriptor.pointee.object = UnsafeMutableRawPointer(object)
            descriptor.pointee.offset = UInt32(index)
            PhysicalMemory.makePageable(page, descriptor)
            PageQueues.setBusy(page)
            object.pointee.installPage(page, at: index)
            return true
        }
        if !installed {
            // Stopped, or someone else brought the page in.
            PhysicalMemory.freePageableDescriptor(descriptor)
            PhysicalMemory.free(page)
            return .retry
        }
        if let block = SwapMetadata.lookup(object, index) {
            switch SwapPager.pageIn(page, block: block, context.withoutWaiting) {
            case .read:
                countEvent(&swapIns)
            case .noWindow:
                // No pager window without waiting: give the page up (unfilled, it must not
                // stay resident) and wait with nothing held.
                abandon(page, object, index)
                return .waitForMemory
            case .ioError:
                // The disk could not give the page back: its contents are lost, and nothing
                // else is. The page goes back unfilled, the object is marked dead (no thread
                // may read what it no longer holds) and the faulting thread stops - its joiner
                // learns it was killed - as do the object's owner and anyone else who faults
                // on it. Other objects, and this one's other swap blocks, are untouched.
                abandon(page, object, index)
                reportLostPage(address, object, index, block)
                return .stop
            }
        } else {
            PhysicalMemory.pointer(to: page).initializeMemory(as: UInt8.self, repeating: 0, count: Int(pageSize))
            descriptor.pointee.flags.insert(.dirty)      // no copy on swap yet
            countEvent(&zeroFills)
        }
        let mapped = Pmap.enter(address, page: page, protection: .readWrite, context.withoutWaiting)
        PageQueues.release(page, to: .active)      // resident now either way; unmapped, the next attempt maps it
        return mapped ? .mapped : .waitForMemory
    }

    static var lostPages: UInt64 = 0

    /// A page-in failed: says so, marks `object` dead and its owner and the faulting thread
    /// killed (with interrupts off, as the out-of-memory policy does: kernel/VM/OutOfMemory.swift).
    /// Kernel-owned memory (owner 0) has nobody to stop: that is a panic.
    private static func reportLostPage(_ address: VirtualAddress, _ object: ObjectRef, _ index: Int, _ block: UInt32) {
        let ownerID = object.pointee.owner
        guard ownerID != 0 else {
            panic("page fault at \(address: address): swap block \(block) could not be read back; the kernel's own pageable memory is lost")
        }
        countEvent(&lostPages)
        let me = Scheduler.current
        let ownerName: StaticString = withInterruptsDisabled {
            var name: StaticString = "(gone)"
            Threads.forEach { thread in
                if thread.pointee.id == ownerID {
                    thread.pointee.killed = true
                    name = thread.pointee.name
                }
            }
            me.pointee.killed = true
            object.pointee.markDead()
            return name
        }
        Log.error(.swap, "page-in of \(address: address) (page \(index) of its object) failed: swap block \(block) could not be read; the page is lost. Stopping thread \(me.pointee.id) \(me.pointee.name), which faulted on it, and the memory's owner, thread \(ownerID) \(ownerName)")
    }

    /// Gives up a busy page that was installed but never filled: out of the object and freed,
    /// in one step with the wakeup of whoever waits for it.
    private static func abandon(_ page: PageIndex, _ object: ObjectRef, _ index: Int) {
        withInterruptsDisabled { MemoryObjects.takeOut(page, from: object, at: index) }
        PhysicalMemory.free(page)
    }
}
