// Format.swift - number and text formatting that needs no heap.
//
// The kernel log must work from the first Swift instruction to the last word of a panic, so
// nothing here allocates: every function writes bytes into a `TextSink`, a tiny protocol that
// the console, the log line buffer and the host unit tests each implement. The functions are
// generic and specialise away in Embedded Swift; there are no existentials.

/// Something bytes of text can be written to.
public protocol TextSink {
    mutating func write(_ byte: UInt8)
}

extension TextSink {
    public mutating func write(_ text: StaticString) {
        text.withUTF8Buffer { for byte in $0 { write(byte) } }
    }

    /// Writes text the kernel did not write itself (the command line and names from it) so
    /// that it cannot drive the terminal: printable ASCII as it is, a backslash doubled, and
    /// every other byte - control bytes such as ESC, DEL, anything above 0x7f - as `\xNN`.
    /// `ESC[2J` on the command line is echoed as `\x1b[2J` instead of clearing the screen.
    public mutating func write(_ text: ByteString) {
        for index in 0..<text.count {
            let byte = text[index]
            if byte == UInt8(ascii: "\\") {
                write(byte)
                write(byte)
            } else if byte >= 0x20 && byte < 0x7f {
                write(byte)
            } else {
                write(UInt8(ascii: "\\"))
                write(UInt8(ascii: "x"))
                Format.hex(UInt64(byte), digits: 2, prefix: false, into: &self)
            }
        }
    }

    public mutating func write(repeating byte: UInt8, count: Int) {
        var remaining = count
        while remaining > 0 { write(byte); remaining -= 1 }
    }
}

public enum Format {
    static let digits: StaticString = "0123456789abcdef"

    @inline(__always)
    static func digit(_ value: UInt64) -> UInt8 {
        digits.utf8Start[Int(value)]
    }

    /// Writes `value` in decimal, right-aligned in `width` columns padded with `pad`.
    /// With `pad` = "0", a minus sign goes before the zeros: -0042.
    public static func decimal<S: TextSink>(_ value: Int64, width: Int = 0, pad: UInt8 = UInt8(ascii: " "), into sink: inout S) {
        // The magnitude of Int64.min does not fit in Int64; UInt64 holds it.
        let negative = value < 0
        let magnitude = negative ? UInt64(bitPattern: 0 &- value) : UInt64(value)
        unsigned(magnitude, base: 10, negative: negative, width: width, pad: pad, into: &sink)
    }

    /// Writes `value` in decimal, right-aligned in `width` columns padded with `pad`.
    public static func decimal<S: TextSink>(_ value: UInt64, width: Int = 0, pad: UInt8 = UInt8(ascii: " "), into sink: inout S) {
        unsigned(value, base: 10, negative: false, width: width, pad: pad, into: &sink)
    }

    /// Writes `value` in lowercase hexadecimal with a `0x` prefix, zero-padded to `digits` digits
    /// (0 means as few digits as the value needs).
    public static func hex<S: TextSink>(_ value: UInt64, digits: Int = 0, prefix: Bool = true, into sink: inout S) {
        if prefix { sink.write("0x") }
        unsigned(value, base: 16, negative: false, width: digits, pad: UInt8(ascii: "0"), into: &sink)
    }

    /// Writes a byte count with a binary unit, exact when it divides: "4 KiB", "1536 KiB", "17 B".
    public static func bytes<S: TextSink>(_ value: UInt64, into sink: inout S) {
        let units: (StaticString, StaticString, StaticString, StaticString, StaticString) = ("B", "KiB", "MiB", "GiB", "TiB")
        var amount = value
        var unit = 0
        while unit < 4 && amount >= 1024 && amount % 1024 == 0 {
            amount /= 1024
            unit += 1
        }
        decimal(amount, into: &sink)
        sink.write(UInt8(ascii: " "))
        switch unit {
        case 0: sink.write(units.0)
        case 1: sink.write(units.1)
        case 2: sink.write(units.2)
        case 3: sink.write(units.3)
        default: sink.write(units.4)
        }
    }

    static func unsigned<S: TextSink>(_ value: UInt64, base: UInt64, negative: Bool, width: Int, pad: UInt8, into sink: inout S) {
        // 64 bits in base 10 need at most 20 digits; base 16 needs 16.
        var buffer: (UInt64, UInt64, UInt64) = (0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &buffer) { scratch in
            var rest = value
            repeat {
                scratch[count] = digit(rest % base)
                rest /= base
                count += 1
            } while rest != 0
            let signWidth = negative ? 1 : 0
            let padding = width - count - signWidth
            if negative && pad == UInt8(ascii: "0") { sink.write(UInt8(ascii: "-")) }
            if padding > 0 { sink.write(repeating: pad, count: padding) }
            if negative && pad != UInt8(ascii: "0") { sink.write(UInt8(ascii: "-")) }
            while count > 0 {
                count -= 1
                sink.write(scratch[count])
            }
        }
    }
}
