// SwapDevice.swift - the swap device: pages of 4 KiB on the swap disk, and which are in use.
//
// Block n of swap is disk sectors 8n ... 8n+7 of whichever disk kernel/Drivers/Disk.swift found
// (virtio-blk, AHCI or ATA; `swapdev=` chooses). A block number outside the device, or a disk
// error, comes back as a failure the caller reports; nothing here panics on bad input.

extension LogTag {
    static let swap = LogTag("swap")
}

enum SwapDevice {
    static let sectorsPerBlock = Int(pageSize) / Disk.sectorBytes
    static var space: SwapSpace? = nil
    static var pagesWritten: UInt64 = 0
    /// Disk requests that wrote pages (a clustered page-out writes several pages in one).
    static var writeRequests: UInt64 = 0
    static var pagesRead: UInt64 = 0
    static var writeErrors: UInt64 = 0
    static var readErrors: UInt64 = 0

    static var isPresent: Bool { space != nil }
    /// The most blocks a swap bitmap of a quarter of memory covers.
    static var maximumBlocks: UInt64 { PhysicalMemory.managedPages * pageSize / 4 * 8 }
    static var blocks: UInt32 { space?.blocks ?? 0 }

    static func initialize() {
        guard Disk.probe() != nil else {
            if Disk.choice == .auto {
                Log.info(.swap, "no disk (no virtio-blk, no AHCI disk, no ATA disk on the primary channel): running without swap")
                return
            }
            // A boot that names its swap driver relies on it: running without swap instead
            // would turn every swap test into a skip and hide the mistake.
            Log.error(.swap, "swapdev=\(Disk.choice.name): no such disk on this machine; the boot stops here (swapdev=auto takes whichever is present)")
            QEMU.exit(.bootFailure)
        }
        let diskBlocks = Disk.sectors / UInt64(sectorsPerBlock)
        // One bit per block: 32 KiB per GiB of swap, from kmem when larger than 4 MiB. A
        // bitmap may take at most a quarter of memory; a disk larger than that covers is used
        // only up to it (and block numbers are 32 bits).
        let blockCount = UInt32(min(diskBlocks, maximumBlocks, UInt64(UInt32.max - 1)))
        if UInt64(blockCount) < diskBlocks {
            Log.warn(.swap, "the disk holds \(bytes: diskBlocks * pageSize); swap uses its first \(bytes: UInt64(blockCount) * pageSize): a larger swap bitmap would take more than a quarter of memory, or block numbers more than 32 bits")
        }
        guard let bitmap = Kmalloc.allocate(SwapSpace.wordCount(blocks: blockCount) * 8, alignment: 16, .ordinaryNoWait) else {
            Log.error(.swap, "no memory for the bitmap of a \(bytes: UInt64(blockCount) * pageSize) swap disk (\(bytes: UInt64(SwapSpace.wordCount(blocks: blockCount) * 8))): running without swap")
            return
        }
        let storage = bitmap.bindMemory(to: UInt64.self, capacity: SwapSpace.wordCount(blocks: blockCount))
        space = SwapSpace(blocks: blockCount, storage: storage)
        Log.info(.swap, "\(Disk.kind!.name) \(bytes: UInt64(blockCount) * pageSize) (\(blockCount) blocks of 4 KiB) on \(message: Disk.describe())")
    }

    static func allocateBlock() -> UInt32? {
        withInterruptsDisabled { space?.allocate() }
    }

    /// Takes `block` itself if it is free (a page-out cluster's next block).
    static func allocateBlock(exactly block: UInt32) -> Bool {
        withInterruptsDisabled { space?.allocate(exactly: block) ?? false }
    }

    static func freeBlock(_ block: UInt32) {
        withInterruptsDisabled { space!.free(block) }
    }

    static var usedBlocks: UInt32 { space?.used ?? 0 }
    static var isFull: Bool { space?.isFull ?? true }

    /// Writes one page to `block`. False (and logged) on an error or a bad block number.
    static func write(block: UInt32, from memory: UnsafeMutableRawPointer) -> Bool {
        write(blocks: block, count: 1, from: memory)
    }

    /// Writes `count` pages from `memory` to blocks `first` ..< `first` + `count` in one disk
    /// request (a page-out cluster; at most Disk.maximumTransferPages). False (and logged) on
    /// an error or a bad block range: then none of them counts as written.
    static func write(blocks first: UInt32, count: Int, from memory: UnsafeMutableRawPointer) -> Bool {
        guard count >= 1, count <= Disk.maximumTransferPages, UInt64(first) + UInt64(count) <= UInt64(blocks) else {
            Log.error(.swap, "write of \(count) blocks from block \(first): beyond the end of swap (\(blocks) blocks) or more than one request holds")
            countEvent(&writeErrors)
            return false
        }
        if let failure = Disk.write(UInt64(first) * UInt64(sectorsPerBlock), count * sectorsPerBlock, from: memory) {
            countEvent(&writeErrors)
            Log.error(.swap, "writing blocks \(first)+\(count) failed: \(failure.what) (status \(hex: failure.status))")
            return false
        }
        withInterruptsDisabled {
            pagesWritten &+= UInt64(count)
            writeRequests &+= 1
        }
        return true
    }

    /// Reads one page from `block`. False (and logged) on an error or a bad block number.
    static func read(block: UInt32, into memory: UnsafeMutableRawPointer) -> Bool {
        guard block < blocks else {
            Log.error(.swap, "read of block \(block), beyond the end of swap (\(blocks) blocks)")
            countEvent(&readErrors)
            return false
        }
        if let failure = Disk.read(UInt64(block) * UInt64(sectorsPerBlock), sectorsPerBlock, into: memory) {
            countEvent(&readErrors)
            Log.error(.swap, "reading block \(block) failed: \(failure.what) (status \(hex: failure.status))")
            return false
        }
        countEvent(&pagesRead)
        return true
    }
}
