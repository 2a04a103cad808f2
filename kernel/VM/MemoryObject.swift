// MemoryObject.swift - anonymous memory objects: what backs pageable kernel memory.
//
// A kmem_alloc_pageable range is backed by one object: an array of page slots, one per page
// of the range, each empty (never touched, or paged out) or naming the resident page. Pages
// appear only when the range is touched (the page-fault handler, kernel/VM/PageFault.swift);
// the pageout thread moves them to swap and back (kernel/VM/Pageout.swift), recording where
// each went in swblock metadata (kernel/VM/SwapMetadata.swift). Several map entries may share
// an object (a range split by a partial free); the object counts how many of its pages are
// still covered by any entry and is destroyed when none are.
//
// This file owns the object's state. Other files read it, and change it only through the
// methods below, which check the invariants; the fields are `private(set)` so the compiler
// holds everyone to that.
//
// Locking (one CPU: "interrupts off" excludes every other thread and interrupt handler):
//
//   field                       protected by
//   --------------------------  -----------------------------------------------------------
//   magic, pageCount, slots*    nothing: set by `create`, read-only until `destroy`
//   owner                       nothing: written once by the creator (Kmem), before anyone
//                               but the out-of-memory policy can see the object
//   slots[i]                    interrupts off to change; a read with interrupts on may be
//                               stale and is re-checked with interrupts off (the fault path)
//                               or under the page's busy flag
//   residentPages               interrupts off
//   swappedPages                interrupts off
//   mappedPages                 interrupts off
//   dead                        interrupts off (set once, never cleared)
//   pins                        interrupts off
//   prev, next; MemoryObjects   interrupts off
//     .all, .live
//
// Invariants (asserted by the methods that could break them):
//   - 0 <= residentPages == number of non-empty slots <= pageCount;
//   - 0 <= swappedPages <= pageCount (pages with a swap block, kernel/VM/SwapMetadata.swift);
//   - 0 <= mappedPages <= pageCount, and the object is destroyed when it reaches 0;
//   - a slot is filled only when empty and emptied only of the page it holds;
//   - pins >= 0; a pinned object is not destroyed;
//   - no page is installed in a dead object.

struct MemoryObject {
    static let magicValue: UInt32 = 0x4D4F_424A  // "MOBJ"

    private(set) var magic: UInt32 = MemoryObject.magicValue
    let pageCount: Int
    /// Pages of the object still covered by map entries.
    private(set) var mappedPages: Int
    /// Slots holding a page.
    private(set) var residentPages = 0
    /// Pages that have a copy on swap (a swap block recorded in SwapMetadata).
    private(set) var swappedPages = 0
    /// PageIndex per page; .none when not resident.
    private let slots: UnsafeMutablePointer<PageIndex>
    /// The thread whose workload this memory belongs to (0: the kernel), for the OOM policy.
    var owner: UInt64 = 0
    /// Set when the object's pages must not be faulted in any more (its owner was stopped).
    private(set) var dead = false
    /// Threads working on the object from outside its map entries (the OOM policy); while
    /// non-zero the object may not be destroyed.
    private(set) var pins = 0
    /// The list of all objects (MemoryObjects.all, for the out-of-memory policy): doubly
    /// linked so that destroying an object unlinks it in O(1) with interrupts off.
    private(set) var prev: UnsafeMutablePointer<MemoryObject>? = nil
    private(set) var next: UnsafeMutablePointer<MemoryObject>? = nil

    fileprivate init(pageCount: Int, slots: UnsafeMutablePointer<PageIndex>) {
        self.pageCount = pageCount
        self.mappedPages = pageCount
        self.slots = slots
    }

    // MARK: - Reading

    /// The page resident at `index`, or .none.
    func page(at index: Int) -> PageIndex {
        kassert(index >= 0 && index < pageCount, "memory object: page \(index) of \(pageCount)")
        return slots[index]
    }

    // MARK: - Changing (interrupts off)

    /// Puts `page` in the empty slot `index`.
    mutating func installPage(_ page: PageIndex, at index: Int) {
        MemoryObject.assertLocked()
        kassert(index >= 0 && index < pageCount, "memory object: installing page \(index) of \(pageCount)")
        kassert(slots[index] == .none, "memory object: slot \(index) already holds page \(slots[index].rawValue)")
        kassert(!dead, "memory object: installing a page in a dead object")
        kassert(page != .none, "memory object: installing no page")
        slots[index] = page
        residentPages += 1
        kassert(residentPages <= pageCount, "memory object: \(residentPages) resident pages of \(pageCount)")
    }

    /// Empties slot `index`, which must hold `page`.
    mutating func removePage(_ page: PageIndex, at index: Int) {
        MemoryObject.assertLocked()
        kassert(index >= 0 && index < pageCount, "memory object: removing page \(index) of \(pageCount)")
        kassert(slots[index] == page, "memory object: slot \(index) holds \(slots[index].rawValue), not page \(page.rawValue)")
        kassert(residentPages > 0, "memory object: removing a page with no resident pages")
        slots[index] = .none
        residentPages -= 1
    }

