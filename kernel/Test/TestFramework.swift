// TestFramework.swift - in-kernel test cases, suites, and the KTAP report.
//
// A suite is a named list of cases plus what the host runner needs to boot it (memory sizes,
// extra command-line options, a swap disk). Suites are registered in one place,
// kernel/Test/TestRegistry.swift, and run when `test=` selects them. Results go to the
// console in KTAP version 1 (each suite is a subtest, indented two spaces as the KTAP
// specification has it: Linux Documentation/dev-tools/ktap.rst) followed by the
// plain line "N passed, N failed"; QEMU then exits with success or test-failure status (after
// the monitor's prompt, with the `monitor` option: kernel/Monitor/Monitor.swift).
//
// Before a suite runs, its declared needs (options, a swap disk) are checked against this
// boot (kernel/Test/TestPrerequisites.swift); a suite that cannot run here is reported as
// skipped, with the reason, so that `test=all` runs in one boot on any machine.
//
// A case may declare that it must panic (and what the panic must say). Such a case only runs
// when it is selected alone (`test=suite.case`), because nothing can run after a panic; in a
// suite run it is reported as skipped, and the host runner boots it on its own. From the
// first suite to the summary a PanicWatch (kernel/Kern/PanicWatch.swift) is in force: it
// holds the message the running case's expected panic must contain, and `reportPanic`, which
// the panic handler calls after its report to complete the KTAP plan - the case's result,
// every case and suite that will not run (`not ok N name # SKIP not run: ...`), the summary.

struct PanicExpectation {
    /// Text the panic message must contain; checked by the kernel.
    let message: StaticString
    /// A function name the symbolised panic backtrace must contain; checked by the host runner.
    let frame: StaticString
}

/// On which boots a case's panic is expected. The runner reads the same condition from
/// `test=list` and plans the case as a boot of its own exactly where it holds.
enum PanicCondition {
    case always
    /// A race decides, when the swap disk completes transfers by interrupt (virtio-blk,
    /// AHCI): the pageout thread then sleeps through each write and other threads run
    /// meanwhile, so the case may end in its panic or pass, and either is accepted - it runs
    /// alone there, and the runner's matrix shows which happened. With ATA PIO the pageout
    /// thread keeps the CPU and the case must pass (NecessityTests, docs/reserves.md).
    case possibleOnAnInterruptDrivenDisk

    /// Whether the case is run alone, its panic awaited, on this boot.
    var holds: Bool {
        switch self {
        case .always: return true
        case .possibleOnAnInterruptDrivenDisk: return Disk.kind?.completesByInterrupt ?? false
        }
    }

    /// Whether the case may also return normally where the panic is awaited.
    var mayPass: Bool { self != .always }

    /// How `test=list` marks such a case (qemu/harness/plan.py reads it).
    var listMarker: StaticString {
        switch self {
        case .always: return " expects-panic"
        case .possibleOnAnInterruptDrivenDisk: return " may-panic-on-interrupt-driven-disk"
        }
    }
}

struct TestCase {
    let name: StaticString
    let body: () -> Void
    /// The panic the case must end in, on the boots where `panicCondition` holds.
    let declaredPanic: PanicExpectation?
    let panicCondition: PanicCondition

    init(_ name: StaticString, _ body: @escaping () -> Void) {
        self.name = name
        self.body = body
        self.declaredPanic = nil
        self.panicCondition = .always
    }

    init(_ name: StaticString, expectsPanic message: StaticString, inFrame frame: StaticString = "",
         on condition: PanicCondition = .always, _ body: @escaping () -> Void) {
        self.name = name
        self.body = body
        self.declaredPanic = PanicExpectation(message: message, frame: frame)
        self.panicCondition = condition
    }

    /// The panic expected on this boot, if any.
    var expectedPanic: PanicExpectation? { panicCondition.holds ? declaredPanic : nil }
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
    /// The largest disk the suite can run with, in MiB (0: any): a workload that fills swap
    /// cannot finish on a huge one. Checked by the kernel only (TestPrerequisites.swift).
    let diskMaxMiB: Int
    /// Whether to run QEMU with -icount (instruction-counted time, for repeatable scheduling).
    let icount: Bool
    /// CPU counts (QEMU -smp) the runner boots this suite with, comma-separated: the first with
    /// every memory size and seed, the others at the first size with the first seed; cases that
    /// expect a panic boot with the last.
    let cpus: StaticString
    /// Seconds after which the runner calls a boot of this suite hung.
    let timeout: Int
    /// How many seeds the runner boots this suite with (seed, seed+1, ...).
    let seeds: Int
    /// Run each case with preemption held off, so background threads (pageout's refills)
    /// cannot change what the case counts. Suites whose cases sleep or spawn threads say false.
    let exclusive: Bool
    let cases: [TestCase]

