// AHCIDisk.swift - a SATA disk behind an AHCI controller (q35's ICH9), by DMA and interrupt.
//
// AHCI 1.3: the controller's registers are memory-mapped at BAR5 (ABAR): the generic host
// control block at 0, then 0x80 bytes per port from 0x100. Each port fetches commands from a
// command list (32 headers of 32 bytes, 1 KiB aligned) in memory and posts the FISes the disk
// sends into a received-FIS area (256 bytes). A command header points at a command table: the
// command FIS (here a host-to-device register FIS with an ATA command) and the PRDT, a list of
// physical buffers (at most 4 MiB each; ours are page pieces). Setting bit n of PxCI issues
// command slot n; the controller clears it when the command is done, and raises the port's
// interrupt (PxIS, summarised in the host's IS) when enabled.
//
// This driver uses the first port with a SATA disk attached (QEMU puts `-drive if=ide,index=0`
// of q35 on port 0) and ATA commands READ DMA EXT (0x25) and WRITE DMA EXT (0x35) with 48-bit
// sector numbers; IDENTIFY DEVICE (0xEC) at probe for the size. Command slot 0 serves the
// transfers a thread waits for - one at a time, a mutex serialising the threads; slots 1 ...
// asyncSlots serve the page-out writes left in flight (`startWrite`, owned by
// kernel/VM/PageoutRequests.swift), each with its own command table. What is preallocated at
// boot: one page holding the command list (0x000), the received-FIS area (0x400), slot 0's
// command table with its PRDT (0x800) and the IDENTIFY buffer (0xC00), and one page of command
// tables for the other slots (0x200 each). Nothing on the I/O path allocates.
//
// Completion is by interrupt, as for virtio-blk: the handler clears PxIS and the host's IS bit,
// and completes the request when slot 0 is no longer issued or the port reports an error
// (task-file error, host bus or interface errors); the waiter checks PxTFD. A write in flight
// has ended when its slot's PxCI bit is clear; after a port error every write still issued
// is reported failed (the port stops processing its list: AHCI 6.2.2), and the port is
// restarted there unless a waiting transfer will do it. After an error the
// port is stopped and started again (AHCI 6.2.2.1: clear ST, wait for CR, clear errors, set ST),
// so the next command finds it usable. The probe runs before interrupts are on, so IDENTIFY is
// polled (DiskCompletion polls whenever the caller cannot sleep).

import ArchSupport

enum AHCIDisk {
    // Host registers.
    static let hostCapabilities = 0x00
    static let globalHostControl = 0x04
    static let interruptStatus = 0x08
    static let portsImplemented = 0x0C
    static let ghcAHCIEnable: UInt32 = 1 << 31
    static let ghcInterruptEnable: UInt32 = 1 << 1

    // Port registers, from the port's base.
    static let commandListBase = 0x00
    static let fisBase = 0x08
    static let portInterruptStatus = 0x10
    static let portInterruptEnable = 0x14
    static let portCommand = 0x18
    static let taskFileData = 0x20
    static let signature = 0x24
    static let sataStatus = 0x28
    static let sataError = 0x30
    static let commandIssue = 0x38

    static let commandStart: UInt32 = 1 << 0
    static let commandFISReceiveEnable: UInt32 = 1 << 4
    static let commandFISReceiveRunning: UInt32 = 1 << 14
    static let commandListRunning: UInt32 = 1 << 15

    static let interruptDeviceToHost: UInt32 = 1 << 0
    static let interruptPIOSetup: UInt32 = 1 << 1
    /// Task-file, host bus fatal, host bus data and interface fatal errors.
    static let interruptErrors: UInt32 = (1 << 30) | (1 << 29) | (1 << 28) | (1 << 27)

    static let sataDiskSignature: UInt32 = 0x0000_0101
    static let statusBusy: UInt32 = 0x80
    static let statusDataRequest: UInt32 = 0x08
    static let statusError: UInt32 = 0x01

    /// A 64 KiB transfer (Disk.maximumTransferPages) in page pieces, plus one for a buffer that
    /// does not start on a page boundary. The PRDT (16 bytes an entry, from 0x880) has room for
    /// 56 before the IDENTIFY buffer.
    static let maximumPRDs = Disk.maximumTransferPages + 1