    /// One more page has a copy on swap.
    mutating func noteSwapped() {
        MemoryObject.assertLocked()
        swappedPages += 1
        kassert(swappedPages <= pageCount, "memory object: \(swappedPages) swapped pages of \(pageCount)")
    }

    /// One page's swap copy was released.
    mutating func noteUnswapped() {
        MemoryObject.assertLocked()
        kassert(swappedPages > 0, "memory object: releasing a swap copy it does not have")
        swappedPages -= 1
    }

    /// No more faults may bring pages in (its owner is being stopped).
    mutating func markDead() {
        MemoryObject.assertLocked()
        dead = true
    }

    /// `count` pages are no longer covered by any map entry. True when none are any more.
    fileprivate mutating func noteUnmapped(_ count: Int) -> Bool {
        MemoryObject.assertLocked()
        kassert(count >= 0 && count <= mappedPages, "memory object unmapped more pages than it has")
        mappedPages -= count
        return mappedPages == 0
    }

    fileprivate mutating func pin() {
        MemoryObject.assertLocked()
        pins += 1
    }

    /// True when that was the last pin.
    fileprivate mutating func unpin() -> Bool {
        MemoryObject.assertLocked()
        kassert(pins > 0, "memory object unpinned more often than pinned")
        pins -= 1
        return pins == 0
    }

    private static func assertLocked() {
        kassert(!CPU.interruptsEnabled, "memory object changed with interrupts on")
    }

    // MARK: - The list of all objects (interrupts off)

    fileprivate static func push(_ object: ObjectRef, on head: inout ObjectRef?) {
        assertLocked()
        object.pointee.prev = nil
        object.pointee.next = head
        head?.pointee.prev = object
        head = object
    }

    fileprivate static func unlink(_ object: ObjectRef, from head: inout ObjectRef?) {
        assertLocked()
        if let previous = object.pointee.prev { previous.pointee.next = object.pointee.next } else {
            kassert(head == object, "memory object list: an object without a predecessor is not the head")
            head = object.pointee.next
        }
        object.pointee.next?.pointee.prev = object.pointee.prev
        object.pointee.prev = nil
        object.pointee.next = nil
    }

    /// Marks the object freed, so that a use after destroy fails `MemoryObjects.check`.
    fileprivate mutating func invalidate() {
        magic = 0
    }

    fileprivate var slotStorage: UnsafeMutableRawPointer { UnsafeMutableRawPointer(slots) }
}

typealias ObjectRef = UnsafeMutablePointer<MemoryObject>

enum MemoryObjects {
    /// Objects alive; interrupts off.
    private(set) static var live = 0
    /// Times releasePages found a page busy (being paged in or out) and waited for it.
    private(set) static var busyWaits: UInt64 = 0
    /// Every object, newest first; interrupts off.
    private(set) static var all: ObjectRef? = nil

    static func create(pages: Int) -> ObjectRef? {
        FreePath.checkAllocation(.memoryObject)
        guard let slotMemory = Kmalloc.allocate(max(1, pages) * MemoryLayout<PageIndex>.stride) else { return nil }
        let slots = slotMemory.bindMemory(to: PageIndex.self, capacity: pages)
        slots.initialize(repeating: .none, count: pages)
        guard let objectMemory = Kmalloc.allocate(MemoryLayout<MemoryObject>.stride) else {
            Kmalloc.free(slotMemory)
            return nil
        }
        let object = objectMemory.bindMemory(to: MemoryObject.self, capacity: 1)
        object.initialize(to: MemoryObject(pageCount: pages, slots: slots))
        withInterruptsDisabled {
            MemoryObject.push(object, on: &all)
            live += 1
        }
        return object
    }

    /// Keeps `object` from being destroyed until `unpin`. Interrupts must be off (the caller
    /// found the object on a list it must not leave before being pinned).
    static func pin(_ object: ObjectRef) {
        object.pointee.pin()
    }

    static func unpin(_ object: ObjectRef) {
        withInterruptsDisabled {
            if object.pointee.unpin() { Scheduler.wakeup(UnsafeRawPointer(object)) }
        }
    }

    static func check(_ object: ObjectRef) {
        kassert(object.pointee.magic == MemoryObject.magicValue, "memory object \(hex: UInt64(UInt(bitPattern: object))) is corrupt")
    }

    /// Takes resident page `page` out of slot `index` of `object` before it is freed: the slot
    /// emptied, the page's owner and state cleared, and whoever waits for it woken when it was
    /// busy. With interrupts off, in the same step that decided the page goes (the pageout
    /// thread after writing it, a fault abandoning a page it could not fill, releasePages).
    /// The page must be off every queue and unmapped; the caller frees it.
    static func takeOut(_ page: PageIndex, from object: ObjectRef, at index: Int) {
        let descriptor = PhysicalMemory.pageable(page)
        kassert(descriptor.pointee.queue == .none, "memory object: taking out page \(index) while it is on the \(descriptor.pointee.queue.name) queue")
        object.pointee.removePage(page, at: index)
        let wasBusy = descriptor.pointee.flags.contains(.busy)
        descriptor.pointee.flags.remove([.busy, .dirty])
        // Waiters are woken before the descriptor - their wait channel - goes back to its zone;
        // each looks the page up again and finds it gone.
        if wasBusy { Scheduler.wakeup(UnsafeRawPointer(descriptor)) }
        PhysicalMemory.releasePageable(page)
    }

