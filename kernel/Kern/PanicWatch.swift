// PanicWatch.swift - what a panic means to whoever is watching for one.
//
// Without a watch, a panic ends the run with its own status (.panic, or .deadlock from the
// watchdog) after its report. Code that runs something which may panic - on purpose or not -
// and wants a say in what happens then describes it here beforehand: the text a panic it
// expects has in its message, and, for each outcome, the lines to print after the report and
// the status to exit with. The panic handler (kernel/Kern/Panic.swift) reads only this: it
// matches the message and prints the chosen lines, knowing nothing of what they say. The one
// watcher today is the test framework (kernel/Test/TestFramework.swift), which sets a watch
// around each case so that its KTAP report is finished even if the case panics. Kern owns the
// state so that Kern depends on nothing in kernel/Test; it is not a hook - no code of the
// watcher runs inside a panic.
//
// The lines live here, in static storage, and the panic handler prints them in place: a
// panic may run on a small stack (the watchdog's, inside a timer interrupt on the idle
// thread's two pages), which has no room for a copy of a kilobyte of messages.
//
// Locking: none. The watch is written by the one thread running watched code, before and
// after it, never while a panic is in progress; the panic handler reads it with interrupts
// off, on the one CPU, and nothing runs after it.

/// Lines to print after a panic report, and the status to exit with.
struct PanicEpilogue {
    static let capacity = 4
    fileprivate var lines: (LogMessage, LogMessage, LogMessage, LogMessage) = (LogMessage(), LogMessage(), LogMessage(), LogMessage())
    fileprivate var count = 0
    /// The exit status; nil: the panic's own.
    fileprivate var status: ExitStatus? = nil

    fileprivate mutating func reset(status: ExitStatus?) {
        count = 0
        self.status = status
    }

    fileprivate mutating func append(_ line: LogMessage) {
        kassert(count < PanicEpilogue.capacity, "a panic epilogue holds at most \(PanicEpilogue.capacity) lines")
        switch count {
        case 0: lines.0 = line
        case 1: lines.1 = line
        case 2: lines.2 = line
        default: lines.3 = line
        }
        count += 1
    }

    /// Prints the lines of the epilogue at `epilogue` without copying it.
    fileprivate static func printLines(_ epilogue: UnsafePointer<PanicEpilogue>) {
        let count = epilogue.pointee.count
        if count > 0 { Console.printLine(epilogue.pointee.lines.0) }
        if count > 1 { Console.printLine(epilogue.pointee.lines.1) }
        if count > 2 { Console.printLine(epilogue.pointee.lines.2) }
        if count > 3 { Console.printLine(epilogue.pointee.lines.3) }
    }
}

enum PanicWatch {
    /// Whether a watch is in force.
    private(set) static var isActive = false
    /// Text the panic message must contain for the panic to be the expected one; nil when no
    /// panic is expected.
    private(set) static var expectedMessage: StaticString? = nil
    /// Carried out when the panic is the expected one.
    private static var ifExpected = PanicEpilogue()
    /// Carried out otherwise: no panic was expected, or the message is a different one.
    private static var ifNotExpected = PanicEpilogue()

    /// Starts a watch: a panic from now on whose message contains `expected` exits with
    /// `statusIfExpected`, any other with `statusIfNot` (nil: the panic's own status), each
    /// after the lines added with `sayIfExpected` / `sayIfNot`.
    static func begin(expecting expected: StaticString?, statusIfExpected: ExitStatus, statusIfNot: ExitStatus?) {
        expectedMessage = expected
        ifExpected.reset(status: statusIfExpected)
        ifNotExpected.reset(status: statusIfNot)
        isActive = true
    }

    static func sayIfExpected(_ line: LogMessage) { ifExpected.append(line) }
    static func sayIfNot(_ line: LogMessage) { ifNotExpected.append(line) }

    /// Ends the watch: a panic from now on exits with its own status.
    static func end() {
        isActive = false
    }

    /// The panic handler's part: prints the lines for a panic that says `message` and returns
    /// the status to exit with, or nil when no watch is in force or it leaves the status to
    /// the panic. Ends the watch.
    static func conclude(_ message: LogMessage) -> ExitStatus? {
        guard isActive else { return nil }
        isActive = false
        let expected = expectedMessage.map { message.contains($0) } ?? false
        if expected {
            withUnsafePointer(to: &ifExpected) { PanicEpilogue.printLines($0) }
            return ifExpected.status
        }
        withUnsafePointer(to: &ifNotExpected) { PanicEpilogue.printLines($0) }
        return ifNotExpected.status
    }
}
