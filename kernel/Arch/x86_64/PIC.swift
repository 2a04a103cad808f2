// PIC.swift - the two 8259 interrupt controllers.
//
// Their IRQs 0-15 are remapped to vectors 32-47 (the CPU exceptions own 0-31). Only the IRQs
// the kernel handles are unmasked. Every handled IRQ must be acknowledged (EOI) before another
// of the same or lower priority can arrive; the timer handler does so before it may switch
// threads, since the thread it switches to may not return to the handler for a long time.
//
// Spurious interrupts: a level-triggered PCI line (virtio-blk, AHCI) that drops before the CPU
// acknowledges it - a driver polling its device with interrupts off clears the cause - makes
// the PIC deliver its lowest-priority IRQ instead, 7 on the master or 15 on the slave, with no
// in-service bit set. One on the slave still left the master's cascade input (IRQ 2) in
// service: without an EOI to the master, every slave IRQ - the disks' - would be blocked for
// good. So IRQs 7 and 15 have handlers from the start that tell a spurious one (in-service
// register clear) from a real one and acknowledge exactly what the PIC needs.

enum PIC {
    static let masterCommand = IOPort(0x20)
    static let masterData = IOPort(0x21)
    static let slaveCommand = IOPort(0xA0)
    static let slaveData = IOPort(0xA1)
    static let vectorBase = 32

    static func initialize() {
        masterCommand.write8(0x11)     // ICW1: initialise, expect ICW4
        slaveCommand.write8(0x11)
        masterData.write8(UInt8(vectorBase))        // ICW2: vector offsets
        slaveData.write8(UInt8(vectorBase + 8))
        masterData.write8(0x04)        // ICW3: slave on IRQ2
        slaveData.write8(0x02)
        masterData.write8(0x01)        // ICW4: 8086 mode
        slaveData.write8(0x01)
        masterData.write8(0xFF)        // everything masked until asked for
        slaveData.write8(0xFF)
        Interrupts.register(vector: vectorBase + 7, masterLowestPriority)
        Interrupts.register(vector: vectorBase + 15, slaveLowestPriority)
    }

    /// The in-service register (OCW3 read ISR): the IRQs the PIC has delivered and not had an EOI for.
    static func inService(_ command: IOPort) -> UInt8 {
        command.write8(0x0B)
        return command.read8()
    }

    static func unmask(irq: Int) {
        if irq < 8 {
            masterData.write8(masterData.read8() & ~UInt8(1 << irq))
        } else {
            slaveData.write8(slaveData.read8() & ~UInt8(1 << (irq - 8)))
            masterData.write8(masterData.read8() & ~UInt8(1 << 2))
        }
    }

    /// Masks one line (the cascade line 2 stays as it is: other slave lines may use it).
    static func mask(irq: Int) {
        if irq < 8 {
            masterData.write8(masterData.read8() | UInt8(1 << irq))
        } else {
            slaveData.write8(slaveData.read8() | UInt8(1 << (irq - 8)))
        }
    }

    /// Masks every line on both PICs: the I/O APIC delivers them now (InterruptLines).
    static func maskAll() {
        masterData.write8(0xFF)
        slaveData.write8(0xFF)
    }

    /// The interrupt mask registers, master in the low byte (a set bit: masked).
    static var masks: UInt16 { UInt16(masterData.read8()) | UInt16(slaveData.read8()) << 8 }

    static func endOfInterrupt(irq: Int) {
        if irq >= 8 { slaveCommand.write8(0x20) }
        masterCommand.write8(0x20)
    }
}

/// IRQ 7: spurious when the master has it not in service (nothing to acknowledge); a real IRQ 7
/// has no driver here, and is acknowledged and counted as unexpected.
private func masterLowestPriority(_ frame: UnsafeMutablePointer<InterruptFrame>) {
    Interrupts.spuriousInterrupts += 1
    if PIC.inService(PIC.masterCommand) & 0x80 != 0 { PIC.endOfInterrupt(irq: 7) }
}

/// IRQ 15: spurious when the slave has it not in service - then only the master, whose
/// cascade input did go into service, is acknowledged.
private func slaveLowestPriority(_ frame: UnsafeMutablePointer<InterruptFrame>) {
    Interrupts.spuriousInterrupts += 1
    if PIC.inService(PIC.slaveCommand) & 0x80 != 0 {
        PIC.endOfInterrupt(irq: 15)
    } else {
        PIC.masterCommand.write8(0x20)
    }
}
