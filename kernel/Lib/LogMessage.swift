// LogMessage.swift - string interpolation that needs no heap.
//
// (In kernel/Lib, host-portable, because the portable allocators build their panic messages with it too.)
//
// `Log.info(.boot, "mapped \(pages) pages at \(hex: address)")` builds a LogMessage: the
// compiler calls the append methods below, which format into a fixed 240-byte buffer inside
// the value itself, on the stack. Nothing allocates, so logging works before the heap exists,
// inside allocators, and during a panic. A message longer than the buffer is cut and ends
// in "...". Literal segments are StaticStrings, so no String is ever created.

public struct LogMessage: ExpressibleByStringInterpolation {
    public typealias StringLiteralType = StaticString

    public static let capacity = 240
    // 30 words of inline storage; a tuple is the only fixed-size inline array Swift has.
    public typealias Storage = (
        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64
    )

    public var storage: Storage = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    public var count = 0
    public var truncated = false

    public init(stringLiteral text: StaticString) {
        var sink = Appender(message: self)
        sink.write(text)
        self = sink.message
    }

    public init(stringInterpolation: Interpolation) {
        self = stringInterpolation.appender.message
    }

    public init() {}

    public mutating func append(_ byte: UInt8) {
        guard count < LogMessage.capacity else {
            truncated = true
            return
        }
        let index = count
        withUnsafeMutableBytes(of: &storage) { $0[index] = byte }
        count += 1
    }

    public func write<S: TextSink>(into sink: inout S) {
        var copy = storage
        let length = count
        withUnsafeBytes(of: &copy) { bytes in
            for index in 0..<length { sink.write(bytes[index]) }
        }
        if truncated { sink.write("...") }
    }

    /// True when the text contains `needle` (used to match expected panics).
    public func contains(_ needle: StaticString) -> Bool {
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

    public struct Appender: TextSink {
        public var message: LogMessage
        public init(message: LogMessage) { self.message = message }
        public mutating func write(_ byte: UInt8) { message.append(byte) }
    }

    public struct Interpolation: StringInterpolationProtocol {
        public typealias StringLiteralType = StaticString
        public var appender = Appender(message: LogMessage())

        public init(literalCapacity: Int, interpolationCount: Int) {}

        public mutating func appendLiteral(_ literal: StaticString) { appender.write(literal) }

        /// Any integer, in decimal.
        public mutating func appendInterpolation<T: BinaryInteger>(_ value: T) {
            if T.isSigned {
                Format.decimal(Int64(value), into: &appender)
            } else {
                Format.decimal(UInt64(value), into: &appender)
            }
        }

        /// An integer in decimal, right-aligned in `width` columns.
        public mutating func appendInterpolation<T: BinaryInteger>(_ value: T, width: Int) {
            if T.isSigned {
                Format.decimal(Int64(value), width: width, into: &appender)
            } else {
                Format.decimal(UInt64(value), width: width, into: &appender)
            }
        }

        /// An integer in hexadecimal with 0x, zero-padded to `digits` digits when given.
        public mutating func appendInterpolation<T: BinaryInteger>(hex value: T, digits: Int = 0) {
            Format.hex(UInt64(truncatingIfNeeded: value), digits: digits, into: &appender)
        }

        /// An address: 16 hexadecimal digits.
        public mutating func appendInterpolation(address value: UInt64) {
            Format.hex(value, digits: 16, into: &appender)
        }

        /// A byte count with a binary unit: "128 MiB".
        public mutating func appendInterpolation(bytes value: UInt64) {
            Format.bytes(value, into: &appender)
        }

        public mutating func appendInterpolation(_ text: StaticString) { appender.write(text) }

        public mutating func appendInterpolation(_ text: ByteString) { appender.write(text) }

        public mutating func appendInterpolation(_ value: Bool) { appender.write(value ? "true" : "false") }

        /// Another message, inline.
        public mutating func appendInterpolation(message: LogMessage) { message.write(into: &appender) }

        /// A percentage with two decimals, from a ratio of integers: 1.56%.
        public mutating func appendInterpolation(percent numerator: UInt64, of denominator: UInt64) {
            appendHundredths(denominator == 0 ? 0 : numerator.multipliedFullWidth(by: 10_000).low / denominator)
            appender.write(UInt8(ascii: "%"))
        }

        /// A quotient of integers with two decimals (no floating point in the kernel): 1.07.
        public mutating func appendInterpolation(quotient numerator: UInt64, by denominator: UInt64) {
            appendHundredths(denominator == 0 ? 0 : numerator.multipliedFullWidth(by: 100).low / denominator)
        }

        mutating func appendHundredths(_ hundredths: UInt64) {
            Format.decimal(hundredths / 100, into: &appender)
            appender.write(UInt8(ascii: "."))
            Format.decimal(hundredths % 100, width: 2, pad: UInt8(ascii: "0"), into: &appender)
        }
    }
}

extension LogMessage {
    /// The text as a String, for host-side tests and tools.
    public var bytes: [UInt8] {
        var copy = storage
        let length = count
        return withUnsafeBytes(of: &copy) { Array($0.prefix(length)) }
    }
}
