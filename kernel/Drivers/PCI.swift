// PCI.swift - the PCI bus: configuration space through ports 0xCF8/0xCFC, and the devices found.
//
// Configuration mechanism #1: a 32-bit address written to 0xCF8 (enable bit, bus, device,
// function, register) selects a dword of one function's configuration space, read or written
// at 0xCFC. It reaches the first 256 bytes of every function on every bus, on every PC QEMU
// emulates (pc and q35 alike), which is all this kernel needs; ECAM (ACPI's MCFG) would add the
// extended space, which no driver here uses.
//
// `enumerate` walks bus 0 and every bus behind a PCI-to-PCI bridge (depth first, each bus
// once), reads each present function's identity, class and interrupt line, and logs one line
// per function. The table is allocated once, at boot, before interrupts are on; drivers look
// devices up by vendor and device id or by class (`find`). Nothing here changes a device
// except through `PCIFunction.enable`, which a driver calls for the device it takes.

extension LogTag {
    static let pci = LogTag("pci")
}

/// One function's address on the bus: where its configuration space is.
struct PCIAddress: Equatable {
    let bus: UInt8
    let device: UInt8
    let function: UInt8

    private static let addressPort = IOPort(0xCF8)
    private static let dataPort = IOPort(0xCFC)

    /// The dword address 0xCF8 takes: enable bit, bus, device, function, register (dword aligned).
    private func selector(_ register: UInt8) -> UInt32 {
        0x8000_0000 | UInt32(bus) << 16 | UInt32(device & 0x1F) << 11 | UInt32(function & 0x7) << 8 | UInt32(register & 0xFC)
    }

    /// Reads the dword at `register` (rounded down to a multiple of 4). With interrupts off: a
    /// handler between the address write and the data read could move the address.
    func read32(_ register: UInt8) -> UInt32 {
        withInterruptsDisabled {
            PCIAddress.addressPort.write32(selector(register))
            return PCIAddress.dataPort.read32()
        }
    }

    func write32(_ register: UInt8, _ value: UInt32) {
        withInterruptsDisabled {
            PCIAddress.addressPort.write32(selector(register))
            PCIAddress.dataPort.write32(value)
        }
    }

    func read16(_ register: UInt8) -> UInt16 {
        UInt16(truncatingIfNeeded: read32(register) >> (UInt32(register & 2) * 8))
    }

    func read8(_ register: UInt8) -> UInt8 {
        UInt8(truncatingIfNeeded: read32(register) >> (UInt32(register & 3) * 8))
    }
}

/// A function found on the bus: what it is and how to reach it.
struct PCIFunction {
    let address: PCIAddress
    let vendor: UInt16
    let device: UInt16
    /// Class, subclass and programming interface (configuration bytes 0x0B, 0x0A, 0x09).
    let classCode: UInt8
    let subclass: UInt8
    let interface: UInt8
    /// The legacy interrupt line the firmware routed the function's INTx pin to (an 8259 IRQ),
    /// 0xFF when it has none.
    let interruptLine: UInt8

    /// Configuration registers of the type-0 header that drivers use.
    static let commandRegister: UInt8 = 0x04
    static let commandIOSpace: UInt16 = 1 << 0
    static let commandMemorySpace: UInt16 = 1 << 1
    static let commandBusMaster: UInt16 = 1 << 2
    static let commandInterruptDisable: UInt16 = 1 << 10

    /// Base address register `index` (0...5) as the function reports it.
    func bar(_ index: Int) -> UInt32 { address.read32(UInt8(0x10 + 4 * index)) }

    /// The I/O port base of BAR `index`, when it is an I/O BAR.
    func ioBase(_ index: Int) -> IOPort? {
        let value = bar(index)
        guard value & 1 == 1 else { return nil }
        return IOPort(UInt16(truncatingIfNeeded: value & 0xFFFC))
    }

    /// The physical base of BAR `index`, when it is a memory BAR (64-bit ones read both halves).
    func memoryBase(_ index: Int) -> PhysicalAddress? {
        let value = bar(index)
        guard value & 1 == 0 else { return nil }
        var base = UInt64(value & 0xFFFF_FFF0)
        if (value >> 1) & 3 == 2 && index < 5 { base |= UInt64(bar(index + 1)) << 32 }
        return base == 0 ? nil : PhysicalAddress(base)
    }

