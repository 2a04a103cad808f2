// MonitorTests.swift - the monitor's line editor and command parser (kernel/Lib/LineEditor.swift,
// kernel/Lib/MonitorCommands.swift), fed bytes as the serial line delivers them.
import Testing
@testable import KernelPortable

/// Feeds `input` to a fresh editor; returns the events, the echo and the final line.
func edit(_ input: [UInt8]) -> (events: [LineEvent], echo: String, line: String) {
    var editor = LineEditor()
    var echo = StringSink()
    var events: [LineEvent] = []
    for byte in input { events.append(editor.feed(byte, echo: &echo)) }
    let line = editor.withLine { bytes in (0..<bytes.count).map { bytes[$0] } }
    return (events, echo.text, String(decoding: line, as: UTF8.self))
}

func parse(_ line: String) -> MonitorParse {
    withByteString(line) { MonitorCommandParser.parse($0) }
}

func command(_ line: String) -> MonitorCommand? {
    if case .command(let command) = parse(line) { return command }
    return nil
}

/// The error message for `line`, or nil when it parses. Described inside the call: the error
/// holds ByteStrings into the line, which lives only that long (as in the kernel's withLine).
func parseError(_ line: String) -> String? {
    withByteString(line) { bytes in
        guard case .error(let error) = MonitorCommandParser.parse(bytes) else { return nil }
        var sink = StringSink()
        error.describe(into: &sink)
        return sink.text
    }
}

@Suite struct LineEditorTests {
    @Test func printableBytesAreStoredAndEchoedAsTyped() {
        let result = edit(Array("zones".utf8))
        #expect(result.line == "zones")
        #expect(result.echo == "zones")
        #expect(result.events.allSatisfy { $0 == .editing })
    }

    @Test func carriageReturnEndsTheLineAndALineFeedAfterItIsTheSameEnter() {
        let result = edit(Array("buddy\r\n".utf8))
        #expect(result.events.suffix(2) == [.entered, .editing])
        #expect(result.echo == "buddy\n")
        #expect(result.line == "buddy")
        // A line feed alone ends a line too.
        #expect(edit(Array("x\n".utf8)).events.last == .entered)
        // Two CRs are two Enters.
        #expect(edit([0x0D, 0x0D]).events == [.entered, .entered])
    }

    @Test func backspaceAndDeleteRemoveTheLastByteAndEraseItsEcho() {
        let result = edit(Array("zonx".utf8) + [0x7F] + Array("es".utf8))
        #expect(result.line == "zones")
        #expect(result.echo == "zonx\u{8} \u{8}es")
        let bs = edit(Array("ab".utf8) + [0x08, 0x08, 0x08] + Array("c".utf8))
        #expect(bs.line == "c")
        // A backspace on an empty line echoes nothing.
        #expect(bs.echo == "ab\u{8} \u{8}\u{8} \u{8}c")
    }

    @Test func controlBytesAreStoredButEchoedEscaped() {
        let result = edit([0x1B, UInt8(ascii: "["), UInt8(ascii: "A"), UInt8(ascii: "\\")])
        #expect(result.echo == "\\x1b[A\\\\")
        #expect(result.line == "\u{1b}[A\\")
        // Backspace erases as many columns as the echo took: 2 for a backslash, 4 for ESC.
        let erased = edit([0x1B, UInt8(ascii: "\\"), 0x7F, 0x7F])
        #expect(erased.line == "")
        #expect(erased.echo == "\\x1b\\\\" + String(repeating: "\u{8} \u{8}", count: 6))
        #expect(!erased.echo.contains("\u{1b}"))
    }

    @Test func controlUErasesTheWholeLine() {
        let result = edit(Array("map k".utf8) + [0x15] + Array("help".utf8))
        #expect(result.line == "help")
        #expect(result.echo == "map k" + String(repeating: "\u{8} \u{8}", count: 5) + "help")
    }

    @Test func controlCThrowsTheLineAway() {
        let result = edit(Array("stress 9".utf8) + [0x03])
        #expect(result.events.last == .cancelled)
        #expect(result.line == "")
        #expect(result.echo.hasSuffix("^C\n"))
    }

    @Test func aLineLongerThanTheCapacityIsReportedNotCut() {
        let long = [UInt8](repeating: UInt8(ascii: "a"), count: LineEditor.capacity + 5)
        let result = edit(long + [0x0D])
        #expect(result.events.last == .tooLong)
        #expect(result.line.count == LineEditor.capacity)
        // Only what was stored was echoed.
        #expect(result.echo == String(repeating: "a", count: LineEditor.capacity) + "\n")
        // After clear() the editor takes lines again.
        var editor = LineEditor()
        var echo = StringSink()
        for byte in long { _ = editor.feed(byte, echo: &echo) }
        editor.clear()
        #expect(!editor.overflowed)
        #expect(editor.feed(UInt8(ascii: "x"), echo: &echo) == .editing)
        #expect(editor.feed(0x0D, echo: &echo) == .entered)
    }
}