    static var function: PCIFunction? = nil
    static var registers = UnsafeMutableRawPointer(UnsafeMutablePointer<UInt8>.unsetPlaceholder)
    static var port = 0
    static var irq = 0
    static var memory = DMARegion.unset
    static var sectors: UInt64 = 0
    static var mutex = UnsafeMutablePointer<Mutex>.unsetPlaceholder
    static var completion = UnsafeMutablePointer<DiskCompletion>.unsetPlaceholder
    /// PxIS bits the handler saw for the current command: the waiter looks for errors in them.
    static var seenStatus: UInt32 = 0
    static var interrupts: UInt64 = 0
    static var broken = false
    /// Command slots for page-out writes in flight (Disk.writeSlotsInFlight): as many as the
    /// controller has beside slot 0, at most ReserveBounds.pageoutWritesInFlight.
    static var asyncSlots = 0
    /// Their command tables, 0x200 bytes apart (slot s at (s - 1) x 0x200).
    static var asyncTables = DMARegion.unset
    static let asyncTableBytes = 0x200
    /// Slots of writes in flight issued to the port and not yet reported; and those whose
    /// write was chosen to fail (diskfault=). Interrupts off.
    static var asyncIssued: UInt32 = 0
    static var failingSlots: UInt32 = 0

    static let commandListOffset = 0x000
    static let receivedFISOffset = 0x400
    static let commandTableOffset = 0x800
    static let identifyOffset = 0xC00

    static var description: LogMessage {
        let a = function!.address
        return "ahci at \(a.bus):\(a.device).\(a.function), port \(port), ABAR \(address: function!.memoryBase(5)!), irq \(irq), DMA, interrupt-driven"
    }

    // MARK: - Registers

    static func hostRead(_ offset: Int) -> UInt32 { arch_load32(registers + offset) }
    static func hostWrite(_ offset: Int, _ value: UInt32) { arch_store32(registers + offset, value) }
    static func portRead(_ offset: Int) -> UInt32 { arch_load32(registers + 0x100 + 0x80 * port + offset) }
    static func portWrite(_ offset: Int, _ value: UInt32) { arch_store32(registers + 0x100 + 0x80 * port + offset, value) }

    /// Polls until `(portRead(offset) & mask) == value`; false after a bound (the controller is stuck).
    private static func waitPort(_ offset: Int, _ mask: UInt32, _ value: UInt32) -> Bool {
        for _ in 0..<10_000_000 {
            if portRead(offset) & mask == value { return true }
            CPU.pause()
        }
        return false
    }

    // MARK: - Probe

