// MemoryObject.swift - anonymous memory objects: what backs pageable kernel memory.
//
// A kmem_alloc_pageable range is backed by one object: an array of page slots, one per page
// of the range, each empty (never touched, or paged out) or naming the resident page. Pages
// appear only when the range is touched (the page-fault handler, kernel/VM/PageFault.swift);
// the pageout thread moves them to swap and back (kernel/VM/Pageout.swift), recording where
// each went in swblock metadata. Several map entries may share an object (a range split by a
// partial free); the object counts how many of its pages are still covered by any entry and
// is destroyed when none are.

struct MemoryObject {
    static let magicValue: UInt32 = 0x4D4F_424A  // "MOBJ"

    var magic: UInt32 = MemoryObject.magicValue
    var pageCount: Int
    /// Pages of the object still covered by map entries.
    var mappedPages: Int
    var residentPages = 0
    var swappedPages = 0
    /// PageIndex per page; .none when not resident.
    var slots: UnsafeMutablePointer<PageIndex>
    /// The thread whose workload this memory belongs to (0: the kernel), for the OOM policy.
    var owner: UInt64 = 0
    /// Set when the object's pages must not be faulted in any more (its owner was stopped).
    var dead = false
    /// The list of all objects (for the out-of-memory policy).
    var next: UnsafeMutablePointer<MemoryObject>? = nil
    /// Threads working on the object from outside its map entries (the OOM policy); while
    /// non-zero the object may not be destroyed.
    var pins = 0
}

typealias ObjectRef = UnsafeMutablePointer<MemoryObject>

enum MemoryObjects {
    static var live = 0
    static var all: ObjectRef? = nil

    static func create(pages: Int) -> ObjectRef? {
        guard let slotMemory = Kmalloc.allocate(max(1, pages) * MemoryLayout<PageIndex>.stride) else { return nil }
        let slots = slotMemory.bindMemory(to: PageIndex.self, capacity: pages)
        slots.initialize(repeating: .none, count: pages)
        guard let objectMemory = Kmalloc.allocate(MemoryLayout<MemoryObject>.stride) else {
            Kmalloc.free(slotMemory)
            return nil
        }
        let object = objectMemory.bindMemory(to: MemoryObject.self, capacity: 1)
        object.initialize(to: MemoryObject(pageCount: pages, mappedPages: pages, slots: slots))
        withInterruptsDisabled {
            object.pointee.next = all
            all = object
            live += 1
        }
        return object
    }

    /// Keeps `object` from being destroyed until `unpin`. Interrupts must be off (the caller
    /// found the object on a list it must not leave before being pinned).
    static func pin(_ object: ObjectRef) {
        object.pointee.pins += 1
    }

    static func unpin(_ object: ObjectRef) {
        withInterruptsDisabled {
            object.pointee.pins -= 1
            if object.pointee.pins == 0 { Scheduler.wakeup(UnsafeRawPointer(object)) }
        }
    }

    static func check(_ object: ObjectRef) {
        kassert(object.pointee.magic == MemoryObject.magicValue, "memory object \(hex: UInt64(UInt(bitPattern: object))) is corrupt")
    }

    /// Frees the resident pages of pages [first, first + count) of `object` and releases
    /// their swap space. The pages must already be unmapped. A page the pager is reading or
    /// writing is waited for. Allocates nothing.
    static func releasePages(_ object: ObjectRef, first: Int, count: Int) {
        check(object)
        FreePath.enter()
        for index in first..<(first + count) {
            withInterruptsDisabled {
                while true {
                    let page = object.pointee.slots[index]
                    if page == .none { return }
                    let descriptor = PhysicalMemory.page(page)
                    if descriptor.pointee.flags.contains(.busy) {
                        Scheduler.sleep(on: UnsafeRawPointer(descriptor), reason: "page busy")
                        continue
                    }
                    object.pointee.slots[index] = .none
                    object.pointee.residentPages -= 1
                    PageQueues.remove(page)
                    Pmap.removeAll(page)
                    descriptor.pointee.flags.remove([.anonymous, .dirty])
                    descriptor.pointee.object = nil
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
        object.pointee.mappedPages -= count
        kassert(object.pointee.mappedPages >= 0, "memory object unmapped more pages than it has")
        if object.pointee.mappedPages == 0 { destroy(object) }
    }

    /// Frees everything the object holds, and the object. Waits while it is pinned.
    static func destroy(_ object: ObjectRef) {
        check(object)
        withInterruptsDisabled {
            while object.pointee.pins > 0 { Scheduler.sleep(on: UnsafeRawPointer(object), reason: "object pinned") }
        }
        FreePath.enter()
        releasePages(object, first: 0, count: object.pointee.pageCount)
        object.pointee.magic = 0
        withInterruptsDisabled {
            var link: ObjectRef? = nil
            var current = all
            while let candidate = current, candidate != object {
                link = candidate
                current = candidate.pointee.next
            }
            if let link = link { link.pointee.next = object.pointee.next } else { all = object.pointee.next }
            live -= 1
        }
        Kmalloc.free(UnsafeMutableRawPointer(object.pointee.slots))
        Kmalloc.free(UnsafeMutableRawPointer(object))
        FreePath.leave()
    }
}
