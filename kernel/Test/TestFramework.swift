// TestFramework.swift - in-kernel test cases, suites, and the KTAP report.
//
// A suite is a named list of cases plus what the host runner needs to boot it (memory sizes,
// extra command-line options, a swap disk). Suites are registered in one place,
// kernel/Test/TestRegistry.swift, and run when `test=` selects them. Results go to the
// console in KTAP version 1 (each suite is a subtest, indented two spaces as the KTAP
// specification has it: Linux Documentation/dev-tools/ktap.rst) followed by the
// plain line "N passed, N failed"; QEMU then exits with success or test-failure status.
//
// A case may declare that it must panic (and what the panic must say). Such a case only runs
// when it is selected alone (`test=suite.case`), because nothing can run after a panic; in a
// suite run it is reported as skipped, and the host runner boots it on its own. Nothing of
// this file runs inside a panic: before each case the runner sets a PanicWatch
// (kernel/Kern/PanicWatch.swift) holding the message an expected panic must contain and the
// KTAP lines that finish the report either way (the case's result, its suite's, the summary),
// with the exit status for each; the panic handler matches the message and prints them.

struct PanicExpectation {
    /// Text the panic message must contain; checked by the kernel.
    let message: StaticString
    /// A function name the symbolised panic backtrace must contain; checked by the host runner.
    let frame: StaticString
}

struct TestCase {
    let name: StaticString
    let body: () -> Void
    let expectedPanic: PanicExpectation?

    init(_ name: StaticString, _ body: @escaping () -> Void) {
        self.name = name
        self.body = body
        self.expectedPanic = nil
    }

    init(_ name: StaticString, expectsPanic message: StaticString, inFrame frame: StaticString = "", _ body: @escaping () -> Void) {
        self.name = name
        self.body = body
        self.expectedPanic = PanicExpectation(message: message, frame: frame)
    }
}

struct TestSuite {
    /// What a suite that is not about memory pressure boots with: the smallest machine the
    /// kernel is meant for, the default, and one far larger than anyone tuned for.
    static let everySize: StaticString = "16M,128M,8G"
    /// What a pressure suite boots with: its first size with every seed, the others once.
    static let pressureSizes: StaticString = "24M,16M,256M"
    let name: StaticString
    /// QEMU memory sizes the runner boots this suite with, comma-separated ("128M", "16M,4G").
    let memory: StaticString
    /// Extra command-line options for this suite's boots.
    let arguments: StaticString
    /// Size in MiB of the swap disk the runner attaches (0: none).
    let diskMiB: Int
    /// The disk is at least this many times the boot's memory size (0: just diskMiB), so that
    /// a workload sized from RAM fits on it at every memory size.
    let diskPerRAM: Int
    /// Whether to run QEMU with -icount (instruction-counted time, for repeatable scheduling).
    let icount: Bool
    /// Seconds after which the runner calls a boot of this suite hung.
    let timeout: Int
    /// How many seeds the runner boots this suite with (seed, seed+1, ...).
    let seeds: Int
    /// Run each case with preemption held off, so background threads (pageout's refills)
    /// cannot change what the case counts. Suites whose cases sleep or spawn threads say false.
    let exclusive: Bool
    let cases: [TestCase]

    init(_ name: StaticString, memory: StaticString = TestSuite.everySize, arguments: StaticString = "", diskMiB: Int = 0, diskPerRAM: Int = 0,
         icount: Bool = false, timeout: Int = 120, seeds: Int = 1, exclusive: Bool = true, _ cases: [TestCase]) {
        self.name = name
        self.memory = memory
        self.arguments = arguments
        self.diskMiB = diskMiB
        self.diskPerRAM = diskPerRAM
        self.icount = icount
        self.timeout = timeout
        self.seeds = seeds
        self.exclusive = exclusive
        self.cases = cases
    }
}

/// What the running case can see and use.
enum Test {
    static var failures = 0
    /// Seeded from `seed=` and the case's position, so each case has its own repeatable stream.
    static var random = SeededRandom(seed: 1)

