// PanicWatch.swift - what a panic means to whoever is watching for one.
//
// Without a watch, a panic ends the run with its own status (.panic, or .deadlock from the
// watchdog) after its report. Code that runs something which may panic - on purpose or not -
// and wants a say in what happens then describes it here beforehand: the text a panic it
// expects has in its message, the exit status for that panic and for any other, and a
// function that finishes the watcher's own report. The panic handler (kernel/Kern/Panic.swift)
// matches the message, calls that function with the verdict, and exits with the chosen status.
// The one watcher today is the test framework (kernel/Test/TestFramework.swift): its function
// completes the KTAP plan - the case that panicked, every case and suite that will now never
// run, the summary - so that a KTAP parser reads a whole run. Kern owns the state so that Kern
// depends on nothing in kernel/Test.
//
// The function runs inside the panic, which may be on a small stack (the watchdog's, inside
// a timer interrupt on the idle thread's two pages) and with memory exhausted: it must not
// allocate, take a lock or sleep, and prints one line at a time from what its watcher set up
// before (PanicWatchReport says so where it is declared).
//
// Locking: none. The watch is written by the one thread running watched code, before and
// after it, never while a panic is in progress; the panic handler reads it with interrupts
// off, on the one CPU, and nothing runs after it.

/// Whether a panic is the one the watcher expected.
enum PanicVerdict {
    /// The message contains the expected text.
    case expected
    /// No panic was expected, or the message is a different one.
    case unexpected
}

/// The watcher's part of a panic report: prints lines after the panic's own report. It runs
/// inside the panic - no allocation, no lock, no sleep.
typealias PanicWatchReport = (PanicVerdict) -> Void

enum PanicWatch {
    /// Whether a watch is in force.
    private(set) static var isActive = false
    /// Text the panic message must contain for the panic to be the expected one; nil when no
    /// panic is expected.
    private(set) static var expectedMessage: StaticString? = nil
    private static var statusIfExpected = ExitStatus.success
    /// nil: the panic's own status.
    private static var statusIfNot: ExitStatus? = nil
    /// nil (never called) until a watch begins; static storage, initialised at load time.
    private static var report: PanicWatchReport? = nil

    /// Starts a watch: a panic from now on whose message contains `expected` exits with
    /// `statusIfExpected`, any other with `statusIfNot` (nil: the panic's own status), each
    /// after `report` has printed the watcher's lines.
    static func begin(expecting expected: StaticString?, statusIfExpected: ExitStatus, statusIfNot: ExitStatus?,
                      report: @escaping PanicWatchReport) {
        expectedMessage = expected
        self.statusIfExpected = statusIfExpected
        self.statusIfNot = statusIfNot
        self.report = report
        isActive = true
    }

    /// Ends the watch: a panic from now on exits with its own status.
    static func end() {
        isActive = false
    }

    /// The panic handler's part: lets the watcher finish its report for a panic that says
    /// `message`, and returns the status to exit with, or nil when no watch is in force or it
    /// leaves the status to the panic. Ends the watch.
    static func conclude(_ message: LogMessage) -> ExitStatus? {
        guard isActive, let report = report else { return nil }
        isActive = false
        let expected = expectedMessage.map { message.contains($0) } ?? false
        report(expected ? .expected : .unexpected)
        return expected ? statusIfExpected : statusIfNot
    }
}
