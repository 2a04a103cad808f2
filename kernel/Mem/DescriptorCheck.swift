// DescriptorCheck.swift - the page-descriptor validator: every page's mem_desc word against
// what it leads to (docs/memory-descriptors.md, "Debugging").
//
// The buddy allocator's own check (BuddyAllocator.isConsistent) covers the word's pointer,
// the free lists and the descriptor accounting. This adds what the owners keep: a pageable
// page's descriptor describes that page and is busy or queued; every PV list - in a
// PageablePage or in a buddy descriptor's owner words - is as long as its count says and each
// entry maps the page it hangs from; a page table's entry count is possible; a zone slab's
// first page holds a live slab header; and the pageable descriptors in use are exactly the
// .anonymous pages, and the page_desc zone's objects those plus the ones a fault holds between
// taking and attaching one. It runs after every test suite (the
// suite fails on a violation); O(pages), interrupts off.

extension PhysicalMemory {
    /// Checks every page; returns the violations, logging the first few.
    static func checkDescriptors() -> Int {
        withInterruptsDisabled {
            var violations = 0
            func report(_ message: LogMessage) {
                if violations < 4 { Log.error(.pmm, message) }
                violations += 1
            }
            if !buddy!.pointee.isConsistent() {
                report("page descriptors: the buddy allocator's words, free lists or descriptor accounting are inconsistent")
            }
            var pageablePages = 0
            for number in 0..<pageCount {
                let page = PageIndex(number)
                let word = memDescs![number]
                switch word.use {
                case .anonymous:
                    pageablePages += 1
                    let descriptor = word.descriptor!.assumingMemoryBound(to: PageablePage.self)
                    if descriptor.pointee.page != page || descriptor.pointee.buddy.pointee.order != 0 {
                        report("page descriptors: page \(number) points to a pageable descriptor of page \(descriptor.pointee.page.int)")
                        continue
                    }
                    if descriptor.pointee.object == nil {
                        report("page descriptors: pageable page \(number) has no object")
                    }
                    if !descriptor.pointee.flags.contains(.busy) && descriptor.pointee.queue == .none {
                        report("page descriptors: pageable page \(number) is neither busy nor queued")
                    }
                    checkMappings(page, descriptor.pointee.mappings, report)
                case .wired, .allocated:
                    checkMappings(page, word.buddy!.pointee.mappings, report)
                case .pageTable:
                    let table = word.buddy!.pointee
                    if table.tableEntries > 512 || table.ownerWords.second > 1 {
                        report("page descriptors: page table \(number) has owner words \(table.ownerWords.first), \(table.ownerWords.second)")
                    }
                case .slab:
                    if let header = slabHeader(of: page),
                       header.assumingMemoryBound(to: SlabHeader.self).pointee.magic != SlabHeader.magicValue {
                        report("page descriptors: slab page \(number) leads to a block without a slab header")
                    }
                case .free, .reserved, .kmallocLarge:
                    break       // the buddy allocator's check covers them
                }
            }
            if pageablePages != pageableDescriptors || Zones.pageDescriptor.inUse != pageablePages + pageableDescriptorsUnattached {
                report("page descriptors: \(pageablePages) pageable pages, \(pageableDescriptors) descriptors attached and \(pageableDescriptorsUnattached) taken by faults not yet attached, \(Zones.pageDescriptor.inUse) allocated from page_desc")
            }
            return violations
        }
    }

    /// A PV list: its length is its count, and each entry maps `page` at its address.
    private static func checkMappings(_ page: PageIndex, _ list: PVList, _ report: (LogMessage) -> Void) {
        var length: UInt32 = 0
        var entry = list.head
        let frame = physicalAddress(of: page)
        while let current = entry, length <= list.count {
            length += 1
            let address = current.pointee.virtualAddress
            if current.pointee.pmap != Pmap.kernelPmap || Pmap.extract(address) != frame {
                report("page descriptors: page \(page.int) has a PV entry for \(address: address), which does not map it")
            }
            entry = current.pointee.next
        }
        if length != list.count {
            report("page descriptors: page \(page.int)'s PV list has \(length) entries or more, its count says \(list.count)")
        }
    }
}
