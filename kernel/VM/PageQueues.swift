// PageQueues.swift - the active and inactive queues of pageable pages.
//
// Every resident page of an anonymous object is on one of two queues, linked through its
// descriptor (next/prev, and `queue` saying which): active pages were used recently; the
// pageout thread moves pages that were not referenced since its last look (the accessed bits
// of their mappings, through the PV lists) to the inactive queue, and cleans and frees pages
// from the inactive queue's head. Free pages are the buddy allocator's, not a queue here.
// `PageQueue`, the descriptor's queue field, is declared with the descriptor
// (kernel/Mem/Portable/PageDescriptor.swift).

struct PageList {
    var head = PageIndex.none
    var tail = PageIndex.none
    var count = 0
}

enum PageQueues {
    static var active = PageList()
    static var inactive = PageList()

    static func withList<R>(_ queue: PageQueue, _ body: (inout PageList) -> R) -> R {
        switch queue {
        case .active: return body(&active)
        case .inactive: return body(&inactive)
        case .none: panic("page queue: no such queue")
        }
    }

    /// Appends `page` to the tail of `queue`.
    static func insert(_ page: PageIndex, _ queue: PageQueue) {
        withInterruptsDisabled {
            let descriptor = PhysicalMemory.pageable(page)
            kassert(PhysicalMemory.use(of: page) == .anonymous, "page queue: queueing a page whose use is \(PhysicalMemory.use(of: page).name)")
            kassert(descriptor.pointee.queue == .none, "page queue: page already on the \(descriptor.pointee.queue.name) queue")
            descriptor.pointee.queue = queue
            descriptor.pointee.next = .none
            withList(queue) { list in
                descriptor.pointee.prev = list.tail
                if list.tail != .none { PhysicalMemory.pageable(list.tail).pointee.next = page } else { list.head = page }
                list.tail = page
                list.count += 1
            }
        }
    }

    /// Takes `page` off whatever queue it is on (nothing if none).
    static func remove(_ page: PageIndex) {
        withInterruptsDisabled {
            let descriptor = PhysicalMemory.pageable(page)
            let queue = descriptor.pointee.queue
            guard queue != .none else { return }
            withList(queue) { list in
                let next = descriptor.pointee.next, prev = descriptor.pointee.prev
                if prev != .none { PhysicalMemory.pageable(prev).pointee.next = next } else { list.head = next }
                if next != .none { PhysicalMemory.pageable(next).pointee.prev = prev } else { list.tail = prev }
                list.count -= 1
            }
            descriptor.pointee.queue = .none
            descriptor.pointee.next = .none
            descriptor.pointee.prev = .none
        }
    }

    static func move(_ page: PageIndex, to queue: PageQueue) {
        remove(page)
        insert(page, queue)
    }

    /// Claims a resident page that is not busy: off its queue and busy, in one step (the
    /// caller has interrupts off and has checked the page is its object's and not busy).
    /// The caller now owns the page (PageDescriptor.swift) until `release`.
    static func claim(_ page: PageIndex) {
        let descriptor = PhysicalMemory.pageable(page)
        kassert(!descriptor.pointee.flags.contains(.busy), "page queue: claiming a page someone holds busy")
        remove(page)
        setBusy(page)
    }

    /// Marks `page` busy for the running thread, which now owns it (PageDescriptor.swift, rule
    /// 3): the flag and its owner are written together, interrupts off, so a thread that sleeps
    /// on the page names who holds it in the watchdog's wait-for graph.
    static func setBusy(_ page: PageIndex) {
        kassert(!CPU.interruptsEnabled, "page queue: a page marked busy with interrupts on")
        let descriptor = PhysicalMemory.pageable(page)
        descriptor.pointee.flags.insert(.busy)
        descriptor.pointee.busyOwner = Scheduler.started ? UInt32(truncatingIfNeeded: Scheduler.current.pointee.id) : 0
    }

    /// Ends a hold on a busy page: back on `queue` and unbusied in one step - between the two,
    /// a woken releasePages could free a page that is then queued while free - and whoever
    /// waits for the page is woken.
    static func release(_ page: PageIndex, to queue: PageQueue) {
        let descriptor = PhysicalMemory.pageable(page)
        withInterruptsDisabled {
            insert(page, queue)
            descriptor.pointee.flags.remove(.busy)
            Scheduler.wakeup(UnsafeRawPointer(descriptor))
        }
    }

    /// Takes the page at the head of `queue`, if any.
    static func takeHead(_ queue: PageQueue) -> PageIndex? {
        withInterruptsDisabled {
            let head = withList(queue) { $0.head }
            guard head != .none else { return nil }
            remove(head)
            return head
        }
    }
}