    /// Finds an AHCI controller (class 01.06.01) with a SATA disk on a port and sets it up.
    /// Boot only, before interrupts are on. False when there is none or it cannot be used.
    static func probe() -> Bool {
        guard let found = PCI.find({ $0.classCode == 0x01 && $0.subclass == 0x06 && $0.interface == 0x01 }) else { return false }
        guard let abar = found.memoryBase(5) else {
            Log.error(.disk, "ahci: BAR5 (ABAR) is not a memory BAR; not used")
            return false
        }
        guard found.interruptLine < 16 else {
            Log.error(.disk, "ahci: no legacy interrupt line routed (\(found.interruptLine)); not used")
            return false
        }
        found.enable(.memory)
        guard let mapped = DeviceMemory.map(abar, bytes: 0x1000) else { return false }
        function = found
        registers = mapped
        irq = Int(found.interruptLine)
        hostWrite(globalHostControl, hostRead(globalHostControl) | ghcAHCIEnable)
        let implemented = hostRead(portsImplemented)
        var chosen: Int? = nil
        for candidate in 0..<32 where implemented & (1 << UInt32(candidate)) != 0 {
            port = candidate
            let detection = portRead(sataStatus) & 0xF
            if detection == 3 && portRead(signature) == sataDiskSignature {
                chosen = candidate
                break
            }
        }
        guard let diskPort = chosen else {
            Log.info(.disk, "ahci: controller at \(found.address.bus):\(found.address.device).\(found.address.function) has no SATA disk on its ports (\(hex: implemented))")
            return false
        }
        port = diskPort
        guard let region = DMARegion.allocate(pages: 1) else {
            Log.error(.disk, "ahci: no memory for the command list; not used")
            return false
        }
        memory = region
        // CAP.NCS: the command slots the port has, less one.
        let commandSlots = Int((hostRead(hostCapabilities) >> 8) & 0x1F) + 1
        asyncSlots = min(ReserveBounds.pageoutWritesInFlight, commandSlots - 1)
        if asyncSlots > 0 {
            guard let tables = DMARegion.allocate(pages: 1) else {
                Log.error(.disk, "ahci: no memory for the command tables; not used")
                return false
            }
            asyncTables = tables
        }
        guard startPort() else {
            Log.error(.disk, "ahci: port \(port) did not start; not used")
            return false
        }
        mutex = UnsafeMutablePointer<Mutex>.allocate(capacity: 1)
        mutex.initialize(to: Mutex("ahci"))
        completion = UnsafeMutablePointer<DiskCompletion>.allocate(capacity: 1)
        completion.initialize(to: DiskCompletion())
        portWrite(portInterruptEnable, interruptDeviceToHost | interruptPIOSetup | interruptErrors)
        hostWrite(globalHostControl, hostRead(globalHostControl) | ghcInterruptEnable)
        InterruptLines.enable(irq: irq, .pci, ahciInterrupt)

        let (identify, identifyPhysical) = memory.at(identifyOffset)
        if let failure = issue(command: 0xEC, sector: 0, count: 0, write: false, pieces: [(identifyPhysical, Disk.sectorBytes)]) {
            Log.error(.disk, "ahci: IDENTIFY DEVICE failed: \(failure.what) (\(hex: failure.status)); not used")
            return false
        }
        let words = identify.assumingMemoryBound(to: UInt16.self)
        let lba48 = UInt64(words[100]) | UInt64(words[101]) << 16 | UInt64(words[102]) << 32 | UInt64(words[103]) << 48
        let lba28 = UInt64(words[60]) | UInt64(words[61]) << 16
        sectors = lba48 > 0 ? lba48 : lba28
        return sectors > 0
    }

    /// Stops the port (if it runs), points it at our command list and FIS area, clears its
    /// errors and starts it. False when it does not stop or start in time.
    private static func startPort() -> Bool {
        portWrite(portCommand, portRead(portCommand) & ~commandStart)
        guard waitPort(portCommand, commandListRunning, 0) else { return false }
        portWrite(portCommand, portRead(portCommand) & ~commandFISReceiveEnable)
        guard waitPort(portCommand, commandFISReceiveRunning, 0) else { return false }
        let (_, list) = memory.at(commandListOffset)
        let (_, fis) = memory.at(receivedFISOffset)
        portWrite(commandListBase, UInt32(truncatingIfNeeded: list.rawValue))
        portWrite(commandListBase + 4, UInt32(truncatingIfNeeded: list.rawValue >> 32))
        portWrite(fisBase, UInt32(truncatingIfNeeded: fis.rawValue))
        portWrite(fisBase + 4, UInt32(truncatingIfNeeded: fis.rawValue >> 32))
        portWrite(sataError, 0xFFFF_FFFF)
        portWrite(portInterruptStatus, 0xFFFF_FFFF)
        portWrite(portCommand, portRead(portCommand) | commandFISReceiveEnable)
        guard waitPort(taskFileData, statusBusy | statusDataRequest, 0) else { return false }
        portWrite(portCommand, portRead(portCommand) | commandStart)
        return true
    }

    // MARK: - Commands

    /// One request of `count` sectors. Called by Disk with the range checked.
    static func transfer(_ operation: DiskOperation, _ firstSector: UInt64, _ count: Int, _ buffer: UnsafeMutableRawPointer) -> DiskError? {
        guard !broken else { return DiskError(what: "ahci port stopped after a command timed out", status: 0) }
        // The pieces go straight into the PRDT under the mutex: nothing is collected first.
        mutex.lock()
        defer { mutex.unlock() }
        var prds = 0
        let table = memory.pointer + commandTableOffset
        let described = DMA.forEachSegment(buffer, count * Disk.sectorBytes) { physical, length in
            guard prds < maximumPRDs else { return false }
            setPRD(table, prds, physical, length)
            prds += 1
            return true
        }
        guard described else { return DiskError(what: "buffer not mapped, or in more pieces than a command holds", status: 0) }
        return run(command: operation == .write ? 0x35 : 0x25, sector: firstSector, count: count, write: operation == .write, prds: prds)
    }

