// ATADisk.swift - the primary IDE/ATA disk, driven by programmed I/O with polling.
//
// The swap device. Commands (ATA-8): IDENTIFY DEVICE to learn the size, READ SECTORS (0x20)
// and WRITE SECTORS (0x30) with 28-bit addresses, or their EXT forms (0x24/0x34) beyond that.
// Interrupts from the drive are switched off (nIEN): every wait polls the status register,
// with a timeout, and every failure comes back as an ATAError saying what went wrong - the
// status and error registers, or which wait timed out. One operation at a time: a mutex
// serialises the threads that use the disk. The fallback swap disk: kernel/Drivers/Disk.swift
// prefers virtio-blk and AHCI, which move data by DMA and do not keep the CPU polling.

struct ATAError {
    let what: StaticString
    let status: UInt8
    let error: UInt8
}

enum ATADisk {
    static let data = IOPort(0x1F0)
    static let errorRegister = IOPort(0x1F1)
    static let sectorCount = IOPort(0x1F2)
    static let lbaLow = IOPort(0x1F3)
    static let lbaMid = IOPort(0x1F4)
    static let lbaHigh = IOPort(0x1F5)
    static let driveSelect = IOPort(0x1F6)
    static let command = IOPort(0x1F7)
    static let control = IOPort(0x3F6)

    static let statusBusy: UInt8 = 0x80
    static let statusReady: UInt8 = 0x40
    static let statusFault: UInt8 = 0x20
    static let statusDataRequest: UInt8 = 0x08
    static let statusError: UInt8 = 0x01

    static let sectorBytes = 512
    static var present = false
    static var sectors: UInt64 = 0
    static var supportsLBA48 = false
    /// Serialises the threads that use the disk. Made when a disk is found; until then the
    /// never-mapped placeholder (kernel/Lib/UnsetPlaceholder.swift).
    static var mutex = UnsafeMutablePointer<Mutex>.unsetPlaceholder
    static var operations: UInt64 = 0
    static var errors: UInt64 = 0
    /// Polls of the status register before a wait gives up (a few seconds on any QEMU).
    static var pollLimit = 50_000_000

    /// Looks for a disk on the primary channel, master position.
    static func probe() -> Bool {
        control.write8(0x02)                       // nIEN: no interrupts, we poll
        driveSelect.write8(0xA0)
        delay()
        sectorCount.write8(0)
        lbaLow.write8(0)
        lbaMid.write8(0)
        lbaHigh.write8(0)
        command.write8(0xEC)                       // IDENTIFY DEVICE
        if command.read8() == 0 || command.read8() == 0xFF { return false }
        if waitWhileBusy() != nil { return false }
        if lbaMid.read8() != 0 || lbaHigh.read8() != 0 { return false }   // ATAPI or SATA: not ours
        if waitForData("identify") != nil { return false }
        let words = Kmalloc.allocate(sectorBytes)!.bindMemory(to: UInt16.self, capacity: 256)
        for index in 0..<256 { words[index] = data.read16() }
        supportsLBA48 = words[83] & (1 << 10) != 0
        let lba28 = UInt64(words[60]) | UInt64(words[61]) << 16
        let lba48 = UInt64(words[100]) | UInt64(words[101]) << 16 | UInt64(words[102]) << 32 | UInt64(words[103]) << 48
        sectors = supportsLBA48 && lba48 > 0 ? lba48 : lba28
        Kmalloc.free(UnsafeMutableRawPointer(words))
        mutex = UnsafeMutablePointer<Mutex>.allocate(capacity: 1)
        mutex.initialize(to: Mutex("ata"))
        present = sectors > 0
        return present
    }

    // MARK: - Transfers

    /// Reads `count` sectors from `firstSector` into `buffer`.
    static func read(_ firstSector: UInt64, _ count: Int, into buffer: UnsafeMutableRawPointer) -> ATAError? {
        transfer(firstSector, count, buffer, write: false)
    }

