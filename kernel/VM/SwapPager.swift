// SwapPager.swift - moving one page between memory and swap.
//
// I/O goes through a window in the pager submap: a map entry reserved for the transfer and the
// page mapped there through the pmap - which needs a map entry, a PV entry and perhaps page-
// table pages, all on the pageout path. That is the chain docs/reserves.md bounds. With
// reserves on, the pageout thread asks for all of them under the pageout context - every
// reserve, never waiting; with reserves=off it asks as an ordinary caller that may wait, and
// can wait for memory only it could free.

enum PageOutResult {
    case written
    case swapFull
    case noMetadata
    case noWindow
    case ioError

    var name: StaticString {
        switch self {
        case .written: return "written"
        case .swapFull: return "swap full"
        case .noMetadata: return "no swblock for the metadata"
        case .noWindow: return "no pager window"
        case .ioError: return "I/O error"
        }
    }
}

enum SwapPager {
    static var windowFailures: UInt64 = 0
    /// Test hook (kernel/Test/RaceTests.swift): every page-in finds no window, as it would
    /// when memory is short - the state in which a fault holds a busy page it cannot fill.
    static var refusePageInWindows = false

    /// The allocation context of the pageout path: the pageout requester, never waiting -
    /// unless the nowait protection is off (reserves=off or a list without it), when it waits
    /// in vm_wait for memory only it could free (the deadlock the tests reproduce). What the
    /// pageout requester may take also follows the zones and pages protections.
    static var pageoutContext: AllocationContext {
        Reserves.pageoutNeverWaits ? .pageout : AllocationContext(.pageout, .wait)
    }

    /// Runs `body` with `page` mapped at a window in the pager submap; nil when no window
    /// could be made under `context`'s rules.
    static func withWindow(_ page: PageIndex, _ context: AllocationContext, _ body: (UnsafeMutableRawPointer) -> Bool) -> Bool? {
        guard let address = Kmem.reserveRange(KernelMaps.pager, pageSize, context) else {
            countEvent(&windowFailures)
            return nil
        }
        guard Pmap.enter(address, page: page, protection: .readWrite, context) else {
            Kmem.free(address, pageSize, in: KernelMaps.pager)
            countEvent(&windowFailures)
            return nil
        }
        let result = body(address.pointer)
        Kmem.free(address, pageSize, in: KernelMaps.pager)
        return result
    }

    /// Where page `index` of `object` goes on swap: the block it has, or a new one whose
    /// swblock was assigned for it (released again if the write fails).
    struct Slot {
        let block: UInt32
        let isNew: Bool
    }

    enum SlotClaim {
        case claimed(Slot)
        /// `.swapFull` or `.noMetadata`: nothing was taken.
        case failed(PageOutResult)
    }

    /// The slot page `index` of `object` will be written to: its swap block when it has one
    /// (nothing allocated), else a free block and the swblock that records it, under the
    /// pageout context, after topping the entry reserves up. The pageout thread claims it
    /// before it unmaps the page (Pageout.clean), so that a step it cannot feed changes
    /// nothing.
    static func claimSlot(_ object: ObjectRef, _ index: Int) -> SlotClaim {
        if let block = SwapMetadata.lookup(object, index) { return .claimed(Slot(block: block, isNew: false)) }
        guard let fresh = SwapDevice.allocateBlock() else { return .failed(.swapFull) }
        // Only a step like this one can grow the swblock zone: what the last growth drew from
        // the entry reserves goes back first (ReserveBounds.pageoutEntryTopUpChain).
        Zones.topUpEntryReserves(pageoutContext)
        guard SwapMetadata.assign(object, index, fresh, pageoutContext) else {
            SwapDevice.freeBlock(fresh)
            return .failed(.noMetadata)
        }
        return .claimed(Slot(block: fresh, isNew: true))
    }

    /// Gives back a slot whose write failed.
    private static func releaseSlot(_ slot: Slot, _ object: ObjectRef, _ index: Int) {
        if slot.isNew { SwapMetadata.release(object, first: index, count: 1) }
    }

    /// Writes page `index` of `object` (held in `page`, unmapped and busy) to its claimed
    /// `slot`; a new slot is released again when the write fails.
    static func write(_ page: PageIndex, _ object: ObjectRef, _ index: Int, to slot: Slot) -> PageOutResult {
        guard let written = withWindow(page, pageoutContext, { SwapDevice.write(block: slot.block, from: $0) }) else {
            releaseSlot(slot, object, index)
            return .noWindow
        }
        if !written {
            releaseSlot(slot, object, index)
            return .ioError
        }
        return .written
    }

    // MARK: - Clusters

