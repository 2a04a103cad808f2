// SerialInput.swift - bytes typed on the serial console, for the monitor.
//
// Interrupt-driven, not polled. The UART raises IRQ 4 when a byte arrives; the handler moves
// every byte the UART holds into a ring and wakes the thread reading (the monitor). Why not a
// thread that polls the line-status register: it would have to poll often to feel
// responsive, and every poll takes the CPU from the threads the monitor is there to watch -
// the `stress` workload, the pageout thread - and keeps the idle thread from halting (under
// TCG, a host core spinning at the prompt). With the interrupt, a monitor waiting at its
// prompt costs nothing: it sleeps on a channel until a key is pressed.
//
// Flow control instead of loss: when the ring is full the handler turns the receive interrupt
// off and leaves the rest in the UART, whose FIFO then fills, and QEMU stops taking input
// from the host until there is room; `read` turns the interrupt back on once it has made
// room. Nothing typed is ever dropped, however fast it arrives.
//
// Locking: one CPU. The ring's indices change with interrupts off (the handler runs with them
// off; `read` takes a byte inside withInterruptsDisabled), which is also what makes the sleep
// safe: no byte can arrive between the check for one and the sleep.
// Nothing runs until `start`: before it, IRQ 4 is masked and the UART raises nothing.

enum SerialInput {
    static let irq = 4
    /// Bytes the ring holds (a few lines of type-ahead).
    static let capacity = 512
    static var ring: UnsafeMutablePointer<UInt8>? = nil
    /// Bytes put in (by the handler) and taken out (by `read`), ever; the ring holds their
    /// difference, at index count % capacity.
    static var received = 0
    static var taken = 0
    /// The handler turned the receive interrupt off because the ring was full.
    static var throttled = false
    /// Times the ring filled up (and input waited in the UART).
    static var throttles: UInt64 = 0

    /// The wait channel of a reader: the ring itself.
    static var channel: UnsafeRawPointer { UnsafeRawPointer(ring!) }

    /// Starts taking input: the ring, the handler, the UART's interrupt, IRQ 4 unmasked.
    /// Thread context, after the scheduler and the timer are up; once.
    static func start() {
        guard ring == nil else { return }
        ring = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
        SerialPort.com1.interruptAtEveryReceivedByte()
        SerialPort.com1.setReceiveInterrupt(.on)
        InterruptLines.enable(irq: irq, .isa, serialInterrupt)
    }

    /// The next byte typed; sleeps until there is one.
    static func read() -> UInt8 {
        withInterruptsDisabled {
            while received == taken {
                Scheduler.sleep(on: channel, reason: "serial input")
            }
            let byte = ring![taken % capacity]
            taken += 1
            if throttled {
                // Room again: let the bytes that waited in the UART in.
                throttled = false
                SerialPort.com1.setReceiveInterrupt(.on)
            }
            return byte
        }
    }

    /// Interrupt context, interrupts off: move what the UART holds into the ring.
    fileprivate static func drain() {
        while received - taken < capacity {
            guard let byte = SerialPort.com1.read() else { break }
            ring![received % capacity] = byte
            received += 1
        }
        if received - taken == capacity && !throttled {
            throttled = true
            throttles += 1
            SerialPort.com1.setReceiveInterrupt(.off)
        }
        if received != taken { Scheduler.wakeup(channel) }
    }
}

private func serialInterrupt(_ frame: UnsafeMutablePointer<InterruptFrame>) {
    SerialInput.drain()
    InterruptLines.endOfInterrupt(irq: SerialInput.irq)
}
