// Serial.swift - the 16550 UART on COM1, the kernel's console.
//
// Polled output: the kernel writes a byte when the transmit holding register is empty. No
// interrupts and no buffering, so it works in any context - early boot, an interrupt handler,
// a panic with memory in any state.
// Input is read only by the monitor, through the receive interrupt (kernel/Console/SerialInput.swift):
// `setReceiveInterrupt` turns it on and off, `read` takes a byte the UART holds.

struct SerialPort {
    let base: IOPort

    static let com1 = SerialPort(base: IOPort(0x3F8))

    // Register offsets from the base port.
    private var data: IOPort { base }
    private var interruptEnable: IOPort { base.offset(1) }
    private var fifoControl: IOPort { base.offset(2) }
    private var lineControl: IOPort { base.offset(3) }
    private var modemControl: IOPort { base.offset(4) }
    private var lineStatus: IOPort { base.offset(5) }

    /// 115200 baud, 8 data bits, no parity, one stop bit, FIFOs on, no interrupts.
    func initialize() {
        interruptEnable.write8(0x00)
        lineControl.write8(0x80)      // DLAB: the next two registers are the divisor
        data.write8(0x01)             // divisor 1 = 115200 baud
        interruptEnable.write8(0x00)
        lineControl.write8(0x03)      // 8N1, DLAB off
        fifoControl.write8(0xC7)      // enable and clear FIFOs, 14-byte threshold
        modemControl.write8(0x03)     // DTR, RTS
    }

    /// Whether the UART raises its interrupt (IRQ 4 for COM1) when a byte has arrived.
    enum ReceiveInterrupt {
        case on
        case off
    }

    /// Makes the receive FIFO interrupt at its first byte instead of its 14th, so that a typed
    /// key reaches the monitor at once. Keeps what the FIFO holds (bits 1-2 clear: no reset).
    func interruptAtEveryReceivedByte() {
        fifoControl.write8(0x01)      // FIFOs stay on, receive trigger level 1 byte
    }

    /// Turns the "received data available" interrupt on or off; turning it on while bytes
    /// wait raises the interrupt at once (the UART re-evaluates its interrupt on the write).
    func setReceiveInterrupt(_ setting: ReceiveInterrupt) {
        interruptEnable.write8(setting == .on ? 0x01 : 0x00)
    }

    /// A byte the UART has received, or nil when it holds none.
    func read() -> UInt8? {
        guard lineStatus.read8() & 0x01 != 0 else { return nil }
        return data.read8()
    }

    func write(_ byte: UInt8) {
        while lineStatus.read8() & 0x20 == 0 { CPU.pause() }
        data.write8(byte)
    }
}
