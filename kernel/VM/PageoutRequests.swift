// PageoutRequests.swift - page-out writes in flight: started by the pageout thread, ended by
// the disk's interrupt.
//
// On a disk whose driver keeps request slots for it (virtio-blk, AHCI:
// Disk.writeSlotsInFlight), the pageout thread does not wait for a cluster's write: it hands
// the pages to the device and goes on to the next step, up to `slots` writes at once
// (pageoutinflight=, at most ReserveBounds.pageoutWritesInFlight). The driver's interrupt
// handler ends each write where it learns of it (`deviceFinished`):
//   - written: each page is taken out of its object (its copy is on swap now) and freed, and
//     whoever waits for it is woken - the tail of a synchronous Pageout.clean, run there and
//     then; nothing in it allocates or sleeps;
//   - failed: the request is marked so and the pageout thread woken, which puts every page back
//     dirty on the inactive queue and gives the swap slots back (`settleFailures`) - that frees
//     swblocks to their zone, which is the thread's work, not an interrupt's.
//
// While its write is in flight a page is busy (the flag set when the thread took it), off every
// queue and unmapped: a fault on it waits for the busy flag, the object's teardown waits, the
// scan never sees it - nobody frees, maps or reuses it until the write has completed. Its busy
// owner is 0, the device: no thread holds it, so the watchdog's wait-for graph ends there.
//
// What a write in flight holds (docs/reserves.md, "Writes in flight"): its request slot and page
// list, allocated here at boot; no pager window (the driver takes the pages' physical
// addresses), no map entry, no PV entry, no page. Its pages count as coming (`pagesInFlight`):
// the pageout thread's shortage is what neither the free pages nor the writes in flight will
// cover. The one reserve cost is time: a step that begins with writes unfinished has not had
// their pages back, so more steps keep their swblocks before the zone can grow - which is why
// the thread takes a request slot before it claims a step's swap slot, and why the swblock
// bound counts pageoutWritesInFlight - 1 more steps.
//
// Locking: the table and the counters change with interrupts off (the kernel lock): the
// interrupt handler ends a request on whichever CPU the line goes to. Only one thread starts
// writes at a time - the pageout thread, or a test with the pageout thread idle.

struct PageoutRequest {
    enum State {
        case free
        /// Taken by a step that is about to claim its swap slot; not yet given to the device.
        case reserved
        case inFlight
        /// The device finished it while completions are held (a test hook); not yet ended.
        case held
        /// The device reported an error; the pageout thread ends it (`settleFailures`).
        case failed
    }

    var state = State.free
    var object: ObjectRef? = nil
    var firstIndex = 0
    var count = 0
    var swapSlot = SwapPager.Slot(block: 0, isNew: false)
    var failure = DiskError(what: "", status: 0)
    /// Whether the device reported `failure` (a held request keeps the outcome here).
    var deviceFailed = false
    /// Order of starting, to end held requests oldest first.
    var sequence: UInt64 = 0
    /// This request's pages: Disk.maximumTransferPages of them, allocated at boot.
    var pages = UnsafeMutablePointer<PageIndex>.unsetPlaceholder
}

struct PageoutRequestStatistics {
    var started: UInt64 = 0
    var written: UInt64 = 0
    var failed: UInt64 = 0
    var pagesWritten: UInt64 = 0
    /// The most writes, and pages, in flight at once.
    var peakRequests = 0
    var peakPages = 0
    /// Times a step found every slot busy and waited for one.
    var slotWaits: UInt64 = 0
}

enum PageoutRequests {
    /// pageoutinflight=: how many writes the pageout thread may keep in flight.
    static var limit = ReserveBounds.pageoutWritesInFlight
    /// Slots in use here: the limit, or fewer when the driver has fewer (0: every write waited for).
    static private(set) var slots = 0
    /// Entry s is the driver's request slot s (1 ... slots); entry 0 is unused (the driver's
    /// slot 0 serves the transfers a thread waits for).
    static var table = UnsafeMutablePointer<PageoutRequest>.unsetPlaceholder
    static private(set) var requestsInFlight = 0
    static private(set) var pagesInFlight = 0
    static var statistics = PageoutRequestStatistics()
    static var nextSequence: UInt64 = 0
    /// Test hook: the device's completions are noted (`held`) and ended only by
    /// `endOldestHeld` - by the test, or by `reserveSlot` when a step needs a slot and none is
    /// free: the latest a write can end. A disk as slow as a test needs, without timing.
    static var holdCompletions = false
    /// Where a thread waits for a slot or for the writes to end.
    static let channel = UnsafeMutableRawPointer.allocate(byteCount: 8, alignment: 8)
    static let waitTimeoutTicks = DiskCompletion.timeoutTicks