    /// The slot of a page gathered behind a cluster's first page: exactly `block` (the one
    /// after the previous page's), and its swblock, both under the ordinary context without
    /// waiting - so a follower never draws a reserve: the reserves and their bounds cover the
    /// first page of a step, which is claimed as before (docs/reserves.md). False, with nothing
    /// taken, when the page already has a block, `block` is taken, or no swblock can be had.
    static func claimFollowerSlot(_ object: ObjectRef, _ index: Int, block: UInt32) -> Bool {
        guard SwapMetadata.lookup(object, index) == nil, SwapDevice.allocateBlock(exactly: block) else { return false }
        guard SwapMetadata.assign(object, index, block, .ordinaryNoWait) else {
            SwapDevice.freeBlock(block)
            return false
        }
        return true
    }

    /// Gives back the swap slots of a cluster of `count` pages from `firstIndex` whose write
    /// failed or never started: the followers' blocks, and the first page's when it was new.
    static func releaseSlots(_ object: ObjectRef, _ firstIndex: Int, count: Int, _ slot: Slot) {
        if count > 1 { SwapMetadata.release(object, first: firstIndex + 1, count: count - 1) }
        releaseSlot(slot, object, firstIndex)
    }

    /// Writes a cluster: `count` pages (unmapped and busy) of `object` from `firstIndex` on, held
    /// in `pages`, to the blocks from `slot.block` on, in one request through one pager window.
    /// The first page's window entry and PV entry come under the pageout context, as for a single
    /// page; the followers' PV entries under the ordinary one without waiting. When a follower
    /// cannot be mapped the cluster ends before it: `count` shrinks, and the slots of the pages
    /// left out are released (the caller puts those pages back). A failed write releases every
    /// slot the cluster claimed.
    static func writeCluster(_ pages: UnsafeMutablePointer<PageIndex>, count: inout Int, _ object: ObjectRef, _ firstIndex: Int,
                             to slot: Slot) -> PageOutResult {
        kassert(count >= 1 && count <= Disk.maximumTransferPages, "swap pager: a cluster of \(count) pages")
        let claimed = count
        // Releases the slots of followers [from, to): the ones the window left out, or - with
        // the first page's slot - the whole cluster when nothing is written.
        func releaseFollowers(from first: Int, to end: Int) {
            if first < end { SwapMetadata.release(object, first: firstIndex + first, count: end - first) }
        }
        func releaseCluster(_ end: Int) {
            releaseFollowers(from: 1, to: end)
            releaseSlot(slot, object, firstIndex)
        }
        guard let address = Kmem.reserveRange(KernelMaps.pager, UInt64(claimed) * pageSize, pageoutContext) else {
            countEvent(&windowFailures)
            releaseCluster(claimed)
            return .noWindow
        }
        defer { Kmem.free(address, UInt64(claimed) * pageSize, in: KernelMaps.pager) }
        var mapped = 0
        while mapped < claimed {
            let context = mapped == 0 ? pageoutContext : .ordinaryNoWait
            guard Pmap.enter(address + UInt64(mapped) * pageSize, page: pages[mapped], protection: .read, context) else { break }
            mapped += 1
        }
        guard mapped > 0 else {
            countEvent(&windowFailures)
            releaseCluster(claimed)
            return .noWindow
        }
        releaseFollowers(from: mapped, to: claimed)
        count = mapped
        guard SwapDevice.write(blocks: slot.block, count: mapped, from: address.pointer) else {
            releaseCluster(mapped)
            return .ioError
        }
        return .written
    }

    /// Claims the slot and writes the page in one call (the reserve-bound tests drive single
    /// steps with it; the pageout thread claims first and unmaps in between).
    static func pageOut(_ page: PageIndex, _ object: ObjectRef, _ index: Int) -> PageOutResult {
        switch claimSlot(object, index) {
        case .failed(let result): return result
        case .claimed(let slot): return write(page, object, index, to: slot)
        }
    }

    /// Reads swap block `block` into `page` (busy, installed by a fault) under the faulting
    /// thread's context - ordinary and never waiting: the caller holds the page busy, and a
    /// thread that sleeps for memory while holding a busy page can stall the out-of-memory
    /// policy, which waits for busy pages (kernel/VM/PageFault.swift says how the caller
    /// waits instead). It never touches the reserves, which are the pageout thread's.
    static func pageIn(_ page: PageIndex, block: UInt32, _ context: AllocationContext) -> PageInResult {
        kassert(context.blocking == .noWait, "swap pager: a page-in holds its page busy and may not wait for memory")
        if refusePageInWindows {
            countEvent(&windowFailures)
            return .noWindow
        }
        guard let read = withWindow(page, context, { SwapDevice.read(block: block, into: $0) }) else { return .noWindow }
        return read ? .read : .ioError
    }
}

enum PageInResult {
    case read
    /// No pager window could be made without waiting.
    case noWindow
    case ioError
}
