// VirtioBlock.swift - a virtio block device through the legacy virtio-pci interface.
//
// Why legacy (virtio 1.x section 4.1.5 "legacy interfaces", QEMU `-device virtio-blk-pci,
// disable-modern=on`): its registers are a handful of I/O ports behind BAR0 - no PCI
// capability list to walk and no MMIO to map - and its one virtqueue is a single contiguous
// block whose page number the driver writes once. The modern interface would buy nothing this
// driver uses (it negotiates no features) for three more structures to find. QEMU's default
// transitional device (vendor 0x1af4, device 0x1001) offers both; a modern-only device (0x1042)
// is logged and left alone.
//
// Registers (offsets from BAR0): 0x00 device features, 0x04 driver features, 0x08 queue page
// number, 0x0c queue size (read-only in legacy: the device fixes it), 0x0e queue select, 0x10
// queue notify, 0x12 device status, 0x13 ISR status (reading it acknowledges the interrupt),
// 0x14 the block device's configuration - its capacity in 512-byte sectors first.
//
// What is preallocated at boot (docs/io.md): the virtqueue (3 pages for QEMU's 256 entries),
// and one page holding, for each request slot, the request header (type, reserved, sector: 16
// bytes) and the status byte the device writes. Slot s owns descriptors s x chainLength ...:
// the header (device reads), the data, one descriptor per physical page piece (device reads on
// a write, writes on a read), the status byte (device writes). Slot 0 serves the transfers
// whose thread waits (`transfer`: a mutex serialises them, as for the ATA disk); slots 1 ...
// asyncSlots serve the page-out writes that stay in flight while the pageout thread goes on
// (`startWrite`, owned by kernel/VM/PageoutRequests.swift). Nothing on the I/O path allocates.
//
// Completion: the device raises its legacy INTx, which the firmware routed to an 8259 IRQ (the
// function's interrupt line). The handler reads the ISR (acknowledging the device) and takes
// new entries off the used ring: each names its chain's head, so its slot - slot 0 marks the
// waiting request complete and wakes its waiter (DiskCompletion in kernel/Drivers/Disk.swift),
// another slot ends its page-out there and then (PageoutRequests.deviceFinished). Then it
// acknowledges the interrupt controller. The line may be shared: a handler that finds nothing
// new only acknowledges.

import ArchSupport

enum VirtioBlock {
    static let vendor: UInt16 = 0x1AF4
    static let legacyDevice: UInt16 = 0x1001
    static let modernDevice: UInt16 = 0x1042

    // Legacy register offsets from BAR0.
    static let deviceFeatures: UInt16 = 0x00
    static let driverFeatures: UInt16 = 0x04
    static let queueAddress: UInt16 = 0x08
    static let queueSize: UInt16 = 0x0C
    static let queueSelect: UInt16 = 0x0E
    static let queueNotify: UInt16 = 0x10
    static let deviceStatus: UInt16 = 0x12
    static let isrStatus: UInt16 = 0x13
    static let capacity: UInt16 = 0x14

    // Device status bits (section 2.1).
    static let statusAcknowledge: UInt8 = 1
    static let statusDriver: UInt8 = 2
    static let statusDriverOK: UInt8 = 4
    static let statusFailed: UInt8 = 128

    // Descriptor flags and request types (section 5.2.6).
    static let descriptorNext: UInt16 = 1
    static let descriptorDeviceWrites: UInt16 = 2
    static let requestRead: UInt32 = 0
    static let requestWrite: UInt32 = 1

    /// Data descriptors per request: a 64 KiB transfer (Disk.maximumTransferPages, a page-out
    /// cluster) in page pieces, plus one for a buffer that does not start on a page boundary.
    static let maximumDataDescriptors = Disk.maximumTransferPages + 1
    /// Descriptors one slot owns: the header, the data, the status byte.
    static let chainLength = maximumDataDescriptors + 2
    /// Bytes of the request page per slot: the header (16) and the status byte (at 16).
    static let slotBytes = 32
    /// Slots for page-out writes in flight (Disk.writeSlotsInFlight): as many as the queue's
    /// descriptors hold beside slot 0, at most ReserveBounds.pageoutWritesInFlight.
    static var asyncSlots = 0
    /// Slots whose write was chosen to fail (diskfault=): their completion reports an error.
    static var failingSlots: UInt32 = 0