    /// Sets the slots up, from the driver's and the option's limits. At boot, before the
    /// pageout thread starts (its steps allocate nothing for this).
    static func initialize() {
        // Lazy globals, first touched here: the disk's interrupt wakes `channel`, and
        // initialising it there would allocate inside an interrupt (or spin in swift_once
        // against another CPU's initialisation).
        _ = channel
        _ = waitTimeoutTicks
        slots = min(limit, Disk.writeSlotsInFlight)
        table = UnsafeMutablePointer<PageoutRequest>.allocate(capacity: slots + 1)
        table.initialize(repeating: PageoutRequest(), count: slots + 1)
        for slot in 1..<slots + 1 {
            table[slot].pages = UnsafeMutablePointer<PageIndex>.allocate(capacity: Disk.maximumTransferPages)
        }
        guard let kind = Disk.kind else { return }
        if slots > 0 {
            Log.info(.pageout, "page-out writes: up to \(slots) in flight on \(kind.name), ended by its interrupt")
        } else {
            Log.info(.pageout, "page-out writes: each waited for (\(kind.name): \(Disk.writeSlotsInFlight) request slots for writes in flight, pageoutinflight=\(limit))")
        }
    }

    static var isUsable: Bool { slots > 0 && Disk.writeSlotsInFlight > 0 }

    // MARK: - The pageout thread's side

    /// A free slot for the next write, waiting for one when all are busy (ending failed
    /// writes first); nil when none came back within the timeout - the device has stopped, and
    /// the caller writes synchronously (which fails at once). Taken before a step claims its
    /// swap slot (ReserveBounds.stepsBeforeGrowth says why).
    static func reserveSlot() -> Int? {
        var waited = false
        while true {
            settleFailures()
            // The slowest disk a test can make: a held write ends when its slot is needed again.
            if holdCompletions && withInterruptsDisabled({ !hasFreeSlot }) { endOldestHeld() }
            // A free slot; or nil inside: a write failed meanwhile, and its slot is free once
            // settled (which cannot be done with interrupts off) - so settle and look again.
            let found: Int?? = waitUntil(reason: "page-out slot") {
                for slot in 1..<slots + 1 where table[slot].state == .free {
                    table[slot].state = .reserved
                    return .some(slot)
                }
                for slot in 1..<slots + 1 where table[slot].state == .failed { return .some(nil) }
                if !waited {
                    waited = true
                    statistics.slotWaits += 1
                }
                return nil
            }
            guard let outcome = found else {
                settleFailures()
                return nil
            }
            if let slot = outcome { return slot }
        }
    }

    /// Gives back a slot a step did not use (its page was clean, or its swap slot could not
    /// be claimed).
    static func cancel(_ slot: Int) {
        withInterruptsDisabled {
            kassert(table[slot].state == .reserved, "page-out request \(slot): cancelled while \(name(table[slot].state))")
            table[slot].state = .free
        }
    }

    /// Starts writing `count` pages of `object` from `firstIndex` (busy, unmapped, dirty,
    /// their swap slots claimed from `swapSlot.block` on) in reserved slot `slot`. Nil when the
    /// device took it: the pages are the device's until the write ends. The error when it was
    /// refused at once: nothing is in flight, and the caller puts everything back.
    static func start(_ slot: Int, pages: UnsafeMutablePointer<PageIndex>, count: Int, _ object: ObjectRef, _ firstIndex: Int,
                      _ swapSlot: SwapPager.Slot) -> DiskError? {
        let request = table + slot
        withInterruptsDisabled {
            kassert(request.pointee.state == .reserved, "page-out request \(slot): started while \(name(request.pointee.state))")
            request.pointee.object = object
            request.pointee.firstIndex = firstIndex
            request.pointee.count = count
            request.pointee.swapSlot = swapSlot
            request.pointee.sequence = nextSequence
            nextSequence += 1
            for number in 0..<count {
                request.pointee.pages[number] = pages[number]
                // Held by the device now, not by a thread (the wait-for graph ends here).
                PhysicalMemory.pageable(pages[number]).pointee.busyOwner = 0
            }
            // In flight before the device is told: its completion may come at once.
            request.pointee.state = .inFlight
            requestsInFlight += 1
            pagesInFlight += count
            Scheduler.transfersAwaited += 1
            statistics.started += 1
            statistics.peakRequests = max(statistics.peakRequests, requestsInFlight)
            statistics.peakPages = max(statistics.peakPages, pagesInFlight)
        }
        let sector = UInt64(swapSlot.block) * UInt64(SwapDevice.sectorsPerBlock)
        if let refused = Disk.startWrite(slot: slot, sector, pages: request.pointee.pages, count: count) {
            withInterruptsDisabled {
                leaveFlight(request)
                request.pointee.state = .free
            }
            return refused
        }
        return nil
    }

