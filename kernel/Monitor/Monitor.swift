// Monitor.swift - a ddb-style prompt on the serial console, to look at a running kernel.
//
// `monitor` on the command line: when the run is over - the tests selected by `test=`, a
// `stress=` workload, or nothing at all - the kernel does not exit but prints a prompt and
// reads commands typed on COM1 (`make run ARGS=monitor`). `help` lists them; `exit` ends the
// run with the status the run had before the monitor (or test failure if a `stress` started
// from the monitor lost pages). docs/monitor.md is the user's guide.
//
// The monitor runs in the thread that ran the tests ("main"), like any other thread: while it
// waits for a key it sleeps (kernel/Console/SerialInput.swift), and the kernel goes on - the
// pageout thread, a `stress` workload started from here. Unlike ddb it does not stop the
// machine; instead each table is printed with interrupts off, which on this one-CPU kernel is
// what every lock the tables' data is under amounts to (zones, buddy lists, maps, threads:
// kernel/Kern/SpinLock.swift), so each table is one consistent snapshot.
// The tables are the kernel's own structures, the very ones the gdb helpers read from outside
// (qemu/gdb/kernel_helpers.py), printed in the same layout: `zones` shows what gdb's `kzones`
// shows, line for line (the monitor scenario in qemu/harness/scenarios.py checks exactly that).
//
// This is, like kernel/Main.swift, a place that knows every subsystem (and, for `stress`, the
// test workloads); no subsystem calls into it but the end of a run.
// Parsing and line editing are portable (kernel/Lib/MonitorCommands.swift, LineEditor.swift)
// and unit-tested on the host; what runs each command is here and in MonitorTables.swift.

extension LogTag {
    static let monitor = LogTag("monitor")
}

enum Monitor {
    /// Set by the `monitor` option.
    static var requested = false
    static let prompt: StaticString = "monitor> "

    /// Reads and runs commands until `exit`, then exits QEMU with `status` - the outcome of
    /// what ran before - or with test failure if a stress run started here lost pages.
    static func run(after status: ExitStatus) -> Never {
        SerialInput.start()
        MonitorStress.prepare()
        Log.info(.monitor, "the kernel's monitor: type 'help' for the commands, 'exit' to end the run (status \(status.name) so far)")
        var editor = LineEditor()
        while true {
            Console.write(prompt)
            let event = readLine(&editor)
            var done = false
            switch event {
            case .entered:
                // A copy, so that the line lent out is not the editor being cleared.
                let line = editor
                line.withLine { text in
                    switch MonitorCommandParser.parse(text) {
                    case .empty: break
                    case .command(let command): done = execute(command)
                    case .error(let error):
                        var message = LogMessage.Appender(message: "error: ")
                        error.describe(into: &message)
                        Console.printLine(message.message)
                    }
                }
            case .tooLong:
                Console.printLine("error: a line holds at most \(LineEditor.capacity) bytes; nothing was run")
            case .cancelled, .editing:
                break
            }
            editor.clear()
            if done { break }
        }
        MonitorStress.stopAndWait()
        let final = MonitorStress.failedRuns > 0 && status == .success ? ExitStatus.testFailure : status
        Log.info(.monitor, "serial input: \(SerialInput.taken) bytes read; the ring was full \(SerialInput.throttles) times (input then waited in the UART)")
        Log.info(.monitor, "exit: status \(final.name)\(MonitorStress.failedRuns > 0 ? " (a stress run lost pages)" : "")")
        QEMU.exit(final)
    }

    /// Feeds typed bytes to the editor, echoing them, until a line is complete or thrown away.
    static func readLine(_ editor: inout LineEditor) -> LineEvent {
        var echo = Console.Sink()
        while true {
            let event = editor.feed(SerialInput.read(), echo: &echo)
            if event != .editing { return event }
        }
    }

    /// Runs one command; true when it was `exit`.
    static func execute(_ command: MonitorCommand) -> Bool {
        switch command {
        case .help: printHelp()
        case .zones: MonitorTables.zones()
        case .buddy: MonitorTables.buddy()
        case .map(let which): MonitorTables.map(which)
        case .page(let address): MonitorTables.page(address)
        case .threads: MonitorTables.threads()
        case .reserves: MonitorTables.reserves()
        case .stress(let seconds): MonitorStress.start(seconds: seconds)
        case .trace(let setting):
            if setting == .on {
                if Trace.running { Console.printLine("trace: already on") } else { Trace.begin() }
            } else {
                if Trace.running { Trace.end() } else { Console.printLine("trace: already off") }
            }
        case .exit: return true
        }
        return false
    }

    static func printHelp() {
        var sink = Console.Sink()
        withInterruptsDisabled { MonitorCommandParser.writeHelp(into: &sink) }
        Console.printLine("ADDR is a number, decimal or 0x-hexadecimal; editing: Backspace, ^U erases the line, ^C drops it")
    }
}

extension ExitStatus {
    var name: StaticString {
        switch self {
        case .success: return "success"
        case .testFailure: return "test failure"
        case .panic: return "panic"
        case .bootFailure: return "boot failure"
        case .deadlock: return "deadlock"
        }
    }
}
