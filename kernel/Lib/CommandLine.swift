// CommandLine.swift - the kernel command line: option table, parser and error messages.
//
// The command line is a list of words separated by spaces: `key=value` options, or a bare
// `key` for flags. Each option is declared once in a table (kernel/Kern/KernelOptions.swift)
// with its kind, default and help text; the parser checks every word against that table and
// reports, by name, anything it cannot use - an unknown option, a missing or malformed value, an
// option given twice. Nothing is silently ignored: the caller logs every error it is handed
// (and the kernel then stops the boot: kernel/Kern/KernelOptions.swift).
// The parser allocates nothing; values are ByteStrings into the caller's copy of the line.

public enum OptionKind {
    /// An unsigned number, decimal or 0x-hexadecimal.
    case unsigned
    /// One word out of a fixed set, written as "a|b|c".
    case choice(StaticString)
    /// A comma-separated list of non-empty names.
    case list
    /// Free text; must not be empty.
    case text
    /// A bare word with no value.
    case flag
}

public struct OptionSpec {
    public let name: StaticString
    public let kind: OptionKind
    public let defaultValue: StaticString
    public let help: StaticString

    public init(_ name: StaticString, _ kind: OptionKind, default defaultValue: StaticString, _ help: StaticString) {
        self.name = name
        self.kind = kind
        self.defaultValue = defaultValue
        self.help = help
    }

    /// How the value is written, for help text and error messages: "<number>", "a|b".
    public func describeValue<S: TextSink>(into sink: inout S) {
        switch kind {
        case .unsigned: sink.write("<number>")
        case .choice(let choices): sink.write(choices)
        case .list: sink.write("<name,...>")
        case .text: sink.write("<text>")
        case .flag: break
        }
    }
}

/// A value the parser accepted, already checked against its option's kind.
public struct OptionValue {
    public let text: ByteString
    /// For `.unsigned` options.
    public let number: UInt64
    /// For `.choice` options: the index of the chosen word in the choice list.
    public let choice: Int
}

public enum CommandLineError {
    case unknownOption(name: ByteString)
    case missingValue(option: OptionSpec)
    case unexpectedValue(option: OptionSpec, value: ByteString)
    case badValue(option: OptionSpec, value: ByteString)
    case duplicate(option: OptionSpec)

    /// One line saying what is wrong and what would be right.
    public func describe<S: TextSink>(into sink: inout S) {
        switch self {
        case .unknownOption(let name):
            sink.write("unknown option '")
            sink.write(name)
            sink.write("'; the option 'help' lists the known ones")
        case .missingValue(let option):
            sink.write("option '")
            sink.write(option.name)
            sink.write("' needs a value: ")
            sink.write(option.name)
            sink.write("=")
            option.describeValue(into: &sink)
        case .unexpectedValue(let option, let value):
            sink.write("option '")
            sink.write(option.name)
            sink.write("' takes no value, but was given '")
            sink.write(value)
            sink.write("'")
        case .badValue(let option, let value):
            sink.write(option.name)
            sink.write("=")
            sink.write(value)
            sink.write(": ")
            switch option.kind {
            case .unsigned: sink.write("expected an unsigned number (decimal, or hexadecimal with 0x)")
            case .choice(let choices):
                sink.write("expected one of ")
                sink.write(choices)
            case .list: sink.write("expected a comma-separated list of non-empty names")
            case .text: sink.write("expected a non-empty value")
            case .flag: sink.write("takes no value")
            }
        case .duplicate(let option):
            sink.write("option '")
            sink.write(option.name)
            sink.write("' given more than once")
        }
    }
}

/// Receives what the parser finds, in command-line order.
public protocol CommandLineHandler {
    mutating func accept(option index: Int, value: OptionValue)
    mutating func reject(_ error: CommandLineError)
}

public enum CommandLineParser {
    /// Parses `line` against `options`. Words are separated by spaces or tabs; with
    /// `.imagePathFirst` the first word is the boot loader's image path, not an option
    /// (kernel/Lib/BootLoader.swift says which loader does what).
    public static func parse<H: CommandLineHandler>(
        _ line: ByteString, options: UnsafeBufferPointer<OptionSpec>, layout: CommandLineLayout, handler: inout H
    ) {
        // A bitmap of options already seen, for duplicate detection without allocating.
        var seen: (UInt64, UInt64) = (0, 0)
        var first = true
        forEachWord(line) { word in
            if first && layout == .imagePathFirst {
                first = false
                return
            }
            first = false
            let equals = word.firstIndex(of: UInt8(ascii: "="))
            let name = equals.map { word.slice(0, $0) } ?? word
            let value = equals.map { word.slice($0 + 1, word.count) }
            guard let index = options.firstIndex(where: { name.equals($0.name) }) else {
                handler.reject(.unknownOption(name: name))
                return
            }
            precondition(index < 128, "CommandLineParser: more than 128 options")
            let bit: UInt64 = 1 << UInt64(index % 64)
            let already = index < 64 ? (seen.0 & bit) != 0 : (seen.1 & bit) != 0
            if index < 64 { seen.0 |= bit } else { seen.1 |= bit }
            let option = options[index]
            if already { handler.reject(.duplicate(option: option)) }
            if case .flag = option.kind {
                if let value = value {
                    handler.reject(.unexpectedValue(option: option, value: value))
                } else {
                    handler.accept(option: index, value: OptionValue(text: .empty, number: 1, choice: 0))
                }
                return
            }
            guard let value = value else {
                handler.reject(.missingValue(option: option))
                return
            }
            if let parsed = check(value, against: option) {
                handler.accept(option: index, value: parsed)
            } else {
                handler.reject(.badValue(option: option, value: value))
            }
        }
    }

    static func check(_ value: ByteString, against option: OptionSpec) -> OptionValue? {
        switch option.kind {
        case .unsigned:
            guard let number = value.parseUnsigned() else { return nil }
            return OptionValue(text: value, number: number, choice: 0)
        case .choice(let choices):
            var found: Int? = nil
            var position = 0
            let list = ByteString(base: choices.utf8Start, count: choices.utf8CodeUnitCount)
            list.forEachPiece(separatedBy: UInt8(ascii: "|")) { piece in
                if found == nil && piece.equals(value) { found = position }
                position += 1
            }
            guard let choice = found else { return nil }
            return OptionValue(text: value, number: 0, choice: choice)
        case .list:
            if value.isEmpty { return nil }
            var valid = true
            value.forEachPiece(separatedBy: UInt8(ascii: ",")) { if $0.isEmpty { valid = false } }
            return valid ? OptionValue(text: value, number: 0, choice: 0) : nil
        case .text:
            return value.isEmpty ? nil : OptionValue(text: value, number: 0, choice: 0)
        case .flag:
            return nil
        }
    }

    static func forEachWord(_ line: ByteString, _ body: (ByteString) -> Void) {
        var start: Int? = nil
        var index = 0
        while index <= line.count {
            let isSpace = index == line.count || line[index] == UInt8(ascii: " ") || line[index] == UInt8(ascii: "\t")
                || line[index] == UInt8(ascii: "\n") || line[index] == UInt8(ascii: "\r")
            if isSpace {
                if let wordStart = start { body(line.slice(wordStart, index)) }
                start = nil
            } else if start == nil {
                start = index
            }
            index += 1
        }
    }
}