    /// Ends the writes that failed: each page back, dirty and unbusied, on the inactive queue
    /// with its swap slot given back, as after a synchronous write that failed. The pageout
    /// thread (or a test), interrupts on. Returns the pages put back.
    @discardableResult
    static func settleFailures() -> Int {
        var pagesBack = 0
        for slot in 1..<slots + 1 {
            let request = table + slot
            let failed: Bool = withInterruptsDisabled { request.pointee.state == .failed }
            guard failed else { continue }
            let object = request.pointee.object!, count = request.pointee.count
            countEvent(&SwapDevice.writeErrors)
            Log.error(.swap, "writing blocks \(request.pointee.swapSlot.block)+\(count) failed: \(request.pointee.failure.what) (status \(hex: request.pointee.failure.status)); the pages stay dirty in memory")
            SwapPager.releaseSlots(object, request.pointee.firstIndex, count: count, request.pointee.swapSlot)
            for number in 0..<count {
                let page = request.pointee.pages[number]
                PhysicalMemory.pageable(page).pointee.flags.insert(.dirty)
                PageQueues.release(page, to: .inactive)
            }
            pagesBack += count
            withInterruptsDisabled {
                request.pointee.state = .free
                request.pointee.object = nil
                Scheduler.wakeup(UnsafeRawPointer(channel))
            }
        }
        return pagesBack
    }

    /// Waits until every write has ended (failed ones settled). Tests and the bench; the
    /// pageout thread when a pass found nothing else to do.
    static func waitForAll() {
        _ = waitUntil(reason: "page-out writes") { requestsInFlight == 0 ? true : nil }
        settleFailures()
    }

    /// Waits until at least one write in flight has ended (or none is in flight).
    static func waitForOne() {
        let before = statistics.written + statistics.failed
        _ = waitUntil(reason: "page-out writes") { requestsInFlight == 0 || statistics.written + statistics.failed != before ? true : nil }
        settleFailures()
    }

    /// Runs `found` with interrupts off until it returns a value, sleeping on `channel` between
    /// tries - or, for a caller that cannot sleep (preemption off: the test framework's
    /// exclusive suites), polling the driver. Nil after the timeout.
    private static func waitUntil<T>(reason: StaticString, _ found: () -> T?) -> T? {
        let sleeping = DiskCompletion.callerMaySleep
        return withInterruptsDisabled {
            let deadline = Timer.ticks + waitTimeoutTicks
            var polls = 0
            while true {
                if let value = found() { return value }
                if holdCompletions && heldCount > 0 && requestsInFlight == heldCount {
                    // Nothing more will come from the device: only the test can end these.
                    panic("page-out requests: waiting for '\(reason)' while the test holds every completion")
                }
                if sleeping {
                    guard Timer.ticks < deadline else { break }
                    Scheduler.sleep(on: UnsafeRawPointer(channel), reason: reason, untilTick: deadline)
                } else {
                    guard polls < 200_000_000 else { break }
                    Disk.pollWrites()
                    CPU.pause()
                    polls += 1
                }
            }
            Log.error(.pageout, "page-out writes: '\(reason)' still unanswered after \(waitTimeoutTicks / Timer.hertz) s with \(requestsInFlight) writes in flight; their pages stay busy")
            return nil
        }
    }

    // MARK: - The interrupt's side

