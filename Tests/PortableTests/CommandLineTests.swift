// CommandLineTests.swift - the kernel command-line parser against a small option table.
import Testing
@testable import KernelPortable

struct RecordingHandler: CommandLineHandler {
    var accepted: [(Int, String, UInt64, Int)] = []
    var errors: [String] = []

    mutating func accept(option index: Int, value: OptionValue) {
        var text = StringSink()
        text.write(value.text)
        accepted.append((index, text.text, value.number, value.choice))
    }

    mutating func reject(_ error: CommandLineError) {
        var sink = StringSink()
        error.describe(into: &sink)
        errors.append(sink.text)
    }
}

@Suite struct CommandLineTests {
    static var options: [OptionSpec] { [
        OptionSpec("test", .list, default: "", "suites to run"),
        OptionSpec("seed", .unsigned, default: "1", "seed for randomised tests"),
        OptionSpec("loglevel", .choice("error|warn|info|debug"), default: "info", "log threshold"),
        OptionSpec("help", .flag, default: "", "print the options"),
        OptionSpec("name", .text, default: "x", "free text"),
    ] }

    func parse(_ line: String, layout: CommandLineLayout = .optionsOnly) -> RecordingHandler {
        var handler = RecordingHandler()
        withByteString(line) { bytes in
            Self.options.withUnsafeBufferPointer { table in
                CommandLineParser.parse(bytes, options: table, layout: layout, handler: &handler)
            }
        }
        return handler
    }

    @Test func acceptsWellFormedOptions() {
        let result = parse("test=boot,panic seed=0x2a loglevel=debug help name=hello")
        #expect(result.errors.isEmpty)
        #expect(result.accepted.count == 5)
        #expect(result.accepted[0].0 == 0 && result.accepted[0].1 == "boot,panic")
        #expect(result.accepted[1].0 == 1 && result.accepted[1].2 == 42)
        #expect(result.accepted[2].0 == 2 && result.accepted[2].3 == 3)
        #expect(result.accepted[3].0 == 3)
        #expect(result.accepted[4].1 == "hello")
    }

    @Test func skipsTheImagePathAndExtraSpaces() {
        let result = parse("/build/kernel.mb   seed=7\t loglevel=warn ", layout: .imagePathFirst)
        #expect(result.errors.isEmpty)
        #expect(result.accepted.map { $0.0 } == [1, 2])
    }

    @Test func reportsUnknownOptionByName() {
        let result = parse("bogus=1 seed=3")
        #expect(result.errors == ["unknown option 'bogus'; the option 'help' lists the known ones"])
        #expect(parse("\u{1b}[2J=1").errors == ["unknown option '\\x1b[2J'; the option 'help' lists the known ones"],
                "a name is echoed with its control bytes escaped")
        #expect(result.accepted.count == 1)
    }

    @Test func reportsMalformedNumbers() {
        #expect(parse("seed=abc").errors == ["seed=abc: expected an unsigned number (decimal, or hexadecimal with 0x)"])
        #expect(parse("seed=0x").errors.count == 1)
        #expect(parse("seed=18446744073709551616").errors.count == 1, "overflow is malformed")
        #expect(parse("seed=18446744073709551615").errors.isEmpty)
        #expect(parse("seed=-1").errors.count == 1)
    }

    @Test func reportsEmptyAndMissingValues() {
        #expect(parse("test=").errors == ["test=: expected a comma-separated list of non-empty names"])
        #expect(parse("test=a,,b").errors.count == 1)
        #expect(parse("seed").errors == ["option 'seed' needs a value: seed=<number>"])
        #expect(parse("name=").errors.count == 1)
    }

    @Test func reportsBadChoices() {
        #expect(parse("loglevel=loud").errors == ["loglevel=loud: expected one of error|warn|info|debug"])
    }

    @Test func reportsValueOnAFlagAndDuplicates() {
        #expect(parse("help=yes").errors == ["option 'help' takes no value, but was given 'yes'"])
        let twice = parse("seed=1 seed=2")
        #expect(twice.errors == ["option 'seed' given more than once"])
        #expect(twice.accepted.map { $0.2 } == [1, 2])
    }
}
