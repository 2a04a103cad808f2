// LogMessage.swift - string interpolation that needs no heap.
//
// `Log.info(.boot, "mapped \(pages) pages at \(hex: address)")` builds a LogMessage: the
// compiler calls the append methods below, which format into a fixed 240-byte buffer inside
// the value itself, on the stack. Nothing allocates, so logging works before the heap exists,
// inside allocators, and during a panic. A message longer than the buffer is cut and ends
// in "...". Literal segments are StaticStrings, so no String is ever created.

struct LogMessage: ExpressibleByStringInterpolation {
    typealias StringLiteralType = StaticString

    static let capacity = 240
    // 30 words of inline storage; a tuple is the only fixed-size inline array Swift has.
    typealias Storage = (
        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64
    )

    var storage: Storage = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    var count = 0
    var truncated = false

    init(stringLiteral text: StaticString) {
        var sink = Appender(message: self)
        sink.write(text)
        self = sink.message
    }

    init(stringInterpolation: Interpolation) {
        self = stringInterpolation.appender.message
    }

    init() {}

    mutating func append(_ byte: UInt8) {
        guard count < LogMessage.capacity else {
            truncated = true
            return
        }
        let index = count
        withUnsafeMutableBytes(of: &storage) { $0[index] = byte }
        count += 1
    }

    func write<S: TextSink>(into sink: inout S) {
        var copy = storage
        let length = count
        withUnsafeBytes(of: &copy) { bytes in
            for index in 0..<length { sink.write(bytes[index]) }
        }
        if truncated { sink.write("...") }
    }

    /// True when the text contains `needle` (used to match expected panics).
    func contains(_ needle: StaticString) -> Bool {
        var copy = storage
        let length = count
        let wanted = needle.utf8CodeUnitCount
        if wanted == 0 { return true }
        return withUnsafeBytes(of: &copy) { bytes in
            guard length >= wanted else { return false }
            for start in 0...(length - wanted) {
                var matches = true
                for offset in 0..<wanted where bytes[start + offset] != needle.utf8Start[offset] {
                    matches = false
                    break
                }
                if matches { return true }
            }
            return false
        }
    }

    struct Appender: TextSink {
        var message: LogMessage
        mutating func write(_ byte: UInt8) { message.append(byte) }
    }

    struct Interpolation: StringInterpolationProtocol {
        typealias StringLiteralType = StaticString
        var appender = Appender(message: LogMessage())

        init(literalCapacity: Int, interpolationCount: Int) {}

        mutating func appendLiteral(_ literal: StaticString) { appender.write(literal) }

        /// Any integer, in decimal.
        mutating func appendInterpolation<T: BinaryInteger>(_ value: T) {
            if T.isSigned {
                Format.decimal(Int64(value), into: &appender)
            } else {
                Format.decimal(UInt64(value), into: &appender)
            }
        }

        /// An integer in decimal, right-aligned in `width` columns.
        mutating func appendInterpolation<T: BinaryInteger>(_ value: T, width: Int) {
            if T.isSigned {
                Format.decimal(Int64(value), width: width, into: &appender)
            } else {
                Format.decimal(UInt64(value), width: width, into: &appender)
            }
        }

        /// An integer in hexadecimal with 0x, zero-padded to `digits` digits when given.
        mutating func appendInterpolation<T: BinaryInteger>(hex value: T, digits: Int = 0) {
            Format.hex(UInt64(truncatingIfNeeded: value), digits: digits, into: &appender)
        }

        /// An address: 16 hexadecimal digits.
        mutating func appendInterpolation(address value: UInt64) {
            Format.hex(value, digits: 16, into: &appender)
        }

        /// A byte count with a binary unit: "128 MiB".
        mutating func appendInterpolation(bytes value: UInt64) {
            Format.bytes(value, into: &appender)
        }

        mutating func appendInterpolation(_ text: StaticString) { appender.write(text) }

        mutating func appendInterpolation(_ text: ByteString) { appender.write(text) }

        mutating func appendInterpolation(_ value: Bool) { appender.write(value ? "true" : "false") }

        /// Another message, inline.
        mutating func appendInterpolation(message: LogMessage) { message.write(into: &appender) }

        /// A percentage with two decimals, from a ratio of integers: 1.56%.
        mutating func appendInterpolation(percent numerator: UInt64, of denominator: UInt64) {
            let hundredths = denominator == 0 ? 0 : numerator.multipliedFullWidth(by: 10_000).low / denominator
            Format.decimal(hundredths / 100, into: &appender)
            appender.write(UInt8(ascii: "."))
            Format.decimal(hundredths % 100, width: 2, pad: UInt8(ascii: "0"), into: &appender)
            appender.write(UInt8(ascii: "%"))
        }
    }
}
