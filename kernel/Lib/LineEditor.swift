// LineEditor.swift - one line of typed input, edited as a terminal user expects.
//
// The monitor (kernel/Monitor/) feeds it the bytes that arrive on the serial line, one at a
// time, and it says what each did: the line goes on, is complete, was thrown away. It writes
// the echo into a TextSink, so the person typing sees what they typed:
//
//   printable ASCII     stored and echoed as it is
//   Enter (CR or LF)    the line is complete; CR LF, as a terminal may send it, is one Enter
//   Backspace (BS, DEL) the last byte is removed and its echo erased ("\b \b" per column)
//   ^U                  the whole line is erased
//   ^C                  the line is thrown away ("^C" and a new line)
//   any other byte      stored, and echoed the way the console shows text it did not write
//                       itself (TextSink.write(ByteString)): ESC as `\x1b`, a backslash as
//                       `\\` - so a stray escape sequence cannot drive the terminal, and
//                       Backspace erases exactly the columns its echo took
//
// A line holds at most `capacity` bytes. Bytes beyond that are neither stored nor echoed, and
// the Enter that ends such a line reports `.tooLong` instead of running a cut command.
// Nothing here allocates: the line lives inside the value (a tuple, like LogMessage's), and is
// lent out as a ByteString for the duration of `withLine`.

/// What one byte of input did to the line.
public enum LineEvent: Equatable {
    /// The line goes on (or nothing happened).
    case editing
    /// Enter: the line is complete. Read it with `withLine`, then `clear()`.
    case entered
    /// ^C: the line was thrown away.
    case cancelled
    /// Enter on a line that ran past `capacity`: thrown away, since a cut command is not the
    /// command that was typed.
    case tooLong
}

public struct LineEditor {
    public static let capacity = 128
    // 16 words of inline storage: capacity bytes.
    typealias Storage = (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                         UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)

    static let backspace: UInt8 = 0x08
    static let delete: UInt8 = 0x7F
    static let carriageReturn: UInt8 = 0x0D
    static let lineFeed: UInt8 = 0x0A
    static let controlU: UInt8 = 0x15
    static let controlC: UInt8 = 0x03

    var storage: Storage = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    /// Bytes in the line.
    public private(set) var count = 0
    /// A byte was dropped because the line was full.
    public private(set) var overflowed = false
    /// The previous byte was a CR: an LF now is the second half of the same Enter.
    var afterCarriageReturn = false

    public init() {}

    /// Takes one byte of input, writes its echo into `echo`, and says what it did.
    public mutating func feed<S: TextSink>(_ byte: UInt8, echo: inout S) -> LineEvent {
        let followsCarriageReturn = afterCarriageReturn
        afterCarriageReturn = byte == LineEditor.carriageReturn
        switch byte {
        case LineEditor.carriageReturn, LineEditor.lineFeed:
            if byte == LineEditor.lineFeed && followsCarriageReturn { return .editing }
            echo.write(UInt8(ascii: "\n"))
            return overflowed ? .tooLong : .entered
        case LineEditor.backspace, LineEditor.delete:
            if count > 0 {
                let last = self[count - 1]
                count -= 1
                erase(columns: LineEditor.echoWidth(last), &echo)
            }
            return .editing
        case LineEditor.controlU:
            var columns = 0
            for index in 0..<count { columns += LineEditor.echoWidth(self[index]) }
            erase(columns: columns, &echo)
            clear()
            return .editing
        case LineEditor.controlC:
            echo.write("^C\n")
            clear()
            return .cancelled
        default:
            guard count < LineEditor.capacity else {
                overflowed = true
                return .editing
            }
            let index = count
            withUnsafeMutableBytes(of: &storage) { $0[index] = byte }
            count += 1
            var one = byte
            withUnsafePointer(to: &one) { echo.write(ByteString(base: $0, count: 1)) }
            return .editing
        }
    }

    /// The byte at `index` of the line.
    public subscript(index: Int) -> UInt8 {
        precondition(index >= 0 && index < count, "LineEditor: index out of range")
        return withUnsafeBytes(of: storage) { $0[index] }
    }

    /// Lends the line to `body` as a ByteString, valid only during the call.
    public func withLine<R>(_ body: (ByteString) -> R) -> R {
        var copy = storage
        let length = count
        return withUnsafeBytes(of: &copy) { bytes in
            body(length == 0 ? .empty : ByteString(base: bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), count: length))
        }
    }

    /// Starts a new, empty line.
    public mutating func clear() {
        count = 0
        overflowed = false
    }

    /// Columns the echo of `byte` takes: 1 for printable ASCII, 2 for a backslash (`\\`),
    /// 4 for anything else (`\xNN`) - what TextSink.write(ByteString) writes.
    public static func echoWidth(_ byte: UInt8) -> Int {
        if byte == UInt8(ascii: "\\") { return 2 }
        return byte >= 0x20 && byte < 0x7F ? 1 : 4
    }

    private func erase<S: TextSink>(columns: Int, _ echo: inout S) {
        for _ in 0..<columns {
            echo.write(LineEditor.backspace)
            echo.write(UInt8(ascii: " "))
            echo.write(LineEditor.backspace)
        }
    }
}
