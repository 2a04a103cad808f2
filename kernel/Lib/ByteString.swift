// ByteString.swift - a borrowed run of bytes, for text the kernel did not write itself.
//
// The kernel command line and the names in it arrive as bytes in memory that outlives every
// use (the command line is copied once into a static buffer at boot). A ByteString points
// into such memory; it never owns or frees anything, so it is safe to pass around freely
// before any allocator exists.

public struct ByteString {
    public let base: UnsafePointer<UInt8>?
    public let count: Int

    public init(base: UnsafePointer<UInt8>?, count: Int) {
        precondition(count >= 0 && (count == 0 || base != nil), "ByteString: bad bounds")
        self.base = base
        self.count = count
    }

    public static var empty: ByteString { ByteString(base: nil, count: 0) }

    public var isEmpty: Bool { count == 0 }

    public subscript(index: Int) -> UInt8 {
        precondition(index >= 0 && index < count, "ByteString: index out of range")
        return base![index]
    }

    /// The bytes from `start` up to, not including, `end`.
    public func slice(_ start: Int, _ end: Int) -> ByteString {
        precondition(start >= 0 && start <= end && end <= count, "ByteString: bad slice")
        if start == end { return .empty }
        return ByteString(base: base! + start, count: end - start)
    }

    public func firstIndex(of byte: UInt8) -> Int? {
        var index = 0
        while index < count {
            if self[index] == byte { return index }
            index += 1
        }
        return nil
    }

    public func equals(_ text: StaticString) -> Bool {
        guard text.utf8CodeUnitCount == count else { return false }
        let other = text.utf8Start
        for index in 0..<count where self[index] != other[index] { return false }
        return true
    }

    public func equals(_ other: ByteString) -> Bool {
        guard other.count == count else { return false }
        for index in 0..<count where self[index] != other[index] { return false }
        return true
    }

    public func hasPrefix(_ text: StaticString) -> Bool {
        guard text.utf8CodeUnitCount <= count else { return false }
        let other = text.utf8Start
        for index in 0..<text.utf8CodeUnitCount where self[index] != other[index] { return false }
        return true
    }

    /// Parses an unsigned number: decimal, or hexadecimal with a 0x prefix. Nil when the text
    /// is empty, has any other character, or does not fit in 64 bits.
    public func parseUnsigned() -> UInt64? {
        var digits = self
        var radix: UInt64 = 10
        if count > 2 && self[0] == UInt8(ascii: "0") && (self[1] == UInt8(ascii: "x") || self[1] == UInt8(ascii: "X")) {
            digits = slice(2, count)
            radix = 16
        }
        if digits.isEmpty { return nil }
        var value: UInt64 = 0
        for index in 0..<digits.count {
            let byte = digits[index]
            let digit: UInt64
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt64(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f") where radix == 16: digit = UInt64(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F") where radix == 16: digit = UInt64(byte - UInt8(ascii: "A") + 10)
            default: return nil
            }
            let (scaled, overflow1) = value.multipliedReportingOverflow(by: radix)
            let (sum, overflow2) = scaled.addingReportingOverflow(digit)
            if overflow1 || overflow2 { return nil }
            value = sum
        }
        return value
    }

    /// Calls `body` with each piece between `separator` bytes (empty pieces included).
    public func forEachPiece(separatedBy separator: UInt8, _ body: (ByteString) -> Void) {
        var start = 0
        var index = 0
        while index <= count {
            if index == count || self[index] == separator {
                body(slice(start, index))
                start = index + 1
            }
            index += 1
        }
    }
}
