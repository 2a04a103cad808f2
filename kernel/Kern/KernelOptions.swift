// KernelOptions.swift - every kernel command-line option, in one table.
//
// Each option has one line below: its name, the kind of value, the default and a help text.
// `KernelOptions.parse` runs the portable parser (kernel/Lib/CommandLine.swift) over the
// multiboot command line and stores what it accepts in the static properties here; every
// error is logged by name, and then the boot stops with the boot-failure status
// (`stopIfAnyWasRejected`): a typo in a test configuration must not pass as a run of the
// defaults. `help` prints this table, before the boot stops if it does. To add an option: add
// a case, its spec, a stored property, and a line in `apply`.

enum KernelOption: Int, CaseIterable {
    case test
    case seed
    case loglevel
    case pagefail
    case zonedebug
    case mapcheck
    case reserves
    case stress
    case stressrounds
    case bench
    case trace
    case cpus
    case help
    case monitor
    case swapdev
    case diskfault
    case irqchip
    case tick
    case irqroute
    case lockorder
    case pageoutcluster
    case pageoutinflight
    case pagelists

    var spec: OptionSpec {
        switch self {
        case .test:
            return OptionSpec("test", .list, default: "", "run test suites: all, list, <suite> or <suite>.<case>, comma-separated")
        case .seed:
            return OptionSpec("seed", .unsigned, default: "1", "seed for every randomised test and workload")
        case .loglevel:
            return OptionSpec("loglevel", .choice("error|warn|info|debug"), default: "info", "log lines above this level are dropped")
        case .pagefail:
            return OptionSpec("pagefail", .text, default: "off", "make page allocations fail: every:N[:requesters] or random:PERMILLE[:requesters] (ordinary, system, pageout, joined by +)")
        case .zonedebug:
            return OptionSpec("zonedebug", .list, default: "none", "zone debug checks: poison, redzone, doublefree, check, all or none")
        case .mapcheck:
            return OptionSpec("mapcheck", .choice("off|on"), default: "off", "validate every vm_map after every operation")
        case .reserves:
            return OptionSpec("reserves", .text, default: "on", "the pageout path's protections: on (all), off (none: reproduces the low-memory deadlock) or a comma list of those to keep - zones (zone reserves), pages (page tiers below free_reserved), nowait (pageout never waits)")
        case .stress:
            return OptionSpec("stress", .choice("objects|kmap"), default: "", "run a stress workload instead of tests, then exit (success when nothing was lost)")
        case .stressrounds:
            return OptionSpec("stressrounds", .unsigned, default: "1500", "rounds per stress thread")
        case .bench:
            return OptionSpec("bench", .choice("all|cpu|pmm|zones|zonescaling|pmap|vmmap|fault|swap|pageout|overhead"), default: "", "run benchmarks instead of tests, then exit")
        case .trace:
            return OptionSpec("trace", .choice("off|on"), default: "off", "print a memory-pressure sample every timer tick for qemu/trace.py (docs/trace.md)")
        case .cpus:
            return OptionSpec("cpus", .unsigned, default: "all", "use at most this many CPUs, the boot CPU included (1 or more); the others stay parked in the firmware")
        case .help:
            return OptionSpec("help", .flag, default: "", "print this table of options")
        case .monitor:
            return OptionSpec("monitor", .flag, default: "", "when the run is over, give a command prompt on the serial console instead of exiting (docs/monitor.md)")
        case .swapdev:
            return OptionSpec("swapdev", .choice("auto|virtio|ahci|ata"), default: "auto", "the swap disk's driver: auto (the first present of virtio-blk, AHCI, ATA) or one of them, which must be present (docs/io.md)")
        case .irqchip:
            return OptionSpec("irqchip", .choice("auto|pic|ioapic"), default: "auto", "which controller delivers device interrupts: auto (the I/O APIC when the firmware lists one), pic (the 8259s), ioapic (docs/smp.md)")
        case .tick:
            return OptionSpec("tick", .choice("apic|pit"), default: "apic", "what drives the boot CPU's tick once the APs are up: apic (its local APIC timer, calibrated on the PIT, as on every AP) or pit (the PIT stays); without a local APIC the PIT stays (docs/smp.md)")
        case .irqroute:
            return OptionSpec("irqroute", .choice("spread|boot"), default: "boot", "where device interrupt lines go once the APs are up: boot (all on the boot CPU) or spread (each line but the PIT's to its own CPU, the APs first); the I/O APIC only (docs/smp.md)")
        case .lockorder:
            return OptionSpec("lockorder", .choice("off|on"), default: "off", "check every mutex and spin lock acquisition against the orders seen so far; a reversed order panics naming both locks and sites (docs/debugging.md)")
        case .pageoutcluster:
            return OptionSpec("pageoutcluster", .unsigned, default: "16", "the most pages the pageout thread writes to swap in one request, 1 to 16; 1 writes one page at a time (docs/io.md)")
        case .pageoutinflight:
            return OptionSpec("pageoutinflight", .unsigned, default: "4", "the most page-out writes in flight at once on a disk that has request slots for them (virtio-blk, AHCI), 0 to 4; 0 waits for each write (docs/io.md)")
        case .pagelists:
            return OptionSpec("pagelists", .choice("on|off"), default: "on", "keep a list of free single pages per CPU in front of the buddy allocator while memory is plentiful (docs/allocators.md); off sends every page through the buddy allocator")
        case .diskfault:
            return OptionSpec("diskfault", .text, default: "off", "make swap disk operations fail: write:N,read:M fails the N-th write and the M-th read since boot, once each; N-L fails the N-th to the L-th (docs/io.md)")
        }
    }
}

