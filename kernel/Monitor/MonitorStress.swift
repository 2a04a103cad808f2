// MonitorStress.swift - the monitor's `stress SECONDS`: the pressure workload in the background.
//
// It is the `objects` workload of the stress suite (kernel/Test/Stress.swift: three threads
// fill most of swap with small pageable objects, churn them, check every page, free them),
// run by a detached thread for SECONDS seconds of guest time, so that the prompt comes back at
// once and the tables can be looked at while memory is short. When it ends the runner prints
// one line - what it did and whether anything was lost - and a run that lost pages makes the
// monitor's `exit` report test failure. One run at a time; it needs a swap disk (without one
// the workload would have nowhere to page to and the OOM policy would end it).

enum MonitorStress {
    /// A run is going on (set by `start`, cleared by the runner thread as it ends).
    static var running = false
    static var runs: UInt64 = 0
    /// Runs that lost a page, or whose workers the OOM policy stopped.
    static var failedRuns = 0
    /// Where `stopAndWait` sleeps until the runner is done; set by `prepare`.
    static var doneChannel: UnsafeMutableRawPointer? = nil

    /// Called once as the monitor starts, before any interrupt could need what it sets.
    static func prepare() {
        if doneChannel == nil { doneChannel = UnsafeMutableRawPointer.allocate(byteCount: 8, alignment: 8) }
    }

    static func start(seconds: UInt64) {
        guard !running else {
            Console.printLine("error: stress: a run is going on already; wait for its 'stress finished' line")
            return
        }
        guard SwapDevice.isPresent else {
            Console.printLine("error: stress: needs a swap disk to page to, and this machine has none (make run attaches build/swap.img)")
            return
        }
        running = true
        runs += 1
        let seed = KernelOptions.seed &+ runs &- 1
        Console.printLine("stress: the objects workload runs for \(seconds) s in the background (seed \(seed)); the prompt is yours")
        Threads.spawn("stress-runner", detached: true) {
            let started = Timer.ticks
            let report = Stress.run(.objects, threads: 3, rounds: Int.max, seed: seed, seconds: seconds)
            let lost = report.mismatches > 0 || report.stoppedWorkers > 0
            let verdict: StaticString = lost ? "PAGES LOST" : "nothing lost"
            Console.printLine("stress finished after \(Timer.milliseconds(Timer.ticks - started)) ms: \(report.objectsCreated) objects, \(report.pagesWritten) written, \(report.pagesVerified) pages verified, \(report.mismatches) lost, \(report.stoppedWorkers) workers stopped, \(SwapDevice.pagesWritten) pages written to swap so far: \(verdict)")
            withInterruptsDisabled {
                if lost { failedRuns += 1 }
                running = false
                Scheduler.wakeup(UnsafeRawPointer(doneChannel!))
            }
        }
    }

    /// For `exit`: stops a run that is going on (its workers free and check what they hold)
    /// and waits until it has ended.
    static func stopAndWait() {
        guard running else { return }
        Console.printLine("exit: stopping the stress run first")
        // Asked again every tenth of a second: a runner that has not reached Stress.run yet
        // would set its deadline after a single request and run its whole time.
        withInterruptsDisabled {
            while running {
                Stress.stopNow()
                Scheduler.sleep(on: UnsafeRawPointer(doneChannel!), reason: "stress run to end", untilTick: Timer.ticks + Timer.hertz / 10)
            }
        }
    }
}
