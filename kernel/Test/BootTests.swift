// BootTests.swift - the boot path works: formatting, parsing, the heap, exceptions that return.
//
// The host runner checks the boot log itself (banner, memory map, command line); these cases
// check from inside that the same portable code behaves the same under Embedded Swift.

import ArchSupport

enum BootTests {
    static var suite: TestSuite {
        TestSuite("boot", cpus: "1,2", [
            TestCase("formatterMatchesHostResults", formatterMatchesHostResults),
            TestCase("commandLineParserRejectsMalformedValues", commandLineParserRejectsMalformedValues),
            TestCase("earlyHeapServedTheBootThenKmallocTookOver", earlyHeapServedTheBootThenKmallocTookOver),
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

    /// Tests run long after kmalloc took over the Swift runtime's heap, so what can be checked
    /// here is the handover: the early heap served the boot's first allocations, its blocks
    /// still tile its region, and an array the runtime allocates now does not reach it.
    static func earlyHeapServedTheBootThenKmallocTookOver() {
        guard let early = KernelHeap.early else { return Test.fail("the early heap served nothing before kmalloc") }
        Test.expect(early.allocations > 0, "allocations the early heap served during boot")
        Test.expect(Kmalloc.isReady, "kmalloc serves the runtime by the time tests run")
        let allocationsBefore = early.allocations
        let kmallocBefore = Kmalloc.zones![Kmalloc.classIndex(for: 2048)!].statistics.allocations
        var numbers: [UInt64] = []
        numbers.reserveCapacity(200)   // 1,600 bytes and a header: the kmalloc-2048 class
        for value in 0..<200 { numbers.append(UInt64(value) * 3) }
        var sum: UInt64 = 0
        for value in numbers { sum += value }
        Test.expectEqual(sum, 3 * 199 * 200 / 2, "sum of the array")
        Test.expectEqual(Kmalloc.zones![Kmalloc.classIndex(for: 2048)!].statistics.allocations, kmallocBefore + 1, "the array came from kmalloc-2048")
        numbers = []
        Test.expectEqual(KernelHeap.early!.allocations, allocationsBefore, "runtime allocations that reached the early heap after the handover")
        Test.expect(KernelHeap.early!.isConsistent(), "early heap blocks tile the region")
    }

    static func breakpointExceptionReturns() {
        let before = Interrupts.breakpointsTaken
        arch_int3()
        arch_int3()
        Test.expectEqual(Interrupts.breakpointsTaken, before + 2, "breakpoints handled")
    }

    /// What makes a printed seed replay a run: the seed the workloads use is the seed= word of
    /// the command line (read here from the raw command line, not through KernelOptions), and
    /// each case's generator is derived from it and the case's position in its suite - so a
    /// case draws the same numbers whatever ran before it.
    static func seedIsTheOneOnTheCommandLine() {
        var onCommandLine: UInt64? = nil
        BootInfo.commandLine.forEachPiece(separatedBy: UInt8(ascii: " ")) { word in
            if word.count > 5 && word.slice(0, 5).equals("seed=") { onCommandLine = word.slice(5, word.count).parseUnsigned() }
        }
        // Without seed= (the runner's smallest-machine scenario) the option's default, 1, applies.
        let seed = onCommandLine ?? 1
        Test.expectEqual(KernelOptions.seed, seed, "the seed the workloads use")
        let cases = suite.cases
        var position = 0
        while position < cases.count {
            let name = cases[position].name
            if ByteString(base: name.utf8Start, count: name.utf8CodeUnitCount).equals("seedIsTheOneOnTheCommandLine") { break }
            position += 1
        }
        var expected = SeededRandom(seed: seed &+ UInt64(position) &* 0x1_0000_0001)
        var differences = 0
        for _ in 0..<100 {
            if Test.random.next() != expected.next() { differences += 1 }
        }
        Test.expectEqual(differences, 0, "draws of this case's generator that differ from one seeded by (seed, case \(position))")
        Test.diagnostic("seed \(KernelOptions.seed), case \(position)")
    }
}