    /// Checks `object`, mapped from `base`, against the page rules (PageDescriptor.swift) with
    /// interrupts off: every resident page is typed anonymous, names this object and index, is
    /// busy or queued, and is mapped (if at all) at its own address; a slot with no page is not
    /// mapped - a mapping left on a page that was freed is how a fault racing pageout shows.
    /// Returns the violations, logging the first few.
    static func validate(_ object: ObjectRef, mappedAt base: VirtualAddress) -> Int {
        check(object)
        return withInterruptsDisabled {
            var violations = 0
            func report(_ message: LogMessage) {
                if violations < 4 { Log.error(.vm, message) }
                violations += 1
            }
            var resident = 0
            for index in 0..<object.pointee.pageCount {
                let address = base + UInt64(index) * pageSize
                let mapped = Pmap.extract(address)
                let page = object.pointee.page(at: index)
                if page == .none {
                    if let frame = mapped { report("memory object: page \(index) is not resident but \(address: address) maps \(address: frame)") }
                    continue
                }
                resident += 1
                if PhysicalMemory.use(of: page) != .anonymous {
                    report("memory object: page \(index) is held in a page whose use is \(PhysicalMemory.use(of: page).name)")
                    continue
                }
                let descriptor = PhysicalMemory.pageable(page)
                if descriptor.pointee.page != page {
                    report("memory object: page \(index)'s descriptor describes another page")
                }
                if descriptor.pointee.object != UnsafeMutableRawPointer(object) || descriptor.pointee.offset != UInt32(index) {
                    report("memory object: page \(index)'s descriptor names another object or index (\(descriptor.pointee.offset))")
                }
                if !descriptor.pointee.flags.contains(.busy) && descriptor.pointee.queue == .none {
                    report("memory object: resident page \(index) is neither busy nor queued")
                }
                if let frame = mapped, frame != PhysicalMemory.physicalAddress(of: page) {
                    report("memory object: \(address: address) maps \(address: frame), not page \(index)'s frame")
                }
            }
            if resident != object.pointee.residentPages {
                report("memory object: \(resident) slots hold pages but residentPages is \(object.pointee.residentPages)")
            }
            return violations
        }
    }

    /// Frees the resident pages of pages [first, first + count) of `object` and releases
    /// their swap space. The pages must already be unmapped. A page the pager is reading or
    /// writing is waited for. Allocates nothing.
    static func releasePages(_ object: ObjectRef, first: Int, count: Int) {
        check(object)
        FreePath.enter(.objectPageRelease)
        for index in first..<(first + count) {
            withInterruptsDisabled {
                while true {
                    let page = object.pointee.page(at: index)
                    if page == .none { return }
                    let descriptor = PhysicalMemory.pageable(page)
                    if descriptor.pointee.flags.contains(.busy) {
                        busyWaits += 1
                        Scheduler.sleep(on: UnsafeRawPointer(descriptor), reason: "page busy", kind: .busyPage)
                        continue
                    }
                    kassert(descriptor.pointee.queue != .none, "memory object: resident page \(index) is neither busy nor on a page queue")
                    PageQueues.remove(page)
                    Pmap.removeAll(page)
                    takeOut(page, from: object, at: index)
                    PhysicalMemory.free(page)
                    return
                }
            }
        }
        SwapMetadata.release(object, first: first, count: count)
        FreePath.leave()
    }

    /// Pages [first, first + count) are no longer covered by any map entry: frees them, and
    /// destroys the object when no page is covered any more.
    static func unmapPages(_ object: ObjectRef, first: Int, count: Int) {
        check(object)
        releasePages(object, first: first, count: count)
        // With interrupts off: two threads may free pieces of one object at the same time.
        let unmapped = withInterruptsDisabled { object.pointee.noteUnmapped(count) }
        if unmapped { destroy(object) }
    }

    /// Frees everything the object holds, and the object. Waits while it is pinned.
    static func destroy(_ object: ObjectRef) {
        check(object)
        withInterruptsDisabled {
            while object.pointee.pins > 0 { Scheduler.sleep(on: UnsafeRawPointer(object), reason: "object pinned") }
        }
        FreePath.enter(.objectTeardown)
        releasePages(object, first: 0, count: object.pointee.pageCount)
        object.pointee.invalidate()
        withInterruptsDisabled {
            MemoryObject.unlink(object, from: &all)
            live -= 1
        }
        Kmalloc.free(object.pointee.slotStorage)
        Kmalloc.free(UnsafeMutableRawPointer(object))
        FreePath.leave()
    }
}
