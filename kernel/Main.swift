// Main.swift - the Swift entry point and the boot sequence.
//
// boot/multiboot.S calls kernel_main in 64-bit mode on the boot stack, with the multiboot
// magic and the physical address of the multiboot information. From here the kernel brings
// up its subsystems in dependency order (docs/boot.md), then either runs the tests the
// command line selects or, without `test=`, reports and exits: QEMU never stays behind.
//
// This file sits at the top of kernel/, in no subsystem, because it is the one place that
// knows them all - including the tests, benchmarks and stress runs a command line may ask
// for. No subsystem (Kern, Mem, VM, Arch, Lib, Drivers, Console) calls into kernel/Test.

import ArchSupport

enum Kernel {
    static let name: StaticString = "swift-kernel"
    static let version: StaticString = "0.1"
}

@_cdecl("kernel_main")
public func kernelMain(_ magic: UInt32, _ infoAddress: UInt32) -> Never {
    // First: the boot CPU's per-CPU area, which the running thread and every lock live in.
    PerCPU.install(PerCPU.prepare(0, apicID: CPU.initialAPICID))
    PerCPU.checkFixedOffsets()
    Console.initialize()
    RestartableSequences.check()   // the zone fast path's table and layouts, before any interrupt
    FreePathCheck.install()   // before anything allocates: no free path may (kernel/Lib/FreePath.swift)
    Log.info(.boot, "\(Kernel.name) \(Kernel.version): an x86-64 kernel in Embedded Swift")
    Interrupts.initialize()
    Log.info(.cpu, "GDT, TSS (double faults on IST \(GDT.doubleFaultIST)) and IDT (\(IDT.vectorCount) vectors) installed")

    BootInfo.read(magic: magic, infoAddress: infoAddress)
    Log.info(.cmdline, "command line: '\(BootInfo.commandLine)'")
    KernelOptions.parse(BootInfo.commandLine, from: BootInfo.loader)
    if KernelOptions.help { KernelOptions.printHelp() }
    KernelOptions.stopIfAnyWasRejected()
    Log.info(.boot, "kernel image \(address: arch_kernel_start()) - \(address: arch_kernel_end()) (\(bytes: arch_kernel_end() - arch_kernel_start()))")
    BootInfo.logMemoryMap()
    Machine.discover()          // while the boot identity map reaches the firmware's tables
    SMP.installTrampoline()     // likewise page 8, which MemoryBootstrap then keeps for it
    MemoryBootstrap.run()
    startThreadsAndPaging()

    kernelInitComplete()
}

/// From here on the kernel is a set of threads: the boot flow becomes thread "main", the
/// timer preempts, page faults on pageable memory are served, allocations wait for the
/// pageout thread, which pages out to the swap disk if there is one.
func startThreadsAndPaging() {
    PIC.initialize()
    Scheduler.bootstrap()
    VMWait.enable()
    PageFault.enable()
    PCI.enumerate()
    SwapDevice.initialize()
    SwapMetadata.initialize(swapBlocks: SwapDevice.blocks)
    Timer.start()
    CPU.enableInterrupts()
    Pageout.start()
    Trace.start()
    SMP.start()
    MemoryBootstrap.logReserveConcurrency()
    DebugTable.fill()
}

/// Every subsystem is up. A landmark with a C name, for gdb (`hbreak kernel_init_complete`):
/// the gdb test and `make debug` users stop here to look at a fully initialised kernel.
@_silgen_name("kernel_init_complete")
@inline(never)
func kernelInitComplete() -> Never {
    Log.info(.boot, "initialisation complete (seed \(KernelOptions.seed))")
    PhysicalMemory.armFaultInjection()
    if !KernelOptions.testSelection.isEmpty {
        TestRunner.run(KernelOptions.testSelection)
    }
    if !KernelOptions.benchSelection.isEmpty {
        Benchmarks.run(KernelOptions.benchSelection)
    }
    if let variant = KernelOptions.stressVariant.flatMap({ StressVariant(rawValue: $0) }) {
        let rounds = KernelOptions.stressRounds > 0 ? Int(KernelOptions.stressRounds) : DeadlockTests.defaultRounds
        let report = Stress.run(variant, threads: 3, rounds: rounds, seed: KernelOptions.seed)
        Pageout.logStatistics()
        Zones.printTable()
        kernelRunFinished(report.mismatches == 0 && report.stoppedWorkers == 0 ? .success : .testFailure)
    }
    if Monitor.requested {
        Log.info(.boot, "no test= option given: straight to the monitor")
    } else {
        Log.info(.boot, "no test= option given, so there is nothing more to do; QEMU exits now")
    }
    kernelRunFinished(.success)
}

/// The end of a run - the tests, a stress= workload, or nothing - with its outcome: QEMU
/// exits with `status`, unless the `monitor` option asked for a prompt first
/// (kernel/Monitor/Monitor.swift), whose `exit` then ends the run.
func kernelRunFinished(_ status: ExitStatus) -> Never {
    if Monitor.requested { Monitor.run(after: status) }
    QEMU.exit(status)
}