    static var function: PCIFunction? = nil
    static var base = IOPort(0)
    static var irq = 0
    static var layout = VirtqueueLayout(size: 1)!
    static var queue = DMARegion.unset
    /// The request header at offset 0 and the status byte at offset 16 of one preallocated page.
    static var request = DMARegion.unset
    static var sectors: UInt64 = 0
    /// Our copy of the available ring's idx, and the used ring idx up to which we have looked.
    static var availableIndex: UInt16 = 0
    static var usedSeen: UInt16 = 0
    static var mutex = UnsafeMutablePointer<Mutex>.unsetPlaceholder
    static var completion = UnsafeMutablePointer<DiskCompletion>.unsetPlaceholder
    static var interrupts: UInt64 = 0
    /// Set when a request timed out: the device is not trusted again.
    static var broken = false

    static var description: LogMessage {
        let a = function!.address
        return "virtio-blk (legacy virtio-pci) at \(a.bus):\(a.device).\(a.function), ports \(hex: base.number), irq \(irq), a queue of \(layout.size), DMA, interrupt-driven"
    }

    /// Finds a legacy virtio-blk function and sets it up: reset, acknowledge, no features, the
    /// queue, the interrupt, driver OK. Boot only (it allocates its DMA memory), before
    /// interrupts are on. False - device left reset - when there is none or it cannot be used.
    static func probe() -> Bool {
        if let modern = PCI.find({ $0.vendor == vendor && $0.device == modernDevice }), PCI.find({ $0.vendor == vendor && $0.device == legacyDevice }) == nil {
            Log.warn(.disk, "virtio-blk at \(modern.address.bus):\(modern.address.device).\(modern.address.function) offers only the modern interface; this driver speaks legacy (QEMU: disable-modern=on, or the default transitional device)")
        }
        guard let found = PCI.find({ $0.vendor == vendor && $0.device == legacyDevice }) else { return false }
        guard let ports = found.ioBase(0) else {
            Log.error(.disk, "virtio-blk: BAR0 is not an I/O BAR; not used")
            return false
        }
        guard found.interruptLine < 16 else {
            Log.error(.disk, "virtio-blk: no legacy interrupt line routed (\(found.interruptLine)); not used")
            return false
        }
        function = found
        base = ports
        irq = Int(found.interruptLine)
        found.enable(.ioPorts)

        register(deviceStatus).write8(0)                                  // reset
        register(deviceStatus).write8(statusAcknowledge)
        register(deviceStatus).write8(statusAcknowledge | statusDriver)
        _ = register(deviceFeatures).read32()
        register(driverFeatures).write32(0)                               // none: plain reads and writes
        register(queueSelect).write16(0)
        let size = Int(register(queueSize).read16())
        guard let shape = VirtqueueLayout(size: size), size >= chainLength else {
            return fail("queue 0 has \(size) entries")
        }
        guard let ring = DMARegion.allocate(pages: shape.pages), let header = DMARegion.allocate(pages: 1) else {
            return fail("no memory for the virtqueue")
        }
        guard ring.physical.rawValue >> 12 <= UInt64(UInt32.max) else { return fail("the virtqueue is above 16 TiB") }
        layout = shape
        asyncSlots = min(ReserveBounds.pageoutWritesInFlight, size / chainLength - 1)
        queue = ring
        request = header
        register(queueAddress).write32(UInt32(ring.physical.rawValue >> 12))
        sectors = UInt64(register(capacity).read32()) | UInt64(register(capacity + 4).read32()) << 32
        guard sectors > 0 else { return fail("capacity 0") }

        mutex = UnsafeMutablePointer<Mutex>.allocate(capacity: 1)
        mutex.initialize(to: Mutex("virtio-blk"))
        completion = UnsafeMutablePointer<DiskCompletion>.allocate(capacity: 1)
        completion.initialize(to: DiskCompletion())
        InterruptLines.enable(irq: irq, .pci, virtioBlockInterrupt)
        register(deviceStatus).write8(statusAcknowledge | statusDriver | statusDriverOK)
        return true
    }