enum KernelOptions {
    static var testSelection = ByteString.empty
    static var seed: UInt64 = 1
    static var help = false
    static var pageFailure = ByteString.empty
    static var stressVariant: Int? = nil
    static var stressRounds: UInt64 = 0
    static var benchSelection = ByteString.empty
    static var errorCount = 0

    /// Parses the command line `loader` handed over (with the image path first or not, as
    /// that loader writes it: kernel/Lib/BootLoader.swift).
    static func parse(_ line: ByteString, from loader: BootLoader) {
        let table = KernelOption.allCases.map { $0.spec }
        var handler = Handler()
        table.withUnsafeBufferPointer { options in
            CommandLineParser.parse(line, options: options, layout: loader.layout(of: line), handler: &handler)
        }
    }

    struct Handler: CommandLineHandler {
        mutating func accept(option index: Int, value: OptionValue) {
            switch KernelOption(rawValue: index)! {
            case .test: KernelOptions.testSelection = value.text
            case .seed: KernelOptions.seed = value.number
            case .loglevel: Log.threshold = LogLevel(rawValue: UInt8(value.choice + 1))!
            case .pagefail: KernelOptions.pageFailure = value.text
            case .zonedebug:
                if let debug = ZoneDebug.parse(value.text) {
                    Zones.debug = debug
                } else {
                    reject(.badValue(option: KernelOption.zonedebug.spec, value: value.text))
                }
            case .mapcheck: VMMaps.validateAfterEveryOperation = value.choice == 1
            case .reserves:
                if let protections = ReserveProtections.parse(value.text) {
                    Reserves.protections = protections
                } else {
                    reject(.badValue(option: KernelOption.reserves.spec, value: value.text))
                }
            case .stress: KernelOptions.stressVariant = value.choice
            case .stressrounds: KernelOptions.stressRounds = value.number
            case .bench: KernelOptions.benchSelection = value.text
            case .trace: Trace.requested = TraceSwitch(rawValue: value.choice)!
            case .cpus:
                if value.number == 0 || value.number > UInt64(Int32.max) {
                    KernelOptions.errorCount += 1
                    Log.error(.cmdline, "cpus=\(value.number): expected 1 or more (the boot CPU always runs)")
                } else {
                    Machine.cpuLimit = Int(value.number)
                }
            case .help: KernelOptions.help = true
            case .monitor: Monitor.requested = true
            case .swapdev: Disk.choice = SwapDeviceChoice(rawValue: value.choice)!
            case .lockorder: if value.choice == 1 { LockOrder.enable() }
            case .irqchip: InterruptLines.choice = InterruptControllerChoice(rawValue: value.choice)!
            case .tick: Timer.requested = TickSource(rawValue: value.choice)!
            case .irqroute: InterruptLines.routing = InterruptRouting(rawValue: value.choice)!
            case .pageoutcluster:
                if value.number == 0 || value.number > UInt64(Disk.maximumTransferPages) {
                    KernelOptions.errorCount += 1
                    Log.error(.cmdline, "pageoutcluster=\(value.number): expected 1 to \(Disk.maximumTransferPages) pages")
                } else {
                    Pageout.clusterLimit = Int(value.number)
                }
            case .pageoutinflight:
                if value.number > UInt64(ReserveBounds.pageoutWritesInFlight) {
                    KernelOptions.errorCount += 1
                    Log.error(.cmdline, "pageoutinflight=\(value.number): expected 0 to \(ReserveBounds.pageoutWritesInFlight) writes (the reserve bounds count that many)")
                } else {
                    PageoutRequests.limit = Int(value.number)
                }
            case .pagelists: CPUPageLists.requested = value.choice == 0
            case .diskfault:
                if let plan = DiskFaultPlan.parse(value.text) {
                    Disk.faults = plan
                } else {
                    reject(.badValue(option: KernelOption.diskfault.spec, value: value.text))
                }
            }
        }

        mutating func reject(_ error: CommandLineError) {
            KernelOptions.errorCount += 1
            var message = LogMessage.Appender(message: LogMessage())
            error.describe(into: &message)
            Log.error(.cmdline, message.message)
        }
    }

    /// Ends the run with the boot-failure status (QEMU 39) when any option was rejected. Called
    /// after every problem has been logged, and after `help`, so that both are always shown.
    static func stopIfAnyWasRejected() {
        guard errorCount > 0 else { return }
        Log.error(.cmdline, "\(errorCount) problem(s) on the command line: the boot stops here; the option 'help' lists the options")
        QEMU.exit(.bootFailure)
    }

    static func printHelp() {
        Log.info(.cmdline, "options (name=value, separated by spaces):")
        for option in KernelOption.allCases {
            let spec = option.spec
            var value = LogMessage.Appender(message: LogMessage())
            if case .flag = spec.kind {} else {
                value.write("=")
                spec.describeValue(into: &value)
            }
            Log.info(.cmdline, "  \(spec.name)\(message: value.message)  \(spec.help) [default: '\(spec.defaultValue)']")
        }
    }
}
