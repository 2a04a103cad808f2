// MonitorCommands.swift - the monitor's command language: the table of commands and the parser.
//
// A command is a line of words separated by spaces: the command's name, then its arguments.
// Each command is declared once, in `MonitorVerb` below, with how its arguments are written
// and one line of help; `help` prints that table, so it lists every command there is. The
// parser turns a line into a `MonitorCommand` whose arguments are already checked as far as
// text can check them - a number is a number, an address is page-aligned, a choice is one of
// its words - or into a `MonitorCommandError` that says what is wrong and what would be right.
// What only the running kernel knows (whether an address is a page it manages) is checked by
// the kernel side (kernel/Monitor/).
//
// Portable and allocation-free like the kernel command-line parser (CommandLine.swift): the
// host unit tests run exactly this file. To add a command: a case in MonitorVerb with its
// spec, a case in MonitorCommand, a line in `MonitorCommandParser.parse`, and the code that
// runs it in kernel/Monitor/Monitor.swift (docs/monitor.md).

/// How a command is written and what it does, for `help` and error messages.
public struct MonitorCommandSpec {
    public let name: StaticString
    /// The arguments as `help` shows them: "[kmem|pageable|pager]", "ADDR", "" for none.
    public let arguments: StaticString
    public let help: StaticString

    public init(_ name: StaticString, _ arguments: StaticString, _ help: StaticString) {
        self.name = name
        self.arguments = arguments
        self.help = help
    }
}

/// Every command, in the order `help` lists them.
public enum MonitorVerb: Int, CaseIterable {
    case help
    case zones
    case buddy
    case map
    case page
    case threads
    case reserves
    case stress
    case trace
    case exit

    /// The command called `word`, if any. By raw value rather than through allCases, which
    /// would build an array: the parser allocates nothing, so a command changes no zone count
    /// before the table it prints (the monitor scenario compares those counts with gdb's).
    public static func named(_ word: ByteString) -> MonitorVerb? {
        var raw = 0
        while let verb = MonitorVerb(rawValue: raw) {
            if word.equals(verb.spec.name) { return verb }
            raw += 1
        }
        return nil
    }

    public var spec: MonitorCommandSpec {
        switch self {
        case .help: return MonitorCommandSpec("help", "", "list the commands")
        case .zones: return MonitorCommandSpec("zones", "", "the zone table: object size, in use, free, slabs, reserve (as gdb's kzones)")
        case .buddy: return MonitorCommandSpec("buddy", "", "free blocks per buddy order and the free-page thresholds (as kbuddy)")
        case .map: return MonitorCommandSpec("map", "[kmem|pageable|pager]", "the entries of kernel_map, or of one of its submaps (as kmap)")
        case .page: return MonitorCommandSpec("page", "ADDR", "a physical page: its descriptor and every address it is mapped at (as kpage)")
        case .threads: return MonitorCommandSpec("threads", "", "every thread, its state and what it waits for (as kthreads)")
        case .reserves: return MonitorCommandSpec("reserves", "", "the pageout path's reserves: protections, each zone against its bound, the page tiers")
        case .stress: return MonitorCommandSpec("stress", "SECONDS", "start the objects pressure workload in the background for 1 to 600 s (needs a swap disk)")
        case .trace: return MonitorCommandSpec("trace", "on|off", "start or stop the memory-pressure samples (T lines) of trace=on")
        case .exit: return MonitorCommandSpec("exit", "", "leave the monitor: QEMU exits with the status of what ran before it")
        }
    }
}

/// The maps `map` can show.
public enum MonitorMap: Int, CaseIterable {
    case kernelMap
    case kmem
    case pageable
    case pager

    /// The map called `word`, if any (without allocating, like MonitorVerb.named).
    public static func named(_ word: ByteString) -> MonitorMap? {
        var raw = 0
        while let map = MonitorMap(rawValue: raw) {
            if word.equals(map.name) { return map }
            raw += 1
        }
        return nil
    }

    public var name: StaticString {
        switch self {
        case .kernelMap: return "kernel_map"
        case .kmem: return "kmem"
        case .pageable: return "pageable"
        case .pager: return "pager"
        }
    }
}

/// The argument of `trace`.
public enum MonitorSwitch: Equatable {
    case on
    case off
}

/// A parsed command with its checked arguments.
public enum MonitorCommand: Equatable {
    case help
    case zones
    case buddy
    case map(MonitorMap)
    /// A page-aligned physical address (whether the kernel manages it is for the kernel to say).
    case page(PhysicalAddress)
    case threads
    case reserves
    case stress(seconds: UInt64)
    case trace(MonitorSwitch)
    case exit
}

/// Why an argument was refused.
public enum MonitorArgumentProblem: Equatable {
    /// Not an unsigned number (decimal, or hexadecimal with 0x).
    case notANumber
    /// A physical address that is not a multiple of the page size.
    case notPageAligned
    /// A number outside `range`.
    case outOfRange(ClosedRange<UInt64>)
    /// Not one of the command's words ("on|off").
    case notAChoice
}

public enum MonitorCommandError {
    case unknownCommand(ByteString)
    case missingArgument(MonitorVerb)
    case extraArgument(MonitorVerb, ByteString)
    case badArgument(MonitorVerb, ByteString, MonitorArgumentProblem)

