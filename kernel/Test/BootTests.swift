// BootTests.swift - the boot path works: formatting, parsing, the heap, exceptions that return.
//
// The host runner checks the boot log itself (banner, memory map, command line); these cases
// check from inside that the same portable code behaves the same under Embedded Swift.

import ArchSupport

enum BootTests {
    static var suite: TestSuite {
        TestSuite("boot", [
            TestCase("formatterMatchesHostResults", formatterMatchesHostResults),
            TestCase("commandLineParserRejectsMalformedValues", commandLineParserRejectsMalformedValues),
            TestCase("earlyHeapServesTheSwiftRuntime", earlyHeapServesTheSwiftRuntime),
            TestCase("breakpointExceptionReturns", breakpointExceptionReturns),
            TestCase("seedIsTheOneOnTheCommandLine", seedIsTheOneOnTheCommandLine),
        ])
    }

    struct BufferSink: TextSink {
        var message = LogMessage()
        mutating func write(_ byte: UInt8) { message.append(byte) }
    }

    static func formatted(_ body: (inout BufferSink) -> Void) -> LogMessage {
        var sink = BufferSink()
        body(&sink)
        return sink.message
    }

    static func expectText(_ message: LogMessage, _ expected: StaticString, line: UInt = #line) {
        let matches = message.count == expected.utf8CodeUnitCount && message.contains(expected)
        Test.expect(matches, "formatted '\(message: message)', expected '\(expected)'", line: line)
    }

    static func formatterMatchesHostResults() {
        expectText(formatted { Format.decimal(UInt64.max, into: &$0) }, "18446744073709551615")
        expectText(formatted { Format.decimal(Int64.min, into: &$0) }, "-9223372036854775808")
        expectText(formatted { Format.decimal(Int64(-42), width: 6, pad: UInt8(ascii: "0"), into: &$0) }, "-00042")
        expectText(formatted { Format.hex(0xdead_beef, digits: 16, into: &$0) }, "0x00000000deadbeef")
        expectText(formatted { Format.bytes(128 << 20, into: &$0) }, "128 MiB")
        expectText("x=\(-7) y=\(hex: UInt8(255)) \(percent: 1, of: 64)", "x=-7 y=0xff 1.56%")
    }

    struct CountingHandler: CommandLineHandler {
        var accepted = 0
        var rejected = 0
        mutating func accept(option index: Int, value: OptionValue) { accepted += 1 }
        mutating func reject(_ error: CommandLineError) { rejected += 1 }
    }

    static func commandLineParserRejectsMalformedValues() {
        let line: StaticString = "kernel seed=abc test= loglevel=debug nosuch=1 help"
        var handler = CountingHandler()
        let table = KernelOption.allCases.map { $0.spec }
        table.withUnsafeBufferPointer { options in
            CommandLineParser.parse(ByteString(base: line.utf8Start, count: line.utf8CodeUnitCount),
                                    options: options, layout: .imagePathFirst, handler: &handler)
        }
        Test.expectEqual(handler.accepted, 2, "accepted options (loglevel, help)")
        Test.expectEqual(handler.rejected, 3, "rejected options (seed, test, nosuch)")
    }

    static func earlyHeapServesTheSwiftRuntime() {
        let before = KernelHeap.early?.bytesInUse ?? 0
        var numbers: [UInt64] = []
        for value in 0..<1000 { numbers.append(UInt64(value) * 3) }
        var sum: UInt64 = 0
        for value in numbers { sum += value }
        Test.expectEqual(sum, 3 * 999 * 1000 / 2, "sum of the array")
        numbers = []
        let after = KernelHeap.early?.bytesInUse ?? 0
        if !Kmalloc.isReady {
            Test.expectEqual(after, before, "early heap bytes in use after the array is released")
            Test.expect(KernelHeap.early!.isConsistent(), "early heap blocks tile the region")
        }
    }

    static func breakpointExceptionReturns() {
        let before = Interrupts.breakpointsTaken
        arch_int3()
        arch_int3()
        Test.expectEqual(Interrupts.breakpointsTaken, before + 2, "breakpoints handled")
    }

    static func seedIsTheOneOnTheCommandLine() {
        // The runner passes seed=; the framework reseeds each case from it. Two generators with
        // the same seed agree, which is what makes a printed seed replayable.
        var a = SeededRandom(seed: KernelOptions.seed)
        var b = SeededRandom(seed: KernelOptions.seed)
        for _ in 0..<100 { Test.expect(a.next() == b.next(), "same seed, same sequence") }
        Test.diagnostic("seed \(KernelOptions.seed)")
    }
}
