// FormatTests.swift - the log formatter: decimal, hexadecimal, signs, extremes, padding.
import Testing
@testable import KernelPortable

@Suite struct FormatTests {
    func formatted(_ body: (inout StringSink) -> Void) -> String {
        var sink = StringSink()
        body(&sink)
        return sink.text
    }

    @Test func decimalOfZeroAndSmallNumbers() {
        #expect(formatted { Format.decimal(UInt64(0), into: &$0) } == "0")
        #expect(formatted { Format.decimal(UInt64(7), into: &$0) } == "7")
        #expect(formatted { Format.decimal(UInt64(1234567890), into: &$0) } == "1234567890")
    }

    @Test func decimalOfNegativeNumbers() {
        #expect(formatted { Format.decimal(Int64(-1), into: &$0) } == "-1")
        #expect(formatted { Format.decimal(Int64(-9876), into: &$0) } == "-9876")
        #expect(formatted { Format.decimal(Int64.min, into: &$0) } == "-9223372036854775808")
        #expect(formatted { Format.decimal(Int64.max, into: &$0) } == "9223372036854775807")
    }

    @Test func decimalOfUInt64Max() {
        #expect(formatted { Format.decimal(UInt64.max, into: &$0) } == "18446744073709551615")
    }

    @Test func hexadecimal() {
        #expect(formatted { Format.hex(0, into: &$0) } == "0x0")
        #expect(formatted { Format.hex(0xdead_beef, into: &$0) } == "0xdeadbeef")
        #expect(formatted { Format.hex(UInt64.max, into: &$0) } == "0xffffffffffffffff")
        #expect(formatted { Format.hex(0x1000, digits: 16, into: &$0) } == "0x0000000000001000")
        #expect(formatted { Format.hex(0xabc, prefix: false, into: &$0) } == "abc")
    }

    @Test func paddingWithSpacesAndZeros() {
        #expect(formatted { Format.decimal(UInt64(42), width: 6, into: &$0) } == "    42")
        #expect(formatted { Format.decimal(Int64(-42), width: 6, into: &$0) } == "   -42")
        #expect(formatted { Format.decimal(Int64(-42), width: 6, pad: UInt8(ascii: "0"), into: &$0) } == "-00042")
        #expect(formatted { Format.decimal(UInt64(123456), width: 3, into: &$0) } == "123456")
    }

    @Test func byteCounts() {
        #expect(formatted { Format.bytes(0, into: &$0) } == "0 B")
        #expect(formatted { Format.bytes(17, into: &$0) } == "17 B")
        #expect(formatted { Format.bytes(4096, into: &$0) } == "4 KiB")
        #expect(formatted { Format.bytes(1536 * 1024, into: &$0) } == "1536 KiB")
        #expect(formatted { Format.bytes(128 << 20, into: &$0) } == "128 MiB")
        #expect(formatted { Format.bytes(4 << 30, into: &$0) } == "4 GiB")
    }

    /// Text from the command line cannot drive the terminal it is echoed to.
    @Test func bytesFromOutsideAreEscaped() {
        func echoed(_ text: String) -> String { withByteString(text) { bytes in formatted { $0.write(bytes) } } }
        #expect(echoed("test=boot,panic") == "test=boot,panic")
        #expect(echoed("\u{1b}[2J") == "\\x1b[2J")
        #expect(echoed("a\tb\u{7f}\r\n") == "a\\x09b\\x7f\\x0d\\x0a")
        #expect(echoed("\u{9b}") == "\\xc2\\x9b", "a C1 control is escaped byte by byte, as UTF-8 or not")
        #expect(echoed("C:\\x1b") == "C:\\\\x1b", "a backslash is doubled, so an escape cannot be forged")
        let message: LogMessage = withByteString("\u{1b}c") { "name '\($0)'" }
        #expect(String(decoding: message.bytes, as: UTF8.self) == "name '\\x1bc'")
    }
}