    /// One line saying what is wrong and what would be right.
    public func describe<S: TextSink>(into sink: inout S) {
        switch self {
        case .unknownCommand(let name):
            sink.write("unknown command '")
            sink.write(name)
            sink.write("'; 'help' lists the commands")
        case .missingArgument(let verb):
            sink.write(verb.spec.name)
            sink.write(": needs an argument: ")
            MonitorCommandParser.writeUsage(verb, into: &sink)
        case .extraArgument(let verb, let word):
            sink.write(verb.spec.name)
            sink.write(": unexpected argument '")
            sink.write(word)
            sink.write("': ")
            MonitorCommandParser.writeUsage(verb, into: &sink)
        case .badArgument(let verb, let word, let problem):
            sink.write(verb.spec.name)
            sink.write(": '")
            sink.write(word)
            sink.write("' ")
            switch problem {
            case .notANumber:
                sink.write("is not a number (decimal, or hexadecimal with 0x)")
            case .notPageAligned:
                sink.write("is not page-aligned (a multiple of ")
                Format.decimal(pageSize, into: &sink)
                sink.write(" bytes)")
            case .outOfRange(let range):
                sink.write("is out of range: from ")
                Format.decimal(range.lowerBound, into: &sink)
                sink.write(" to ")
                Format.decimal(range.upperBound, into: &sink)
            case .notAChoice:
                sink.write("is not one of ")
                sink.write(verb.spec.arguments)
            }
            sink.write("; usage: ")
            MonitorCommandParser.writeUsage(verb, into: &sink)
        }
    }
}

/// What a line turned out to be.
public enum MonitorParse {
    /// Nothing but spaces: no command, just a new prompt.
    case empty
    case command(MonitorCommand)
    case error(MonitorCommandError)
}

public enum MonitorCommandParser {
    /// The seconds `stress` accepts: at least one, at most ten minutes.
    public static let stressSeconds: ClosedRange<UInt64> = 1...600

    public static func parse(_ line: ByteString) -> MonitorParse {
        var words: (ByteString, ByteString, ByteString) = (.empty, .empty, .empty)
        var count = 0
        CommandLineParser.forEachWord(line) { word in
            switch count {
            case 0: words.0 = word
            case 1: words.1 = word
            case 2: words.2 = word
            default: break
            }
            count += 1
        }
        if count == 0 { return .empty }
        guard let verb = MonitorVerb.named(words.0) else {
            return .error(.unknownCommand(words.0))
        }
        // Every command takes at most one argument.
        if count > 2 { return .error(.extraArgument(verb, words.2)) }
        let argument: ByteString? = count == 2 ? words.1 : nil
        switch verb {
        case .help: return noArgument(.help, argument, .help)
        case .zones: return noArgument(.zones, argument, .zones)
        case .buddy: return noArgument(.buddy, argument, .buddy)
        case .threads: return noArgument(.threads, argument, .threads)
        case .reserves: return noArgument(.reserves, argument, .reserves)
        case .exit: return noArgument(.exit, argument, .exit)
        case .map:
            guard let word = argument else { return .command(.map(.kernelMap)) }
            // kernel_map is the default, and may be named too.
            guard let map = MonitorMap.named(word) else {
                return .error(.badArgument(.map, word, .notAChoice))
            }
            return .command(.map(map))
        case .page:
            guard let word = argument else { return .error(.missingArgument(.page)) }
            guard let value = word.parseUnsigned() else { return .error(.badArgument(.page, word, .notANumber)) }
            let address = PhysicalAddress(value)
            guard address.isPageAligned else { return .error(.badArgument(.page, word, .notPageAligned)) }
            return .command(.page(address))
        case .stress:
            guard let word = argument else { return .error(.missingArgument(.stress)) }
            guard let seconds = word.parseUnsigned() else { return .error(.badArgument(.stress, word, .notANumber)) }
            guard stressSeconds.contains(seconds) else { return .error(.badArgument(.stress, word, .outOfRange(stressSeconds))) }
            return .command(.stress(seconds: seconds))
        case .trace:
            guard let word = argument else { return .error(.missingArgument(.trace)) }
            if word.equals("on") { return .command(.trace(.on)) }
            if word.equals("off") { return .command(.trace(.off)) }
            return .error(.badArgument(.trace, word, .notAChoice))
        }
    }

    private static func noArgument(_ verb: MonitorVerb, _ argument: ByteString?, _ command: MonitorCommand) -> MonitorParse {
        if let word = argument { return .error(.extraArgument(verb, word)) }
        return .command(command)
    }

    /// "page ADDR", "zones" - the command as `help` shows it.
    public static func writeUsage<S: TextSink>(_ verb: MonitorVerb, into sink: inout S) {
        sink.write(verb.spec.name)
        if verb.spec.arguments.utf8CodeUnitCount > 0 {
            sink.write(UInt8(ascii: " "))
            sink.write(verb.spec.arguments)
        }
    }

    /// The help table: a heading, then one line per command - its usage padded to a column,
    /// then what it does - each line ending in a newline.
    public static func writeHelp<S: TextSink>(into sink: inout S) {
        sink.write("commands:\n")
        var raw = 0
        while let verb = MonitorVerb(rawValue: raw) {
            raw += 1
            var usage = ColumnCounter()
            writeUsage(verb, into: &usage)
            sink.write("  ")
            writeUsage(verb, into: &sink)
            sink.write(repeating: UInt8(ascii: " "), count: max(1, 30 - usage.columns))
            sink.write(verb.spec.help)
            sink.write(UInt8(ascii: "\n"))
        }
    }

    /// Counts what is written, to pad it to a column.
    struct ColumnCounter: TextSink {
        var columns = 0
        mutating func write(_ byte: UInt8) { columns += 1 }
    }
}