    private static func fail(_ why: LogMessage) -> Bool {
        Log.error(.disk, "virtio-blk: \(message: why); not used")
        register(deviceStatus).write8(statusFailed)
        return false
    }

    static func register(_ offset: UInt16) -> IOPort { base.offset(offset) }

    // MARK: - The queue's memory

    /// Descriptor `index`: physical address, length, flags, next.
    private static func setDescriptor(_ index: Int, _ address: PhysicalAddress, _ length: Int, _ flags: UInt16, next: Int) {
        let descriptor = queue.pointer + layout.descriptorOffset + 16 * index
        descriptor.storeBytes(of: address.rawValue, as: UInt64.self)
        descriptor.storeBytes(of: UInt32(length), toByteOffset: 8, as: UInt32.self)
        descriptor.storeBytes(of: flags, toByteOffset: 12, as: UInt16.self)
        descriptor.storeBytes(of: UInt16(next), toByteOffset: 14, as: UInt16.self)
    }

    private static var usedIndex: UInt16 { arch_load16(queue.pointer + layout.usedOffset + 2) }
    /// Slot `slot`'s header and status byte in the request page.
    private static func header(_ slot: Int) -> (UnsafeMutableRawPointer, PhysicalAddress) { request.at(slot * slotBytes) }
    private static func statusByte(_ slot: Int) -> UnsafeMutableRawPointer { request.pointer + slot * slotBytes + 16 }

    /// Writes slot `slot`'s chain: its header for `operation` at `firstSector`, a data
    /// descriptor per piece `pieces` hands out, its status byte. False when the pieces need
    /// more descriptors than a chain holds, or `pieces` fails (a buffer not mapped). Only the
    /// slot's owner writes its chain: slot 0's under the mutex, an async slot's by its request.
    private static func prepareChain(slot: Int, _ operation: DiskOperation, _ firstSector: UInt64,
                                     _ pieces: ((PhysicalAddress, Int) -> Bool) -> Bool) -> Bool {
        let (headerPointer, headerPhysical) = header(slot)
        headerPointer.storeBytes(of: operation == .write ? requestWrite : requestRead, as: UInt32.self)
        headerPointer.storeBytes(of: UInt32(0), toByteOffset: 4, as: UInt32.self)
        headerPointer.storeBytes(of: firstSector, toByteOffset: 8, as: UInt64.self)
        arch_store8(statusByte(slot), 0xFF)                 // not a status the device writes
        let head = slot * chainLength
        setDescriptor(head, headerPhysical, 16, descriptorNext, next: head + 1)
        var next = head + 1
        let dataFlags = descriptorNext | (operation == .read ? descriptorDeviceWrites : 0)
        let described = pieces { physical, length in
            guard next - head <= maximumDataDescriptors else { return false }
            setDescriptor(next, physical, length, dataFlags, next: next + 1)
            next += 1
            return true
        }
        guard described else { return false }
        setDescriptor(next, headerPhysical + 16, 1, descriptorDeviceWrites, next: 0)
        return true
    }

    /// Puts slot `slot`'s chain on the available ring and tells the device. Interrupts off
    /// (they hold the kernel lock, which orders the ring's writers on every CPU).
    private static func submitChain(slot: Int) {
        // The chain's head goes into the next available slot, then idx moves on: the device
        // reads idx, so the slot must be written first (volatile stores stay in order on
        // x86), and it is told only after both. The compiler barrier keeps the plain stores of
        // the header and descriptors from being moved past the volatile stores and the port
        // write below.
        arch_barrier()
        let entry = Int(availableIndex) & (layout.size - 1)
        arch_store16(queue.pointer + layout.availableSlotOffset(entry), UInt16(slot * chainLength))
        availableIndex &+= 1
        arch_store16(queue.pointer + layout.availableOffset + 2, availableIndex)
        register(queueNotify).write16(0)
    }

