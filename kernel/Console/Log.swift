// Log.swift - the kernel log: levelled, tagged lines on the console.
//
// A line looks like `I pmm: 32512 pages free`: one letter for the level (E error, W warning,
// I info, D debug, P panic), the subsystem tag, then the message. `loglevel=` on the command
// line sets the threshold; panics are always printed. Logging never allocates (LogMessage)
// and writes each line with interrupts disabled (Console.printLine).

enum LogLevel: UInt8, Comparable {
    case panic = 0
    case error
    case warn
    case info
    case debug

    static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }

    var letter: UInt8 {
        switch self {
        case .panic: return UInt8(ascii: "P")
        case .error: return UInt8(ascii: "E")
        case .warn: return UInt8(ascii: "W")
        case .info: return UInt8(ascii: "I")
        case .debug: return UInt8(ascii: "D")
        }
    }
}

/// The subsystem a log line comes from. Each subsystem declares its own in an extension.
struct LogTag {
    let name: StaticString
    init(_ name: StaticString) { self.name = name }

    static let boot = LogTag("boot")
    static let cpu = LogTag("cpu")
    static let cmdline = LogTag("cmdline")
    static let test = LogTag("test")
    static let panic = LogTag("panic")
}

enum Log {
    /// Lines above this level are dropped. Set from `loglevel=` once the command line is parsed.
    static var threshold: LogLevel = .info

    static func error(_ tag: LogTag, _ message: LogMessage) { write(.error, tag, message) }
    static func warn(_ tag: LogTag, _ message: LogMessage) { write(.warn, tag, message) }
    static func info(_ tag: LogTag, _ message: LogMessage) { write(.info, tag, message) }
    static func debug(_ tag: LogTag, _ message: LogMessage) { write(.debug, tag, message) }

    static func write(_ level: LogLevel, _ tag: LogTag, _ message: LogMessage) {
        guard level <= threshold else { return }
        withInterruptsDisabled {
            var sink = Console.Sink()
            sink.write(level.letter)
            sink.write(UInt8(ascii: " "))
            sink.write(tag.name)
            sink.write(": ")
            message.write(into: &sink)
            sink.write(UInt8(ascii: "\n"))
        }
    }
}
