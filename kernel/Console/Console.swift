// Console.swift - where every byte of kernel output goes: COM1 and the log ring.
//
// The ring (klog_buffer in kernel/Arch/x86_64/StaticStorage.S) keeps the newest 64 KiB of output so
// that the gdb helper `klog` can show it when the serial output was lost. Lines are written
// with interrupts disabled, so a line from an interrupt handler never lands inside another.
// Newlines go out as CR LF on the wire (terminals want both) and as LF in the ring.

import ArchSupport

enum Console {
    static func initialize() {
        SerialPort.com1.initialize()
    }

    /// The console as a TextSink, for the formatting functions.
    struct Sink: TextSink {
        mutating func write(_ byte: UInt8) { Console.write(byte) }
    }

    static func write(_ byte: UInt8) {
        if byte == UInt8(ascii: "\n") { SerialPort.com1.write(UInt8(ascii: "\r")) }
        SerialPort.com1.write(byte)
        let written = arch_klog_written()!
        arch_klog_buffer()![Int(written.pointee % arch_klog_size())] = byte
        written.pointee &+= 1
    }

    static func write(_ text: StaticString) {
        var sink = Sink()
        sink.write(text)
    }

    /// Writes `message` and a newline, with no level or tag: KTAP lines and panic reports.
    static func printLine(_ message: LogMessage) {
        withInterruptsDisabled {
            var sink = Sink()
            message.write(into: &sink)
            sink.write(UInt8(ascii: "\n"))
        }
    }
}
