// PageOwners.swift - what the page allocator keeps for the owners of allocated pages: the
// descriptors of pageable pages (PageablePage, from the page_desc zone) and where each page's
// PV list, page-table counts and slab header are found from its mem_desc word.
//
// The types are in kernel/Mem/Portable/PageDescriptor.swift, which says where each use keeps
// its facts; docs/memory-descriptors.md tells the whole story. Everything here is reached
// through the word, so it holds whatever owns the page: a pageable page's word points to its
// PageablePage, every other page's to its buddy descriptor, whose owner words the owner uses.

extension PhysicalMemory {
    // MARK: - Pageable pages and their descriptors

    /// The descriptor of a pageable page, before the page is made pageable: from the
    /// page_desc zone under `context` (the fault path: never waiting while it holds a page).
    /// The pageout path never takes one - it only ever frees pageable pages - which is why the
    /// zone needs no reserve (docs/memory-descriptors.md); the assertion keeps it that way.
    static func allocatePageableDescriptor(for page: PageIndex, _ context: AllocationContext) -> UnsafeMutablePointer<PageablePage>? {
        kassert(context.requester != .pageout, "a pageable page's descriptor asked for on the pageout path, which only frees pageable pages")
        guard let memory = Zones.pageDescriptor.allocate(context) else { return nil }
        let descriptor = memory.bindMemory(to: PageablePage.self, capacity: 1)
        descriptor.initialize(to: PageablePage(buddy: memDescs![page.int].buddy!))
        withInterruptsDisabled { pageableDescriptorsUnattached += 1 }
        return descriptor
    }

    /// Gives back a descriptor that was never attached (the fault path gave its page up).
    static func freePageableDescriptor(_ descriptor: UnsafeMutablePointer<PageablePage>) {
        withInterruptsDisabled { pageableDescriptorsUnattached -= 1 }
        Zones.pageDescriptor.free(UnsafeMutableRawPointer(descriptor))
    }

    /// Makes a freshly allocated order-0 page pageable: its mem_desc points to `descriptor`
    /// (from `allocatePageableDescriptor` for this page), which describes it from now on.
    static func makePageable(_ page: PageIndex, _ descriptor: UnsafeMutablePointer<PageablePage>) {
        let current = self.use(of: page)
        kassert(current == .allocated && isFirstPage(page) && order(of: page) == 0,
                "page \(hex: physicalAddress(of: page).rawValue) made pageable while it is \(current.name), not a freshly allocated page")
        kassert(descriptor.pointee.buddy == memDescs![page.int].buddy!, "page \(hex: physicalAddress(of: page).rawValue) made pageable with another page's descriptor")
        kassert(memDescs![page.int].buddy!.pointee.mappings.isEmpty, "page \(hex: physicalAddress(of: page).rawValue) made pageable while it is mapped")
        buddy!.pointee.setOwner(page, .anonymous, owner: UnsafeMutableRawPointer(descriptor))
        pageableDescriptors += 1
        pageableDescriptorsUnattached -= 1
        notePeakDescriptorPages()
    }

    /// The reverse of `makePageable`, before the page is freed: the word points to the buddy
    /// descriptor again and the pageable descriptor goes back to its zone (a free: it allocates
    /// nothing). The page must be off every queue, unmapped and not busy.
    static func releasePageable(_ page: PageIndex) {
        let descriptor = pageable(page)
        let address = physicalAddress(of: page).rawValue
        kassert(descriptor.pointee.mappings.isEmpty, "page \(hex: address) stops being pageable while it is still mapped (\(descriptor.pointee.mappings.count) PV entries)")
        kassert(descriptor.pointee.queue == .none, "page \(hex: address) stops being pageable while it is on page queue \(descriptor.pointee.queue.name)")
        kassert(!descriptor.pointee.flags.contains(.busy), "page \(hex: address) stops being pageable while it is busy")
        buddy!.pointee.setUse(page, .allocated)
        pageableDescriptors -= 1
        descriptor.pointee.object = nil
        Zones.pageDescriptor.free(UnsafeMutableRawPointer(descriptor))
    }

    @inline(__always)
    static func notePeakDescriptorPages() {
        let pages = buddy!.pointee.descriptors.dynamicPages + Zones.pageDescriptor.state.pointee.statistics.dynamicSlabs
        if pages > peakDescriptorPages { peakDescriptorPages = pages }
    }

    /// The descriptor of pageable page `index`; the page must be .anonymous.
    @inline(__always)
    static func pageable(_ index: PageIndex) -> UnsafeMutablePointer<PageablePage> {
        let word = memDescs![index.int]
        kassert(word.use == .anonymous, "page \(hex: physicalAddress(of: index).rawValue) used as pageable while it is \(word.use.name)")
        return word.descriptor!.assumingMemoryBound(to: PageablePage.self)
    }

    // MARK: - Mappings (the pmap's PV lists)

    /// Runs `body` on page `index`'s PV list, wherever its owner keeps it: in the pageable
    /// descriptor, or in the buddy descriptor's owner words for a page without one. Only pages
    /// that may be mapped have one; a mapping of any other page is a bug the pmap would
    /// otherwise write into someone's owner words.
    @inline(__always)
    static func withMappings<R>(_ index: PageIndex, _ body: (inout PVList) -> R) -> R {
        let word = memDescs![index.int]
        if word.use == .anonymous {
            return body(&word.descriptor!.assumingMemoryBound(to: PageablePage.self).pointee.mappings)
        }
        kassert(word.use.keepsMappings, "pmap: page \(hex: physicalAddress(of: index).rawValue) is \(word.use.name), which is never mapped through a PV list")
        return body(&word.buddy!.pointee.mappings)
    }

    /// Page `index`'s PV list as it is now (empty for a page that cannot be mapped).
    static func mappings(of index: PageIndex) -> PVList {
        let word = memDescs![index.int]
        if word.use == .anonymous { return word.descriptor!.assumingMemoryBound(to: PageablePage.self).pointee.mappings }
        return word.use.keepsMappings ? word.buddy!.pointee.mappings : PVList()
    }

    /// The buddy descriptor of a page-table page (its entry count and pin live in the owner
    /// words); nil for a page that is not a runtime page table.
    @inline(__always)
    static func tableDescriptor(_ index: PageIndex) -> UnsafeMutablePointer<BuddyDescriptor>? {
        let word = memDescs![index.int]
        return word.use == .pageTable ? word.buddy : nil
    }

    /// The slab header of a direct-map zone slab, which sits at the start of its block; nil
    /// when page `index` is not a page of one (a page of buddy descriptors is tagged .slab too).
    static func slabHeader(of index: PageIndex) -> UnsafeMutableRawPointer? {
        let word = memDescs![index.int]
        guard word.use == .slab, let block = word.buddy, !block.pointee.flags.contains(.descriptorPage) else { return nil }
        return pointer(to: block.pointee.firstPage)
    }
}