    /// Records a failure with `message` unless `condition` holds; the case keeps running.
    static func expect(_ condition: Bool, _ message: @autoclosure () -> LogMessage,
                       file: StaticString = #fileID, line: UInt = #line) {
        if !condition { fail(message(), file: file, line: line) }
    }

    /// Records a failure unless `actual == expected`, printing both.
    static func expectEqual<T: BinaryInteger>(_ actual: T, _ expected: T, _ what: @autoclosure () -> LogMessage,
                                              file: StaticString = #fileID, line: UInt = #line) {
        if actual != expected { fail("\(message: what()): expected \(expected), got \(actual)", file: file, line: line) }
    }

    static func fail(_ message: LogMessage, file: StaticString = #fileID, line: UInt = #line) {
        failures += 1
        Console.printLine("  # FAIL \(file):\(line): \(message: message)")
    }

    /// A diagnostic line inside the current suite's KTAP block.
    static func diagnostic(_ message: LogMessage) {
        Console.printLine("  # \(message: message)")
    }
}

enum TestRunner {
    struct Selection {
        var suite: Int
        /// nil: the whole suite.
        var caseIndex: Int?
    }

    static var passed = 0
    static var failed = 0
    static var skipped = 0
    static var suiteNumber = 0
    static var suiteFailed = false

    /// Runs what `selection` names and exits QEMU; never returns.
    static func run(_ selection: ByteString) -> Never {
        let suites = TestRegistry.suites
        if selection.equals("list") {
            printList(suites)
            QEMU.exit(.success)
        }
        var chosen: [Selection] = []
        var unknown: [ByteString] = []
        selection.forEachPiece(separatedBy: UInt8(ascii: ",")) { piece in
            if piece.equals("all") {
                for index in suites.indices { chosen.append(Selection(suite: index, caseIndex: nil)) }
            } else if let found = find(piece, in: suites) {
                chosen.append(found)
            } else {
                unknown.append(piece)
            }
        }
        Console.printLine("KTAP version 1")
        if !unknown.isEmpty {
            Console.printLine("1..1")
            for name in unknown {
                Console.printLine("# no suite or case named '\(name)'; test=list shows them")
            }
            Console.printLine("not ok 1 selection # ERROR unknown test names")
            Console.printLine("0 passed, 1 failed")
            QEMU.exit(.testFailure)
        }
        // The plan follows the version line directly (ktap.rst); the seed is a diagnostic after it.
        Console.printLine("1..\(chosen.count)")
        Console.printLine("# seed: \(KernelOptions.seed)")
        for selection in chosen {
            runSuite(suites[selection.suite], only: selection.caseIndex)
        }
        finish()
    }

    static func find(_ name: ByteString, in suites: [TestSuite]) -> Selection? {
        let dot = name.firstIndex(of: UInt8(ascii: "."))
        let suiteName = dot.map { name.slice(0, $0) } ?? name
        guard let suite = suites.firstIndex(where: { suiteName.equals($0.name) }) else { return nil }
        guard let dot = dot else { return Selection(suite: suite, caseIndex: nil) }
        let caseName = name.slice(dot + 1, name.count)
        guard let caseIndex = suites[suite].cases.firstIndex(where: { caseName.equals($0.name) }) else { return nil }
        return Selection(suite: suite, caseIndex: caseIndex)
    }

    static func runSuite(_ suite: TestSuite, only: Int?) {
        suiteNumber += 1
        suiteFailed = false
        Console.printLine("  KTAP version 1")
        Console.printLine("  # Subtest: \(suite.name)")
        let indices = only.map { [$0] } ?? Array(suite.cases.indices)
        Console.printLine("  1..\(indices.count)")
        var number = 0
        for index in indices {
            number += 1
            let testCase = suite.cases[index]
            if testCase.expectedPanic != nil && only == nil {
                skipped += 1
                Console.printLine("  ok \(number) \(testCase.name) # SKIP expects a panic; runs alone as test=\(suite.name).\(testCase.name)")
                continue
            }
            runCase(testCase, number: number, seedOffset: UInt64(index), in: suite)
        }
        suiteEpilogue()
        let verdict: StaticString = suiteFailed ? "not ok" : "ok"
        Console.printLine("\(verdict) \(suiteNumber) \(suite.name)")
    }