@Suite struct MonitorCommandTests {
    @Test func commandsWithoutArgumentsParse() {
        #expect(command("help") == .help)
        #expect(command("zones") == .zones)
        #expect(command("  buddy  ") == .buddy)
        #expect(command("threads") == .threads)
        #expect(command("reserves") == .reserves)
        #expect(command("exit") == .exit)
        if case .empty = parse("   ") {} else { Issue.record("a blank line is not empty") }
        if case .empty = parse("") {} else { Issue.record("an empty line is not empty") }
    }

    @Test func mapTakesAnOptionalMapName() {
        #expect(command("map") == .map(.kernelMap))
        #expect(command("map kernel_map") == .map(.kernelMap))
        #expect(command("map kmem") == .map(.kmem))
        #expect(command("map pageable") == .map(.pageable))
        #expect(command("map pager") == .map(.pager))
        #expect(parseError("map kmemx") == "map: 'kmemx' is not one of [kmem|pageable|pager]; usage: map [kmem|pageable|pager]")
    }

    @Test func pageTakesAPageAlignedAddress() {
        #expect(command("page 0x1000") == .page(PhysicalAddress(0x1000)))
        #expect(command("page 8192") == .page(PhysicalAddress(8192)))
        #expect(command("page 0") == .page(PhysicalAddress(0)))
        #expect(parseError("page 0x1001") == "page: '0x1001' is not page-aligned (a multiple of 4096 bytes); usage: page ADDR")
        #expect(parseError("page zz") == "page: 'zz' is not a number (decimal, or hexadecimal with 0x); usage: page ADDR")
        #expect(parseError("page 0x1_000") == "page: '0x1_000' is not a number (decimal, or hexadecimal with 0x); usage: page ADDR")
        #expect(parseError("page 0x10000000000000000") != nil)   // does not fit in 64 bits
        #expect(parseError("page") == "page: needs an argument: page ADDR")
    }

    @Test func stressTakesSecondsInRange() {
        #expect(command("stress 1") == .stress(seconds: 1))
        #expect(command("stress 600") == .stress(seconds: 600))
        #expect(parseError("stress 0") == "stress: '0' is out of range: from 1 to 600; usage: stress SECONDS")
        #expect(parseError("stress 601") == "stress: '601' is out of range: from 1 to 600; usage: stress SECONDS")
        #expect(parseError("stress -1") == "stress: '-1' is not a number (decimal, or hexadecimal with 0x); usage: stress SECONDS")
        #expect(parseError("stress 1.5") != nil)
        #expect(parseError("stress") == "stress: needs an argument: stress SECONDS")
    }

    @Test func traceTakesOnOrOff() {
        #expect(command("trace on") == .trace(.on))
        #expect(command("trace off") == .trace(.off))
        #expect(parseError("trace maybe") == "trace: 'maybe' is not one of on|off; usage: trace on|off")
        #expect(parseError("trace") == "trace: needs an argument: trace on|off")
    }

    @Test func unknownCommandsAndExtraArgumentsAreNamed() {
        #expect(parseError("frobnicate 3") == "unknown command 'frobnicate'; 'help' lists the commands")
        #expect(parseError("ZONES") == "unknown command 'ZONES'; 'help' lists the commands")
        // Control bytes in what was typed come back escaped.
        #expect(parseError("\u{1b}[2J") == "unknown command '\\x1b[2J'; 'help' lists the commands")
        #expect(parseError("zones now") == "zones: unexpected argument 'now': zones")
        #expect(parseError("map kmem pager") == "map: unexpected argument 'pager': map [kmem|pageable|pager]")
        #expect(parseError("exit 3 4 5") == "exit: unexpected argument '4': exit")
    }

    @Test func helpListsEveryCommandWithItsArguments() {
        var sink = StringSink()
        MonitorCommandParser.writeHelp(into: &sink)
        let lines = sink.text.split(separator: "\n").map(String.init)
        #expect(lines.first == "commands:")
        #expect(lines.count == MonitorVerb.allCases.count + 1)
        for verb in MonitorVerb.allCases {
            var usage = StringSink()
            MonitorCommandParser.writeUsage(verb, into: &usage)
            #expect(lines.contains { $0.hasPrefix("  " + usage.text + " ") }, "help does not list \(usage.text)")
        }
        for wanted in ["  map [kmem|pageable|pager]", "  page ADDR", "  stress SECONDS", "  trace on|off", "  exit"] {
            #expect(lines.contains { $0.hasPrefix(wanted) }, "help has no line for \(wanted)")
        }
        // Every command the table declares is one the parser knows.
        for verb in MonitorVerb.allCases {
            if case .error(.unknownCommand) = parse(String(decoding: UnsafeBufferPointer(start: verb.spec.name.utf8Start, count: verb.spec.name.utf8CodeUnitCount), as: UTF8.self)) {
                Issue.record("the parser does not know \(verb)")
            }
        }
    }
}
