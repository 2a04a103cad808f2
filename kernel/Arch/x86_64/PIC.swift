// PIC.swift - the two 8259 interrupt controllers.
//
// Their IRQs 0-15 are remapped to vectors 32-47 (the CPU exceptions own 0-31). Only the IRQs
// the kernel handles are unmasked. Every handled IRQ must be acknowledged (EOI) before another
// of the same or lower priority can arrive; the timer handler does so before it may switch
// threads, since the thread it switches to may not return to the handler for a long time.

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
    }

    static func unmask(irq: Int) {
        if irq < 8 {
            masterData.write8(masterData.read8() & ~UInt8(1 << irq))
        } else {
            slaveData.write8(slaveData.read8() & ~UInt8(1 << (irq - 8)))
            masterData.write8(masterData.read8() & ~UInt8(1 << 2))
        }
    }

    static func endOfInterrupt(irq: Int) {
        if irq >= 8 { slaveCommand.write8(0x20) }
        masterCommand.write8(0x20)
    }
}
