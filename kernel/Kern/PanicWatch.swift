// PanicWatch.swift - what a panic means to whoever is watching for one.
//
// Without a watch, a panic ends the run with its own status (.panic, or .deadlock from the
// watchdog) after its report. Code that runs something which may panic - on purpose or not -
// and wants a say in what happens then describes it here beforehand: the text a panic it
// expects has in its message, and, for each outcome, the lines to print after the report and
// the status to exit with. The panic handler (kernel/Kern/Panic.swift) reads only this: it
// matches the message and carries out the chosen epilogue, knowing nothing of what the lines
// say. The one watcher today is the test framework (kernel/Test/TestFramework.swift), which
// sets a watch around each case so that its KTAP report is finished even if the case panics.
// Kern owns the type so that Kern depends on nothing in kernel/Test; it is not a hook - no
// code of the watcher runs inside a panic.
//
// Locking: none. `current` is written by the one thread running a watched piece of code,
// before and after it, never while a panic is in progress; the panic handler reads it with
// interrupts off, on the one CPU, and nothing runs after it.

/// Lines to print after a panic report, and the status to exit with.
struct PanicEpilogue {
    static let capacity = 4
    private var lines: (LogMessage, LogMessage, LogMessage, LogMessage) = (LogMessage(), LogMessage(), LogMessage(), LogMessage())
    private(set) var count = 0
    /// The exit status; nil: the panic's own.
    let status: ExitStatus?

    init(status: ExitStatus?) {
        self.status = status
    }

    mutating func append(_ line: LogMessage) {
        kassert(count < PanicEpilogue.capacity, "a panic epilogue holds at most \(PanicEpilogue.capacity) lines")
        switch count {
        case 0: lines.0 = line
        case 1: lines.1 = line
        case 2: lines.2 = line
        default: lines.3 = line
        }
        count += 1
    }

    /// Prints the lines on the console (the panic handler, after its report).
    func printLines() {
        if count > 0 { Console.printLine(lines.0) }
        if count > 1 { Console.printLine(lines.1) }
        if count > 2 { Console.printLine(lines.2) }
        if count > 3 { Console.printLine(lines.3) }
    }
}

struct PanicWatch {
    /// Text the panic message must contain for the panic to be the expected one; nil when
    /// no panic is expected.
    let expectedMessage: StaticString?
    /// Carried out when the panic is the expected one.
    var ifExpected: PanicEpilogue
    /// Carried out otherwise: no panic was expected, or the message is a different one.
    var ifNotExpected: PanicEpilogue

    /// The watch in force, if any. See the top of this file.
    static var current: PanicWatch? = nil

    /// The epilogue for a panic that says `message`.
    func epilogue(for message: LogMessage) -> PanicEpilogue {
        if let expected = expectedMessage, message.contains(expected) { return ifExpected }
        return ifNotExpected
    }
}