    /// What follows each suite's cases: the state of the maps, pageout and zones.
    static func suiteEpilogue() {
        KernelMaps.logMaps()
        Pageout.logStatistics()
        Zones.printTable()
        if Zones.debug.contains(.check) { Zones.checkAll() }
    }

    static func runCase(_ testCase: TestCase, number: Int, seedOffset: UInt64, in suite: TestSuite) {
        let exclusive = suite.exclusive
        Test.failures = 0
        Test.random = SeededRandom(seed: KernelOptions.seed &+ seedOffset &* 0x1_0000_0001)
        watchForPanic(testCase, number: number, in: suite)
        if let expectation = testCase.expectedPanic {
            Console.printLine("  # expect-panic: \(expectation.message)")
            if expectation.frame.utf8CodeUnitCount > 0 {
                Console.printLine("  # expect-frame: \(expectation.frame)")
            }
        }
        if exclusive && Scheduler.started { Preemption.disable() }
        testCase.body()
        if exclusive && Scheduler.started { Preemption.enable() }
        PanicWatch.end()
        if testCase.expectedPanic != nil {
            Test.fail("expected a panic containing '\(testCase.expectedPanic!.message)', but the test returned")
        }
        if Test.failures == 0 {
            passed += 1
            Console.printLine("  ok \(number) \(testCase.name)")
        } else {
            failed += 1
            suiteFailed = true
            Console.printLine("  not ok \(number) \(testCase.name)")
        }
    }

    static func finish() -> Never {
        if skipped > 0 {
            Console.printLine("# \(skipped) skipped: expected-panic cases, which the host runner boots one by one")
        }
        Console.printLine("\(passed) passed, \(failed) failed")
        QEMU.exit(failed == 0 ? .success : .testFailure)
    }

    /// Tells the panic handler what to do if case `number` of `suite` panics: finish the KTAP
    /// report - the case's result, the suite's, the summary - and exit with success if the
    /// case expected that panic, test failure if it expected another, and the panic's own
    /// status if it expected none. Set before the case runs, from the counts as they are then
    /// (they change only when a case ends).
    static func watchForPanic(_ testCase: TestCase, number: Int, in suite: TestSuite) {
        PanicWatch.begin(expecting: testCase.expectedPanic?.message, statusIfExpected: .success,
                         statusIfNot: testCase.expectedPanic != nil ? .testFailure : nil)
        if let expectation = testCase.expectedPanic {
            PanicWatch.sayIfExpected("  ok \(number) \(testCase.name) # panicked as expected")
            PanicWatch.sayIfExpected("ok \(suiteNumber) \(suite.name)")
            PanicWatch.sayIfExpected("\(passed + 1) passed, \(failed) failed")
            PanicWatch.sayIfNot("  # the panic message does not contain '\(expectation.message)'")
        }
        PanicWatch.sayIfNot("  not ok \(number) \(testCase.name) # ERROR panic")
        PanicWatch.sayIfNot("not ok \(suiteNumber) \(suite.name)")
        PanicWatch.sayIfNot("\(passed) passed, \(failed + 1) failed")
    }

    /// `test=list`: one line per suite with its boot needs, one per case; the runner plans
    /// its boots from this.
    static func printList(_ suites: [TestSuite]) {
        Console.printLine("# test list")
        for suite in suites {
            let icount: StaticString = suite.icount ? "yes" : "no"
            Console.printLine("suite \(suite.name) memory=\(suite.memory) disk=\(suite.diskMiB)+\(suite.diskPerRAM)xram icount=\(icount) timeout=\(suite.timeout) seeds=\(suite.seeds) arguments=\(suite.arguments)")
            for testCase in suite.cases {
                let marker: StaticString = testCase.expectedPanic != nil ? " expects-panic" : ""
                Console.printLine("case \(suite.name).\(testCase.name)\(marker)")
            }
        }
        Console.printLine("# end of test list")
    }
}
