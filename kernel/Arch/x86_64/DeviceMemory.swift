// DeviceMemory.swift - device registers in physical address space (MMIO), mapped uncached.
//
// A device's memory BAR (AHCI's ABAR, say) lies outside RAM, so the direct map does not cover
// it. `DeviceMemory.map` maps it where the direct map would put it (direct-map base + physical
// address: the range is free, since only RAM is mapped there) with caching off (PCD and PWT:
// every load and store reaches the device, in order) and no execute. Mapped once at boot, by
// the driver's probe, and never unmapped; the table pages it needs come from the page allocator
// and are marked wired, not pageTable, so that the pmap's entry counting and table freeing
// (kernel/Arch/x86_64/Pmap.swift) never see them. A range that overlaps RAM's direct map is refused.

enum DeviceMemory {
    static let cacheDisable: UInt64 = 1 << 4
    static let writeThrough: UInt64 = 1 << 3
    static var pagesMapped = 0

    /// Maps [physical, physical + bytes) uncached; the pointer to its first byte, or nil (and a
    /// log line) when a table page cannot be had or RAM is already mapped there.
    static func map(_ physical: PhysicalAddress, bytes: UInt64) -> UnsafeMutableRawPointer? {
        let first = physical.roundedDown(to: pageSize)
        let end = (physical + bytes).roundedUp(to: pageSize)
        guard end <= KernelLayout.directMapLimit else {
            Log.error(.pmap, "device memory at \(address: physical) is beyond the direct map's reach")
            return nil
        }
        var page = first
        while page < end {
            guard mapPage(page) else { return nil }
            page += pageSize
        }
        return KernelLayout.directMapAddress(of: physical).pointer
    }

    private static func mapPage(_ physical: PhysicalAddress) -> Bool {
        let address = KernelLayout.directMapAddress(of: physical)
        var current = Pmap.root
        var level = PageTableLevel.pml4
        while level != .pt {
            let slot = Pmap.table(current) + level.index(of: address)
            let entry = PageTableEntry(rawValue: slot.pointee)
            if entry.isLargePage {
                Log.error(.pmap, "device memory at \(address: physical) overlaps RAM's direct map")
                return false
            }
            if !entry.isPresent {
                guard let tablePage = PhysicalMemory.allocate(order: 0, .system) else {
                    Log.error(.pmap, "no page for a table to map device memory at \(address: physical)")
                    return false
                }
                PhysicalMemory.setUse(tablePage, .wired)
                PhysicalMemory.pointer(to: tablePage).initializeMemory(as: UInt8.self, repeating: 0, count: Int(pageSize))
                slot.pointee = PageTableEntry(frame: PhysicalMemory.physicalAddress(of: tablePage),
                                              flags: PageTableEntry.present | PageTableEntry.writable).rawValue
            }
            current = PageTableEntry(rawValue: slot.pointee).frame
            level = PageTableLevel(rawValue: level.rawValue - 1)!
        }
        let leaf = Pmap.table(current) + PageTableLevel.pt.index(of: address)
        guard !PageTableEntry(rawValue: leaf.pointee).isPresent || PageTableEntry(rawValue: leaf.pointee).frame == physical else {
            Log.error(.pmap, "device memory at \(address: physical) overlaps RAM's direct map")
            return false
        }
        leaf.pointee = PageTableEntry(frame: physical, flags: Protection.readWrite.entryFlags | cacheDisable | writeThrough).rawValue
        CPU.invalidatePage(address)
        pagesMapped += 1
        return true
    }
}
