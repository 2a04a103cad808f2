// IOAPIC.swift - the I/O APIC: where device interrupt lines enter the APIC system.
//
// Each I/O APIC has a window of memory-mapped registers (the firmware gives its physical
// address, normally 0xfec00000): IOREGSEL at offset 0 selects a register, IOWIN at 0x10 reads
// or writes it, 32 bits at a time. Register 1 is the version, whose bits 16-23 are the last
// redirection entry's number; entries from register 0x10 on, two registers (64 bits) each.
// An entry routes one input - one global system interrupt (GSI), numbered from the I/O APIC's
// interruptBase - to a vector on a CPU:
//   bits 0-7 vector, 8-10 delivery (000 fixed), 11 destination mode (0 physical), 13 polarity
//   (1 active low), 15 trigger (1 level), 16 mask; bits 56-63 the destination's APIC id.
// A level-triggered entry stays blocked (remote IRR) until the CPU's local APIC EOI, which the
// local APIC broadcasts to the I/O APICs: so a level-triggered handler acknowledges the local
// APIC, never the 8259s. InterruptLines decides what is routed where; this file only writes
// entries. Mapped once at boot (DeviceMemory) and never unmapped.
import ArchSupport

/// How an interrupt input signals: the edge of a pulse (ISA devices, the PIT), or a level held
/// until the device is served (PCI INTx lines).
enum TriggerMode {
    case edge
    case level
}

/// Which electrical level means "interrupt".
enum Polarity {
    case activeHigh
    case activeLow
}

struct IOAPICUnit {
    let registers: UnsafeMutableRawPointer
    let interruptBase: UInt32
    /// Redirection entries (the version register's maximum + 1).
    var inputs: UInt32
    let id: UInt8

    func read(_ register: UInt32) -> UInt32 {
        arch_mmio_write32(UInt64(UInt(bitPattern: registers)), register)
        return arch_mmio_read32(UInt64(UInt(bitPattern: registers)) + 0x10)
    }

    func write(_ register: UInt32, _ value: UInt32) {
        arch_mmio_write32(UInt64(UInt(bitPattern: registers)), register)
        arch_mmio_write32(UInt64(UInt(bitPattern: registers)) + 0x10, value)
    }

    func handles(_ gsi: UInt32) -> Bool { gsi >= interruptBase && gsi < interruptBase + inputs }

    /// Entry `input`'s low and high words.
    func entry(_ input: UInt32) -> (low: UInt32, high: UInt32) {
        (read(0x10 + 2 * input), read(0x11 + 2 * input))
    }

    /// Routes `input` to `vector` on the CPU with `destination` as its APIC id; masked or not.
    func route(_ input: UInt32, vector: Int, _ trigger: TriggerMode, _ polarity: Polarity, destination: UInt32, masked: Bool) {
        var low = UInt32(vector & 0xFF)
        if polarity == .activeLow { low |= 1 << 13 }
        if trigger == .level { low |= 1 << 15 }
        if masked { low |= IOAPIC.maskBit }
        // Masked first, so that the entry is never live half written.
        write(0x10 + 2 * input, IOAPIC.maskBit)
        write(0x11 + 2 * input, destination << 24)
        write(0x10 + 2 * input, low)
    }
}

enum IOAPIC {
    static let maskBit: UInt32 = 1 << 16
    /// Enough for every machine QEMU makes (one I/O APIC; q35 and pc alike).
    static let capacity = 8
    static var units: [IOAPICUnit] = []

    /// Maps the I/O APICs the firmware listed and masks every input. False - with a log line
    /// saying why - when there is none or one cannot be mapped.
    static func initialize(_ entries: [IOAPICEntry]) -> Bool {
        guard !entries.isEmpty else {
            Log.warn(.cpu, "interrupts: the firmware lists no I/O APIC")
            return false
        }
        for entry in entries.prefix(capacity) {
            guard let registers = DeviceMemory.map(PhysicalAddress(entry.address), bytes: 0x20) else {
                Log.warn(.cpu, "interrupts: the I/O APIC at \(address: entry.address) cannot be mapped")
                return false
            }
            var unit = IOAPICUnit(registers: registers, interruptBase: entry.interruptBase, inputs: 0, id: entry.id)
            let version = unit.read(1)
            unit.inputs = ((version >> 16) & 0xFF) + 1
            guard version != 0xFFFF_FFFF, unit.inputs > 1 else {
                Log.warn(.cpu, "interrupts: the I/O APIC at \(address: entry.address) does not answer (version register \(hex: version))")
                return false
            }
            let inputs = unit.inputs
            for input in 0..<inputs { unit.write(0x10 + 2 * input, maskBit) }
            units.append(unit)
            Log.info(.cpu, "interrupts: I/O APIC id \(entry.id) at \(address: entry.address), version \(hex: version & 0xFF), global interrupts \(entry.interruptBase)-\(entry.interruptBase + inputs - 1), all masked")
        }
        return true
    }

    static func unit(for gsi: UInt32) -> IOAPICUnit? {
        units.first { $0.handles(gsi) }
    }
}