    /// IDENTIFY and the like at probe: PRDs from a list, then `run`.
    private static func issue(command: UInt8, sector: UInt64, count: Int, write: Bool, pieces: [(PhysicalAddress, Int)]) -> DiskError? {
        let table = memory.pointer + commandTableOffset
        for (index, piece) in pieces.enumerated() { setPRD(table, index, piece.0, piece.1) }
        return run(command: command, sector: sector, count: count, write: write, prds: pieces.count)
    }

    private static func setPRD(_ table: UnsafeMutableRawPointer, _ index: Int, _ physical: PhysicalAddress, _ length: Int) {
        let prd = table + 0x80 + 16 * index
        prd.storeBytes(of: UInt32(truncatingIfNeeded: physical.rawValue), as: UInt32.self)
        prd.storeBytes(of: UInt32(truncatingIfNeeded: physical.rawValue >> 32), toByteOffset: 4, as: UInt32.self)
        prd.storeBytes(of: UInt32(0), toByteOffset: 8, as: UInt32.self)
        prd.storeBytes(of: UInt32(length - 1), toByteOffset: 12, as: UInt32.self)   // byte count - 1
    }

    /// Slot `slot`'s command table: its pointer and physical address.
    private static func commandTable(_ slot: Int) -> (UnsafeMutableRawPointer, PhysicalAddress) {
        slot == 0 ? memory.at(commandTableOffset) : asyncTables.at((slot - 1) * asyncTableBytes)
    }

    /// Writes slot `slot`'s command FIS and command header (its PRDT already filled with `prds`
    /// entries).
    private static func prepareCommand(slot: Int, command: UInt8, sector: UInt64, count: Int, write: Bool, prds: Int) {
        let (table, tablePhysical) = commandTable(slot)
        table.initializeMemory(as: UInt8.self, repeating: 0, count: 0x80)
        let fis = table.assumingMemoryBound(to: UInt8.self)
        fis[0] = 0x27                       // host to device register FIS
        fis[1] = 0x80                       // a command (not a control update)
        fis[2] = command
        fis[4] = UInt8(truncatingIfNeeded: sector)
        fis[5] = UInt8(truncatingIfNeeded: sector >> 8)
        fis[6] = UInt8(truncatingIfNeeded: sector >> 16)
        fis[7] = 0x40                       // LBA addressing
        fis[8] = UInt8(truncatingIfNeeded: sector >> 24)
        fis[9] = UInt8(truncatingIfNeeded: sector >> 32)
        fis[10] = UInt8(truncatingIfNeeded: sector >> 40)
        fis[12] = UInt8(truncatingIfNeeded: count)
        fis[13] = UInt8(truncatingIfNeeded: count >> 8)
        let header = memory.pointer + commandListOffset + 32 * slot
        // CFL: a 5-dword FIS; W: the device reads memory; PRDTL in the top half.
        header.storeBytes(of: 5 | (write ? 1 << 6 : 0) | UInt32(prds) << 16, as: UInt32.self)
        header.storeBytes(of: UInt32(0), toByteOffset: 4, as: UInt32.self)
        header.storeBytes(of: UInt32(truncatingIfNeeded: tablePhysical.rawValue), toByteOffset: 8, as: UInt32.self)
        header.storeBytes(of: UInt32(truncatingIfNeeded: tablePhysical.rawValue >> 32), toByteOffset: 12, as: UInt32.self)
    }

    /// Builds slot 0's command (the PRDT already filled), issues it and waits for it; the
    /// error, if the port reported one.
    private static func run(command: UInt8, sector: UInt64, count: Int, write: Bool, prds: Int) -> DiskError? {
        prepareCommand(slot: 0, command: command, sector: sector, count: count, write: write, prds: prds)

        let completed = completion.issueAndWait("ahci I/O", submit: {
            seenStatus = 0
            arch_barrier()      // the FIS, header and PRDT stores above happen before the issue
            portWrite(commandIssue, 1)
        }, poll: { collect() })
        guard completed else {
            broken = true
            Log.error(.disk, "ahci: command \(hex: command) for sectors \(sector)+\(count) did not complete in \(DiskCompletion.timeoutTicks / Timer.hertz) s; the port is not used again")
            return DiskError(what: "timed out", status: 0)
        }
        let taskFile = portRead(taskFileData)
        if seenStatus & interruptErrors != 0 || taskFile & statusError != 0 {
            let failure = DiskError(what: "device error", status: taskFile | (seenStatus & interruptErrors))
            withInterruptsDisabled { restartAfterError() }
            return failure
        }
        return nil
    }