    /// Writes `count` sectors from `buffer` to `firstSector`.
    static func write(_ firstSector: UInt64, _ count: Int, from buffer: UnsafeMutableRawPointer) -> ATAError? {
        transfer(firstSector, count, buffer, write: true)
    }

    private static func transfer(_ firstSector: UInt64, _ count: Int, _ buffer: UnsafeMutableRawPointer, write: Bool) -> ATAError? {
        guard present else { return ATAError(what: "no disk", status: 0, error: 0) }
        guard count > 0 && count <= 256, firstSector + UInt64(count) <= sectors else {
            return ATAError(what: "sector range outside the disk", status: 0, error: 0)
        }
        mutex.lock()
        defer { mutex.unlock() }
        operations += 1
        if let failure = waitWhileBusy() { return note(failure) }
        let extended = firstSector + UInt64(count) > (1 << 28)
        if extended {
            driveSelect.write8(0x40)
            sectorCount.write8(UInt8(truncatingIfNeeded: count >> 8))
            lbaLow.write8(UInt8(truncatingIfNeeded: firstSector >> 24))
            lbaMid.write8(UInt8(truncatingIfNeeded: firstSector >> 32))
            lbaHigh.write8(UInt8(truncatingIfNeeded: firstSector >> 40))
        } else {
            driveSelect.write8(0xE0 | UInt8(truncatingIfNeeded: (firstSector >> 24) & 0x0F))
        }
        sectorCount.write8(UInt8(truncatingIfNeeded: count))
        lbaLow.write8(UInt8(truncatingIfNeeded: firstSector))
        lbaMid.write8(UInt8(truncatingIfNeeded: firstSector >> 8))
        lbaHigh.write8(UInt8(truncatingIfNeeded: firstSector >> 16))
        command.write8(write ? (extended ? 0x34 : 0x30) : (extended ? 0x24 : 0x20))
        for sector in 0..<count {
            if let failure = waitForData(write ? "write data request" : "read data ready") { return note(failure) }
            let words = buffer + sector * sectorBytes
            if write {
                arch_outsw_port(data, words)
            } else {
                arch_insw_port(data, words)
            }
        }
        if let failure = waitWhileBusy() { return note(failure) }
        let status = command.read8()
        if status & (statusError | statusFault) != 0 {
            return note(ATAError(what: write ? "write failed" : "read failed", status: status, error: errorRegister.read8()))
        }
        return nil
    }

    private static func note(_ failure: ATAError) -> ATAError {
        errors += 1
        Log.error(.disk, "ata: \(failure.what) (status \(hex: failure.status), error \(hex: failure.error))")
        return failure
    }

    // MARK: - Waiting

    /// The 400 ns the specification asks for after selecting a drive: four status reads.
    private static func delay() {
        for _ in 0..<4 { _ = control.read8() }
    }

    private static func waitWhileBusy() -> ATAError? {
        for _ in 0..<pollLimit {
            let status = control.read8()
            if status & statusBusy == 0 { return nil }
            CPU.pause()
        }
        return ATAError(what: "timed out waiting for the drive to be ready", status: control.read8(), error: errorRegister.read8())
    }

    private static func waitForData(_ phase: StaticString) -> ATAError? {
        for _ in 0..<pollLimit {
            let status = control.read8()
            if status & statusBusy == 0 {
                if status & (statusError | statusFault) != 0 {
                    return ATAError(what: phase, status: status, error: errorRegister.read8())
                }
                if status & statusDataRequest != 0 { return nil }
            }
            CPU.pause()
        }
        return ATAError(what: "timed out waiting for data", status: control.read8(), error: errorRegister.read8())
    }
}

import ArchSupport

@inline(__always)
private func arch_outsw_port(_ port: IOPort, _ buffer: UnsafeMutableRawPointer) {
    arch_outsw(port.number, buffer, UInt64(ATADisk.sectorBytes / 2))
}

@inline(__always)
private func arch_insw_port(_ port: IOPort, _ buffer: UnsafeMutableRawPointer) {
    arch_insw(port.number, buffer, UInt64(ATADisk.sectorBytes / 2))
}