    /// The driver's report that the write in slot `slot` has ended. Interrupts off: the disk's
    /// interrupt handler, or a poll.
    static func deviceFinished(slot: Int, error: DiskError?) {
        let request = table + slot
        kassert(slot >= 1 && slot <= slots && request.pointee.state == .inFlight,
                "page-out request \(slot): the device finished it while \(name(request.pointee.state))")
        if let failure = error { request.pointee.failure = failure }
        if holdCompletions {
            request.pointee.state = .held
            request.pointee.deviceFailed = error != nil
            Scheduler.wakeup(UnsafeRawPointer(channel))
            return
        }
        end(request, error)
    }

    /// Ends a write: see the top of this file. Interrupts off.
    private static func end(_ request: UnsafeMutablePointer<PageoutRequest>, _ error: DiskError?) {
        leaveFlight(request)
        let count = request.pointee.count
        guard error == nil else {
            statistics.failed += 1
            request.pointee.state = .failed
            Scheduler.wakeup(UnsafeRawPointer(channel))
            Pageout.wake()
            return
        }
        let object = request.pointee.object!
        for number in 0..<count {
            let page = request.pointee.pages[number]
            MemoryObjects.takeOut(page, from: object, at: request.pointee.firstIndex + number)
            PhysicalMemory.free(page)
        }
        request.pointee.object = nil
        request.pointee.state = .free
        statistics.written += 1
        statistics.pagesWritten += UInt64(count)
        SwapDevice.pagesWritten &+= UInt64(count)
        SwapDevice.writeRequests &+= 1
        Pageout.noteWritten(count)
        Pageout.noteFreed(count)
        Scheduler.wakeup(UnsafeRawPointer(channel))
        // The last write ended and memory is still short: the pageout thread may be resting
        // on the pages that were coming.
        if requestsInFlight == 0 && PhysicalMemory.freePages < PhysicalMemory.thresholds.pagingStart { Pageout.wake() }
    }

    private static func leaveFlight(_ request: UnsafeMutablePointer<PageoutRequest>) {
        requestsInFlight -= 1
        pagesInFlight -= request.pointee.count
        Scheduler.transfersAwaited -= 1
    }

    private static var hasFreeSlot: Bool {
        for slot in 1..<slots + 1 where table[slot].state == .free { return true }
        return false
    }

    // MARK: - Tests

    private static var heldCount: Int {
        var count = 0
        for slot in 1..<slots + 1 where table[slot].state == .held { count += 1 }
        return count
    }

    /// With completions held: waits until the device has finished the oldest write still in
    /// flight, and ends it as the interrupt would have. False when no write is in flight (or
    /// the device never finished it).
    @discardableResult
    static func endOldestHeld() -> Bool {
        let oldest: Int? = withInterruptsDisabled {
            var best: Int? = nil
            for slot in 1..<slots + 1 where (table[slot].state == .inFlight || table[slot].state == .held) {
                if best == nil || table[slot].sequence < table[best!].sequence { best = slot }
            }
            return best
        }
        guard let slot = oldest else { return false }
        let request = table + slot
        guard waitUntilDeviceFinished(request) else { return false }
        withInterruptsDisabled {
            // The state is 'held'; put it back in flight so that `end` counts it out once.
            request.pointee.state = .inFlight
            end(request, request.pointee.deviceFailed ? request.pointee.failure : nil)
        }
        return true
    }

    private static func waitUntilDeviceFinished(_ request: UnsafeMutablePointer<PageoutRequest>) -> Bool {
        // Polled: the device's completion is all this needs, and a case may run with
        // preemption off.
        withInterruptsDisabled {
            var polls = 0
            while request.pointee.state != .held && polls < 200_000_000 {
                Disk.pollWrites()
                CPU.pause()
                polls += 1
            }
            return request.pointee.state == .held
        }
    }

    static func name(_ state: PageoutRequest.State) -> StaticString {
        switch state {
        case .free: return "free"
        case .reserved: return "reserved"
        case .inFlight: return "in flight"
        case .held: return "held"
        case .failed: return "failed"
        }
    }

    static func logStatistics() {
        guard slots > 0 else { return }
        let s = statistics
        Log.info(.pageout, "writes in flight: \(s.started) started, \(s.written) written (\(s.pagesWritten) pages), \(s.failed) failed; at most \(s.peakRequests) writes and \(s.peakPages) pages at once; \(s.slotWaits) waits for a slot")
    }
}