    init(_ name: StaticString, memory: StaticString = TestSuite.everySize, arguments: StaticString = "", diskMiB: Int = 0, diskPerRAM: Int = 0,
         diskMaxMiB: Int = 0, icount: Bool = false, cpus: StaticString = "1", timeout: Int = 120, seeds: Int = 1, exclusive: Bool = true,
         _ cases: [TestCase]) {
        self.name = name
        self.memory = memory
        self.arguments = arguments
        self.diskMiB = diskMiB
        self.diskPerRAM = diskPerRAM
        self.diskMaxMiB = diskMaxMiB
        self.icount = icount
        self.cpus = cpus
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

    /// The registry and what `test=` chose from it, kept for the whole run so that a panic
    /// can name every case that will now never run without building anything (set once,
    /// before the first suite runs).
    static var suites: [TestSuite] = []
    static var chosen: [Selection] = []

    static var passed = 0
    static var failed = 0
    static var skipped = 0
    /// Where the run is. `suiteNumber`: the KTAP number of the latest suite begun (its index
    /// in `chosen` plus one; 0 before the first). `suiteOpen`: its header is printed and its
    /// result line not yet. `caseNumber`: the latest case of that suite begun, by its number
    /// in the suite's plan. `caseRunning`: that case's result line is not printed yet.
    static var suiteNumber = 0
    static var suiteOpen = false
    static var caseNumber = 0
    static var caseRunning = false
    static var suiteFailed = false

    /// Runs what `selection` names and exits QEMU; never returns.
    static func run(_ selection: ByteString) -> Never {
        suites = TestRegistry.suites
        if selection.equals("list") {
            printList(suites)
            QEMU.exit(.success)
        }
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
            Console.printLine("0 passed, 1 failed, 0 skipped")
            kernelRunFinished(.testFailure)
        }
        // The plan follows the version line directly (ktap.rst); the seed is a diagnostic after it.
        Console.printLine("1..\(chosen.count)")
        Console.printLine("# seed: \(KernelOptions.seed)")
        // From here to the end of the run a panic completes the plan (reportPanic).
        watch(expecting: nil)
        for position in chosen.indices {
            runSuite(chosen[position])
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

    /// How many cases the suite's plan has: all of them, or the one selected.
    static func planned(_ selection: Selection) -> Int {
        selection.caseIndex == nil ? suites[selection.suite].cases.count : 1
    }

    /// The case at `number` (from 1) in the suite's plan.
    static func caseIndex(_ selection: Selection, number: Int) -> Int {
        selection.caseIndex ?? number - 1
    }

    static func runSuite(_ selection: Selection) {
        let suite = suites[selection.suite]
        suiteNumber += 1
        suiteFailed = false
        caseNumber = 0
        Console.printLine("  KTAP version 1")
        Console.printLine("  # Subtest: \(suite.name)")
        let count = planned(selection)
        Console.printLine("  1..\(count)")
        suiteOpen = true
        if let reason = suite.missingPrerequisite {
            for number in 1...count {
                skipped += 1
                Console.printLine("  ok \(number) \(suite.cases[caseIndex(selection, number: number)].name) # SKIP \(message: reason)")
            }
            suiteOpen = false
            Console.printLine("ok \(suiteNumber) \(suite.name) # SKIP \(message: reason)")
            return
        }
        for number in 1...count {
            caseNumber = number
            let index = caseIndex(selection, number: number)
            let testCase = suite.cases[index]
            if testCase.expectedPanic != nil && selection.caseIndex == nil {
                skipped += 1
                Console.printLine("  ok \(number) \(testCase.name) # SKIP expects a panic; runs alone as test=\(suite.name).\(testCase.name)")
                continue
            }
            runCase(testCase, number: number, seedOffset: UInt64(index), in: suite)
        }
        suiteEpilogue()
        let verdict: StaticString = suiteFailed ? "not ok" : "ok"
        suiteOpen = false
        Console.printLine("\(verdict) \(suiteNumber) \(suite.name)")
    }

    /// What follows each suite's cases: the state of the maps, pageout and zones.
    static func suiteEpilogue() {
        KernelMaps.logMaps()
        Pageout.logStatistics()
        PhysicalMemory.logDescriptorStatistics()
        let violations = PhysicalMemory.checkDescriptors()
        if violations > 0 {
            suiteFailed = true
            Console.printLine("# page descriptor check: \(violations) violations after the suite (the E pmm lines above)")
        }
        Zones.printTable()
        if Zones.debug.contains(.check) { Zones.checkAll() }
    }

    static func runCase(_ testCase: TestCase, number: Int, seedOffset: UInt64, in suite: TestSuite) {
        let exclusive = suite.exclusive
        Test.failures = 0
        Test.random = SeededRandom(seed: KernelOptions.seed &+ seedOffset &* 0x1_0000_0001)
        if let expectation = testCase.expectedPanic {
            Console.printLine("  # expect-panic: \(expectation.message)")
            if expectation.frame.utf8CodeUnitCount > 0 {
                Console.printLine("  # expect-frame: \(expectation.frame)")
            }
        }
        caseRunning = true
        watch(expecting: testCase.expectedPanic?.message)
        if exclusive && Scheduler.started { Preemption.disable() }
        testCase.body()
        if exclusive && Scheduler.started { Preemption.enable() }
        watch(expecting: nil)
        if testCase.expectedPanic != nil {
            if testCase.panicCondition.mayPass {
                Console.printLine("  # the panic this case allows here did not happen: it passed")
            } else {
                Test.fail("expected a panic containing '\(testCase.expectedPanic!.message)', but the test returned")
            }
        }
        if Test.failures == 0 {
            passed += 1
            Console.printLine("  ok \(number) \(testCase.name)")
        } else {
            failed += 1
            suiteFailed = true
            Console.printLine("  not ok \(number) \(testCase.name)")
        }
        caseRunning = false
    }

    static func finish() -> Never {
        PanicWatch.end()
        printSummary()
        kernelRunFinished(failed == 0 ? .success : .testFailure)
    }

    /// The plain last line; skipped counts the cases reported `# SKIP`, for any reason.
    static func printSummary() {
        Console.printLine("\(passed) passed, \(failed) failed, \(skipped) skipped")
    }

    /// Tells the panic handler what a panic means from now on: one whose message contains
    /// `expected` is the running case's expected panic (exit with success); any other panic
    /// is a failure - of the case, with test-failure status, if it expected another panic;
    /// otherwise with the panic's own status (.panic, or .deadlock from the watchdog).
    /// Either way reportPanic completes the KTAP report.
    static func watch(expecting expected: StaticString?) {
        PanicWatch.begin(expecting: expected, statusIfExpected: .success,
                         statusIfNot: expected != nil ? .testFailure : nil, report: reportPanic)
    }

    /// Where a panic happened, for the reason printed on each result it leaves unrun.
    enum PanicPlace {
        case beforeTheFirstSuite
        case inCase(suite: StaticString, testCase: StaticString)
        case outsideTheCasesOf(StaticString)
        case after(StaticString)
    }

    /// Runs inside a panic (PanicWatch): finishes the KTAP report so that it is a complete
    /// run - the result of the case that panicked, `not ok ... # SKIP not run` for every case
    /// and suite after it, the suites' results, and the summary, which counts them. It
    /// allocates nothing: it reads the registry and the selection kept since the run began.
    /// It writes each line piece by piece straight to the console (PanicLine), never through
    /// a LogMessage: the watchdog's panic runs on the idle thread's two-page stack, and a
    /// frame of 256-byte messages overflowed it.
    static func reportPanic(_ verdict: PanicVerdict) {
        var place = PanicPlace.beforeTheFirstSuite
        if suiteNumber > 0 && suiteOpen {
            let selection = chosen[suiteNumber - 1]
            let suite = suites[selection.suite]
            if caseRunning {
                let testCase = suite.cases[caseIndex(selection, number: caseNumber)]
                place = .inCase(suite: suite.name, testCase: testCase.name)
                if verdict == .expected {
                    passed += 1
                    PanicLine.result(depth: 1, ok: true, caseNumber, testCase.name, " # panicked as expected")
                } else {
                    if let expectation = testCase.expectedPanic {
                        PanicLine.text("  # the panic message does not contain '", expectation.message, "'")
                    }
                    failed += 1
                    suiteFailed = true
                    PanicLine.result(depth: 1, ok: false, caseNumber, testCase.name, " # ERROR panic")
                }
            } else {
                place = .outsideTheCasesOf(suite.name)
            }
            var number = caseNumber + 1
            while number <= planned(selection) {
                skipped += 1
                PanicLine.notRun(depth: 1, number, suite.cases[caseIndex(selection, number: number)].name, place)
                number += 1
            }
            if caseRunning {
                PanicLine.result(depth: 0, ok: !suiteFailed, suiteNumber, suite.name, "")
            } else {
                // Between or after its cases (the suite's epilogue): the panic is the suite's failure.
                failed += 1
                PanicLine.result(depth: 0, ok: false, suiteNumber, suite.name, " # ERROR panic outside its cases")
            }
        } else if suiteNumber > 0 {
            place = .after(suites[chosen[suiteNumber - 1].suite].name)
            failed += 1
            PanicLine.text("# the kernel panicked between suites; the panic counts as one failure", "", "")
        }
        var position = suiteNumber
        while position < chosen.count {
            let selection = chosen[position]
            let suite = suites[selection.suite]
            PanicLine.text("  KTAP version 1", "", "")
            PanicLine.text("  # Subtest: ", suite.name, "")
            PanicLine.plan(depth: 1, planned(selection))
            for number in 1...planned(selection) {
                skipped += 1
                PanicLine.notRun(depth: 1, number, suite.cases[caseIndex(selection, number: number)].name, place)
            }
            PanicLine.notRun(depth: 0, position + 1, suite.name, place)
            position += 1
        }
        PanicLine.summary(passed: passed, failed: failed, skipped: skipped)
    }

    /// `test=list`: one line per suite with its boot needs, one per case; the runner plans
    /// its boots from this.
    static func printList(_ suites: [TestSuite]) {
        Console.printLine("# test list")
        for suite in suites {
            let icount: StaticString = suite.icount ? "yes" : "no"
            Console.printLine("suite \(suite.name) memory=\(suite.memory) disk=\(suite.diskMiB)+\(suite.diskPerRAM)xram icount=\(icount) timeout=\(suite.timeout) seeds=\(suite.seeds) cpus=\(suite.cpus) arguments=\(suite.arguments)")
            for testCase in suite.cases {
                let marker: StaticString = testCase.declaredPanic != nil ? testCase.panicCondition.listMarker : ""
                Console.printLine("case \(suite.name).\(testCase.name)\(marker)")
            }
        }
        Console.printLine("# end of test list")
    }
}

/// KTAP lines written inside a panic, piece by piece straight to the console: no LogMessage,
/// no allocation, a few bytes of stack (TestRunner.reportPanic says why).
enum PanicLine {
    static func put(_ text: StaticString) { Console.write(text) }

    static func put(_ number: Int) {
        var sink = Console.Sink()
        Format.decimal(Int64(number), into: &sink)
    }

    static func indent(_ depth: Int) { if depth > 0 { put("  ") } }
    static func end() { Console.write(UInt8(ascii: "\n")) }

    static func text(_ first: StaticString, _ second: StaticString, _ third: StaticString) {
        put(first); put(second); put(third); end()
    }

    static func plan(depth: Int, _ count: Int) {
        indent(depth); put("1.."); put(count); end()
    }

    /// `ok N name<tail>` or `not ok N name<tail>`.
    static func result(depth: Int, ok: Bool, _ number: Int, _ name: StaticString, _ tail: StaticString) {
        indent(depth); put(ok ? "ok " : "not ok "); put(number); put(" "); put(name); put(tail); end()
    }

    /// `not ok N name # SKIP not run: the kernel panicked in suite.case` (or where it did).
    static func notRun(depth: Int, _ number: Int, _ name: StaticString, _ place: TestRunner.PanicPlace) {
        indent(depth); put("not ok "); put(number); put(" "); put(name); put(" # SKIP not run: the kernel panicked ")
        switch place {
        case .beforeTheFirstSuite: put("before the first suite")
        case .inCase(let suite, let testCase): put("in "); put(suite); put("."); put(testCase)
        case .outsideTheCasesOf(let suite): put("in "); put(suite); put(", outside its cases")
        case .after(let suite): put("after "); put(suite)
        }
        end()
    }

    static func summary(passed: Int, failed: Int, skipped: Int) {
        put(passed); put(" passed, "); put(failed); put(" failed, "); put(skipped); put(" skipped"); end()
    }
}