    /// Turns on decoding of the BARs the driver uses and bus mastering (the device may DMA),
    /// and lets the function raise INTx.
    func enable(_ decoding: PCIDecoding) {
        let command = address.read32(PCIFunction.commandRegister)
        var bits = UInt16(truncatingIfNeeded: command) | PCIFunction.commandBusMaster
        bits |= decoding == .ioPorts ? PCIFunction.commandIOSpace : PCIFunction.commandMemorySpace
        bits &= ~PCIFunction.commandInterruptDisable
        address.write32(PCIFunction.commandRegister, (command & 0xFFFF_0000) | UInt32(bits))
    }
}

/// Which address space a driver reaches its device's registers through.
enum PCIDecoding {
    case ioPorts
    case memory
}

enum PCI {
    /// More functions than any QEMU machine this kernel boots has; more are logged and ignored.
    static let capacity = 64
    static var functions = UnsafeMutablePointer<PCIFunction>.unsetPlaceholder
    static var count = 0
    static var ignored = 0

    /// Finds every function (boot, before interrupts are on: it allocates its table).
    static func enumerate() {
        functions = UnsafeMutablePointer<PCIFunction>.allocate(capacity: capacity)
        var busesSeen: UInt64 = 0          // a bit per bus 0...63: no bus is walked twice
        scan(bus: 0, &busesSeen)
        Log.info(.pci, "\(count) PCI functions\(ignored > 0 ? " (more ignored: the table is full)" as StaticString : "")")
    }

    private static func scan(bus: UInt8, _ seen: inout UInt64) {
        guard bus < 64, seen & (1 << UInt64(bus)) == 0 else { return }
        seen |= 1 << UInt64(bus)
        for device in UInt8(0)..<32 {
            let first = PCIAddress(bus: bus, device: device, function: 0)
            guard first.read16(0x00) != 0xFFFF else { continue }
            let multifunction = first.read8(0x0E) & 0x80 != 0
            for function in UInt8(0)..<(multifunction ? 8 : 1) {
                let address = PCIAddress(bus: bus, device: device, function: function)
                let identity = address.read32(0x00)
                guard identity & 0xFFFF != 0xFFFF else { continue }
                let classWord = address.read32(0x08)
                let found = PCIFunction(address: address, vendor: UInt16(truncatingIfNeeded: identity),
                                        device: UInt16(truncatingIfNeeded: identity >> 16),
                                        classCode: UInt8(truncatingIfNeeded: classWord >> 24),
                                        subclass: UInt8(truncatingIfNeeded: classWord >> 16),
                                        interface: UInt8(truncatingIfNeeded: classWord >> 8),
                                        interruptLine: address.read8(0x3C))
                record(found)
                // A PCI-to-PCI bridge (class 6, subclass 4): its secondary bus is in 0x19.
                if found.classCode == 0x06 && found.subclass == 0x04 {
                    scan(bus: address.read8(0x19), &seen)
                }
            }
        }
    }

    private static func record(_ found: PCIFunction) {
        let a = found.address
        let classWord = UInt32(found.classCode) << 16 | UInt32(found.subclass) << 8 | UInt32(found.interface)
        Log.info(.pci, "pci \(a.bus):\(a.device).\(a.function) vendor \(hex: found.vendor, digits: 4) device \(hex: found.device, digits: 4) class \(hex: classWord, digits: 6) irq \(found.interruptLine) \(name(of: found))")
        guard count < capacity else {
            ignored += 1
            return
        }
        (functions + count).initialize(to: found)
        count += 1
    }

    /// A few words on what a function is, from its class (and ids for the ones we drive).
    static func name(of function: PCIFunction) -> StaticString {
        if function.vendor == VirtioBlock.vendor && function.device == VirtioBlock.legacyDevice { return "(virtio-blk, legacy)" }
        if function.vendor == VirtioBlock.vendor && function.device == VirtioBlock.modernDevice { return "(virtio-blk, modern only: not driven)" }
        switch (function.classCode, function.subclass) {
        case (0x01, 0x01): return "(IDE controller)"
        case (0x01, 0x06): return function.interface == 0x01 ? "(SATA controller, AHCI)" : "(SATA controller)"
        case (0x02, _): return "(network controller)"
        case (0x03, _): return "(display controller)"
        case (0x06, 0x00): return "(host bridge)"
        case (0x06, 0x01): return "(ISA bridge)"
        case (0x06, 0x04): return "(PCI bridge)"
        case (0x06, _): return "(bridge)"
        case (0x0C, 0x05): return "(SMBus controller)"
        default: return ""
        }
    }

    /// The first function matching `matches`, in bus order.
    static func find(_ matches: (PCIFunction) -> Bool) -> PCIFunction? {
        for index in 0..<count where matches(functions[index]) { return functions[index] }
        return nil
    }
}