    // MARK: - Transfers

    /// One request of `count` sectors. Called by Disk with the range checked.
    static func transfer(_ operation: DiskOperation, _ firstSector: UInt64, _ count: Int, _ buffer: UnsafeMutableRawPointer) -> DiskError? {
        guard !broken else { return DiskError(what: "virtio-blk stopped after a request timed out", status: 0) }
        mutex.lock()
        defer { mutex.unlock() }
        let described = prepareChain(slot: 0, operation, firstSector) { DMA.forEachSegment(buffer, count * Disk.sectorBytes, $0) }
        guard described else { return DiskError(what: "buffer not mapped, or in more pieces than a request holds", status: 0) }

        let completed = completion.issueAndWait("virtio-blk I/O", submit: { submitChain(slot: 0) }, poll: { collectCompletions() })
        guard completed else {
            broken = true
            Log.error(.disk, "virtio-blk: a \(operation.name) of sectors \(firstSector)+\(count) did not complete in \(DiskCompletion.timeoutTicks / Timer.hertz) s; the device is not used again")
            return DiskError(what: "timed out", status: 0)
        }
        return outcome(slot: 0)
    }

    /// What slot `slot`'s status byte says, once the device has used its chain.
    private static func outcome(slot: Int) -> DiskError? {
        let status = arch_load8(statusByte(slot))
        guard status == 0 else {
            return DiskError(what: status == 2 ? "request not supported" : "device I/O error", status: UInt32(status))
        }
        return nil
    }

    /// Starts a page-out write of `count` pages in slot `slot` (1 ... asyncSlots) and returns:
    /// the device reports its end to PageoutRequests.deviceFinished (collectCompletions).
    /// With `failing`, the write goes to the device and is reported failed at its completion.
    static func startWrite(slot: Int, _ firstSector: UInt64, pages: UnsafePointer<PageIndex>, count: Int, failing: Bool) -> DiskError? {
        guard !broken else { return DiskError(what: "virtio-blk stopped after a request timed out", status: 0) }
        kassert(slot >= 1 && slot <= asyncSlots, "virtio-blk: write slot \(slot) of \(asyncSlots)")
        let described = prepareChain(slot: slot, .write, firstSector) { piece in
            for number in 0..<count where !piece(PhysicalMemory.physicalAddress(of: pages[number]), Int(pageSize)) { return false }
            return true
        }
        guard described else { return DiskError(what: "more pages than a request holds", status: 0) }
        withInterruptsDisabled {
            if failing { failingSlots |= 1 << UInt32(slot) }
            submitChain(slot: slot)
        }
        return nil
    }

    /// Takes new entries off the used ring, each naming its chain's head and so its slot:
    /// slot 0 completes the waiting transfer, another ends its page-out write. Interrupts off
    /// (the handler, or a poller).
    static func collectCompletions() {
        while usedSeen != usedIndex {
            let element = Int(usedSeen) & (layout.size - 1)
            let head = Int(arch_load32(queue.pointer + layout.usedElementOffset(element)))
            usedSeen &+= 1
            let slot = head / chainLength
            if slot == 0 {
                if !completion.pointee.complete { completion.finish() }
                continue
            }
            var error = outcome(slot: slot)
            if failingSlots & (1 << UInt32(slot)) != 0 {
                failingSlots &= ~(1 << UInt32(slot))
                error = DiskError(what: "injected fault (diskfault=)", status: 0)
            }
            PageoutRequests.deviceFinished(slot: slot, error: error)
        }
    }
}

/// The device's interrupt: acknowledge it (reading the ISR), collect completions, then
/// acknowledge the PIC. Interrupts off.
private func virtioBlockInterrupt(_ frame: UnsafeMutablePointer<InterruptFrame>) {
    let status = VirtioBlock.register(VirtioBlock.isrStatus).read8()
    if status & 1 != 0 {
        VirtioBlock.interrupts &+= 1
        VirtioBlock.collectCompletions()
    }
    InterruptLines.endOfInterrupt(irq: VirtioBlock.irq)
}