    /// Starts a page-out write of `count` pages in command slot `slot` (1 ... asyncSlots) and
    /// returns: `collect` reports its end to PageoutRequests.deviceFinished. With `failing`,
    /// the write goes to the disk and is reported failed at its completion.
    static func startWrite(slot: Int, _ firstSector: UInt64, pages: UnsafePointer<PageIndex>, count: Int, failing: Bool) -> DiskError? {
        guard !broken else { return DiskError(what: "ahci port stopped after a command timed out", status: 0) }
        kassert(slot >= 1 && slot <= asyncSlots, "ahci: write slot \(slot) of \(asyncSlots)")
        let (table, _) = commandTable(slot)
        for number in 0..<count { setPRD(table, number, PhysicalMemory.physicalAddress(of: pages[number]), Int(pageSize)) }
        let sectorCount = count * Int(pageSize) / Disk.sectorBytes
        prepareCommand(slot: slot, command: 0x35, sector: firstSector, count: sectorCount, write: true, prds: count)
        withInterruptsDisabled {
            let bit: UInt32 = 1 << UInt32(slot)
            asyncIssued |= bit
            if failing { failingSlots |= bit }
            arch_barrier()      // the FIS, header and PRDT stores above happen before the issue
            portWrite(commandIssue, bit)
        }
        return nil
    }

    /// After a port error: stop and start the port again (which clears PxCI), or give the
    /// device up. Interrupts off.
    private static func restartAfterError() {
        if !startPort() {
            broken = true
            Log.error(.disk, "ahci: port \(port) did not restart after an error; not used again")
        }
    }

    /// Takes the port's interrupt status, and completes the command when slot 0 is done or
    /// the port reported an error. Interrupts off (the handler, or the poller).
    static func collect() {
        let status = portRead(portInterruptStatus)
        if status != 0 { portWrite(portInterruptStatus, status) }
        hostWrite(interruptStatus, 1 << UInt32(port))
        seenStatus |= status
        let issued = portRead(commandIssue)
        let portError = status & interruptErrors != 0
        let waiting = !completion.pointee.complete && issued & 1 != 0
        // Writes in flight: ended when their bit is clear; after an error the port has
        // stopped, and those still issued will not end by themselves.
        var slot = 1
        while asyncIssued != 0 && slot <= asyncSlots {
            let bit: UInt32 = 1 << UInt32(slot)
            if asyncIssued & bit != 0 && (issued & bit == 0 || portError) {
                asyncIssued &= ~bit
                var error: DiskError? = nil
                if issued & bit != 0 { error = DiskError(what: "device error", status: portRead(taskFileData) | (status & interruptErrors)) }
                if failingSlots & bit != 0 {
                    failingSlots &= ~bit
                    error = DiskError(what: "injected fault (diskfault=)", status: 0)
                }
                PageoutRequests.deviceFinished(slot: slot, error: error)
            }
            slot += 1
        }
        // A waiting transfer restarts the port itself after an error (`run`).
        if portError && !waiting { restartAfterError() }
        if !completion.pointee.complete && (issued & 1 == 0 || portError) {
            completion.finish()
        }
    }
}

/// The controller's interrupt (shared line): collect, then acknowledge the PIC. Interrupts off.
private func ahciInterrupt(_ frame: UnsafeMutablePointer<InterruptFrame>) {
    if AHCIDisk.hostRead(AHCIDisk.interruptStatus) & (1 << UInt32(AHCIDisk.port)) != 0 {
        AHCIDisk.interrupts &+= 1
        AHCIDisk.collect()
    }
    InterruptLines.endOfInterrupt(irq: AHCIDisk.irq)
}
