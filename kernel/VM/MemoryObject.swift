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
}

typealias ObjectRef = UnsafeMutablePointer<MemoryObject>

enum MemoryObjects {
    static var live = 0

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
        live += 1
        return object
    }

    static func check(_ object: ObjectRef) {
        kassert(object.pointee.magic == MemoryObject.magicValue, "memory object \(hex: UInt64(UInt(bitPattern: object))) is corrupt")
    }

    /// Frees the resident pages of pages [first, first + count) of `object` and releases
    /// their swap space. The pages must already be unmapped. Allocates nothing.
    static func releasePages(_ object: ObjectRef, first: Int, count: Int) {
        check(object)
        FreePath.enter()
        for index in first..<(first + count) {
            let page = object.pointee.slots[index]
            if page != .none {
                object.pointee.slots[index] = .none
                object.pointee.residentPages -= 1
                PhysicalMemory.free(page)
            }
        }
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

    /// Frees everything the object holds, and the object.
    static func destroy(_ object: ObjectRef) {
        check(object)
        FreePath.enter()
        releasePages(object, first: 0, count: object.pointee.pageCount)
        object.pointee.magic = 0
        Kmalloc.free(UnsafeMutableRawPointer(object.pointee.slots))
        Kmalloc.free(UnsafeMutableRawPointer(object))
        live -= 1
        FreePath.leave()
    }
}
