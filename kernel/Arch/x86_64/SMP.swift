// SMP.swift - starting the application processors, parking them, talking to them with IPIs.
//
// Bring-up (docs/smp.md draws it):
//   1. before the memory system, `installTrampoline` copies APTrampoline.S's real-mode code to
//      page 8 (the page is kept from the page allocator by MemoryBootstrap);
//   2. once threads, kmem and the PIT run, `start` (boot CPU, thread "main") enables its own
//      local APIC, calibrates the APIC timer against the PIT, registers the IPI handlers, and
//      then starts each chosen AP in turn: a per-CPU area, a stack and a double-fault stack
//      (kmem, with guard pages), the ap_boot_* words, INIT, 10 ms, STARTUP, 200 us, STARTUP
//      again if the AP has not yet stirred, then up to `startTimeout` for the AP to say
//      online. An AP that does not is reported, sent INIT again (so that it cannot wake up
//      later on a stack handed to the next one), and left out;
//   3. the AP, in ap_main: its GS base, GDT and TSS, the IDT, its local APIC; it stores
//      `.online`, starts its APIC timer (its scheduling tick) and becomes its idle thread -
//      the record the boot CPU made for its boot stack - in Scheduler.idleLoop. From then on
//      it runs threads from the common run queue like the boot CPU.
//
// The idle thread of an AP also runs `ParkedWork` functions the boot CPU hands it (SMP.run:
// the smp suite's lock and TLB tests), answers the test IPI (`pingVector`) with an IPI back to
// the boot CPU, and the CPU stops for good on the NMI a panicking CPU sends. While its idle
// thread halts the AP is parked: it touches only memory whose mapping never changes - the
// kernel image, the direct map, its own stacks and the local APIC - and TLB shootdowns skip
// it (TLBShootdown.swift; docs/smp.md).

import ArchSupport
import Synchronization

enum SMP {
    /// A fixed IPI that only wakes a parked CPU (to look at its work).
    static let wakeVector = 0xF0
    /// The test IPI: the receiving AP answers with `answerVector` to the boot CPU.
    static let pingVector = 0xF1
    static let answerVector = 0xF2
    /// The watchdog's heartbeat: the AP only counts it (ProcessorWatch.swift).
    static let heartbeatVector = 0xF4
    /// An AP's local APIC timer: its scheduling tick, at the PIT's rate.
    static let tickVector = 0xF5
    /// How long the boot CPU waits for an AP to come online.
    static let startTimeoutMicroseconds: UInt64 = 1_000_000
    static let stackPages = 4

    /// CPUs online, the boot CPU included. Written by the boot CPU only.
    static var onlineCount = 1

    /// Spins, pausing, until `answered()` holds: another CPU's reply to a mailbox request
    /// (TLBShootdown, ZoneCacheRequests), waited for with interrupts off. After `patience`
    /// pauses `stuck()` reports the CPU that never answered and stops the kernel.
    @inline(__always)
    static func awaitAnswer(patience: UInt64, _ answered: () -> Bool, stuck: () -> Never) {
        var spins: UInt64 = 0
        while !answered() {
            CPU.pause()
            spins &+= 1
            if spins == patience { stuck() }
        }
    }

    /// Per-CPU areas in use: 0 is the boot CPU, 1..<areasUsed the APs that were tried.
    static var areasUsed = 1
    /// Answers the boot CPU received to test IPIs.
    static let answersReceived = Atomic<UInt64>(0)
    /// Set by a panicking CPU before it sends the stop NMI: an NMI then means "stop".
    static let stopRequested = Atomic<Bool>(false)
    /// Spurious APIC interrupts (no EOI is due for them).
    static let spuriousInterrupts = Atomic<UInt64>(0)
    /// The trampoline page, once copied; nil when no AP will be started.
    static var trampolinePage: PhysicalAddress? = nil

    // MARK: - Before the memory system

    /// Copies the AP trampoline to its page below 1 MiB while the boot identity map reaches it.
    /// Only when there is an AP to start, and only into memory the firmware calls usable.
    static func installTrampoline() {
        guard !Machine.processorsToStart.isEmpty else { return }
        let base = PhysicalAddress(arch_ap_trampoline_base())
        let size = arch_ap_trampoline_size()
        kassert(size <= pageSize, "the AP trampoline (\(size) bytes) does not fit its page")
        let page = PhysicalRange(start: base, end: base + pageSize)
        let usable = BootInfo.memoryMap.contains { $0.kind == .usable && $0.range.start <= page.start && $0.range.end >= page.end }
        guard usable else {
            Log.warn(.cpu, "the AP trampoline page \(address: base) is not usable RAM in the memory map; running on the boot CPU only")
            Machine.processorsLeftOut += Machine.processorsToStart.count
            Machine.processorsToStart = []
            return
        }
        let source = UnsafeRawPointer(bitPattern: UInt(arch_ap_trampoline_start()))!
        UnsafeMutableRawPointer(bitPattern: UInt(base.rawValue))!.copyMemory(from: source, byteCount: Int(size))
        trampolinePage = base
        // Several CPUs will run threads: from now on every section takes the kernel lock. Set
        // here, in kernel_main's straight line, where no section is open to be unbalanced.
        KernelLock.active = true
    }

    // MARK: - Starting the APs

    static func start() {
        guard LocalAPIC.isMapped else {
            Log.info(.cpu, "1 CPUs online (no local APIC)")
            return
        }
        let boot = PerCPU.this
        boot.pointee.state.store(CPUState.online.rawValue, ordering: .releasing)
        LocalAPIC.enable(.bootProcessor)
        kassert(LocalAPIC.id == boot.pointee.apicID, "the boot CPU's APIC id \(LocalAPIC.id) is not CPUID's \(boot.pointee.apicID)")
        InterruptLines.switchToIOAPIC()
        Interrupts.register(vector: wakeVector, wakeInterrupt, locking: .lockFree)
        Interrupts.register(vector: pingVector, pingInterrupt, locking: .lockFree)
        Interrupts.register(vector: answerVector, answerInterrupt, locking: .lockFree)
        Interrupts.register(vector: heartbeatVector, heartbeatInterrupt, locking: .lockFree)
        Interrupts.register(vector: tickVector, processorTickInterrupt, locking: .lockFree)
        Interrupts.register(vector: LocalAPIC.spuriousVector, spuriousInterrupt, locking: .lockFree)
        TLBShootdown.start()
        ZoneCacheRequests.start()
        LocalAPIC.calibrate()
        Interrupts.register(vector: LocalAPIC.alarmVector, alarmInterrupt, locking: .lockFree)
        LocalAPIC.alarmRegistered = true
        if trampolinePage != nil {
            for apicID in Machine.processorsToStart { startProcessor(apicID) }
        }
        Log.info(.cpu, "\(onlineCount) CPUs online")
        InterruptLines.spreadOverCPUs()
        Timer.moveToLocalAPIC()
    }

    private static func startProcessor(_ apicID: UInt32) {
        let index = areasUsed
        areasUsed += 1
        let cpu = PerCPU.prepare(index, apicID: apicID)
        let stack = Threads.allocateStack("ap", pages: stackPages)
        let doubleFaultStack = Threads.allocateStack("ap double fault", pages: stackPages)
        cpu.pointee.stackBottom = (stack.start + pageSize).rawValue
        cpu.pointee.stackTop = (stack.start + stack.bytes).rawValue
        cpu.pointee.doubleFaultStackBottom = (doubleFaultStack.start + pageSize).rawValue
        cpu.pointee.doubleFaultStackTop = (doubleFaultStack.start + doubleFaultStack.bytes).rawValue
        let idle = Scheduler.makeIdleThread(for: cpu, stack: stack)
        cpu.pointee.state.store(CPUState.starting.rawValue, ordering: .relaxed)
        arch_set_ap_boot_parameters(Pmap.root.rawValue, cpu.pointee.stackTop, UInt64(UInt(bitPattern: cpu)))

        let vector = Int(trampolinePage!.rawValue >> 12)
        LocalAPIC.sendIPI(to: apicID, .initialize)
        LocalAPIC.delay(microseconds: 10_000)
        LocalAPIC.sendIPI(to: apicID, vector: vector, .startup)
        LocalAPIC.delay(microseconds: 200)
        if cpu.pointee.currentState != .online {
            LocalAPIC.sendIPI(to: apicID, vector: vector, .startup)
        }
        var waited: UInt64 = 0
        while cpu.pointee.currentState != .online && waited < startTimeoutMicroseconds {
            LocalAPIC.delay(microseconds: 100)
            waited += 100
        }
        if cpu.pointee.currentState == .online {
            Threads.register(idle)
            onlineCount += 1
            Log.info(.cpu, "cpu \(index) (APIC id \(apicID)) online, stack \(address: cpu.pointee.stackBottom) - \(address: cpu.pointee.stackTop)")
        } else {
            // Back to wait-for-SIPI: it must not wake later on parameters meant for the next AP.
            LocalAPIC.sendIPI(to: apicID, .initialize)
            cpu.pointee.state.store(CPUState.unresponsive.rawValue, ordering: .releasing)
            idle.deinitialize(count: 1)
            Kmalloc.free(UnsafeMutableRawPointer(idle))
            Log.warn(.cpu, "cpu \(index) (APIC id \(apicID)) did not come online within \(startTimeoutMicroseconds / 1000) ms; continuing without it")
        }
    }

    // MARK: - Parked work

    /// Hands `work(argument)` to AP `cpu`, whose idle thread runs it, and wakes it. Boot CPU
    /// only; the CPU must have finished its previous work. The work starts when the AP next
    /// runs its idle thread: at once when nothing else is ready for it.
    static func run(on cpu: PerCPURef, _ work: ParkedWork, argument: UInt64) {
        kassert(cpu.pointee.index != 0 && cpu.pointee.currentState == .online, "SMP.run: cpu \(cpu.pointee.index) is not a parked AP")
        kassert(isIdle(cpu), "SMP.run: cpu \(cpu.pointee.index) is still busy")
        cpu.pointee.work = work
        cpu.pointee.workArgument = argument
        cpu.pointee.workRequested.wrappingAdd(1, ordering: .releasing)
        LocalAPIC.sendIPI(to: cpu.pointee.apicID, vector: wakeVector, .fixed)
    }

    /// Whether work handed to `cpu` waits to run.
    static func hasRequestedWork(_ cpu: PerCPURef) -> Bool {
        cpu.pointee.workRequested.load(ordering: .acquiring) != cpu.pointee.workDone.load(ordering: .relaxed)
    }

    /// On an AP's idle thread, interrupts on: runs the work handed to it, if any.
    static func runRequestedWork(_ cpu: PerCPURef) {
        let requested = cpu.pointee.workRequested.load(ordering: .acquiring)
        guard requested != cpu.pointee.workDone.load(ordering: .relaxed) else { return }
        if let work = cpu.pointee.work { work(cpu.pointee.workArgument) }
        cpu.pointee.workDone.store(requested, ordering: .releasing)
    }

    /// Whether `cpu` has finished all the work handed to it.
    static func isIdle(_ cpu: PerCPURef) -> Bool {
        cpu.pointee.workDone.load(ordering: .acquiring) == cpu.pointee.workRequested.load(ordering: .relaxed)
    }

    /// The areas of the online application processors.
    static func forEachOnlineAP(_ body: (PerCPURef) -> Void) {
        for index in 1..<areasUsed where PerCPU.area(index).pointee.currentState == .online {
            body(PerCPU.area(index))
        }
    }

    // MARK: - Stopping (panics)

    /// Sends the stop NMI to every other online CPU and waits briefly for each to say it
    /// stopped. Returns how many did. Called by panic(), interrupts off.
    static func stopOthers() -> Int {
        guard areasUsed > 1 else { return 0 }
        stopRequested.store(true, ordering: .releasing)
        let me = PerCPU.this.pointee.index
        var stopped = 0
        for index in 0..<areasUsed where index != me {
            let cpu = PerCPU.area(index)
            guard cpu.pointee.currentState == .online else { continue }
            LocalAPIC.sendIPI(to: cpu.pointee.apicID, .nmi)
            // Bounded: a CPU that does not stop must not keep the panic report from being printed.
            var spins = 0
            while cpu.pointee.currentState != .stopped && spins < 10_000_000 {
                CPU.pause()
                spins += 1
            }
            if cpu.pointee.currentState == .stopped { stopped += 1 }
        }
        return stopped
    }

    /// The NMI handler's answer to a stop request: leave the registers it interrupted where
    /// the panic report can print them, say so, then halt for good.
    static func stopThisCPU(_ frame: UnsafeMutablePointer<InterruptFrame>) -> Never {
        PerCPU.this.pointee.stopFrame = frame
        if LocalAPIC.isMapped {
            PerCPU.this.pointee.stopInService = Int32(LocalAPIC.highestVector(in: .inServiceFirst))
            PerCPU.this.pointee.stopRequested = Int32(LocalAPIC.highestVector(in: .requestedFirst))
            PerCPU.this.pointee.stopTaskPriority = LocalAPIC.read(.taskPriority)
        }
        PerCPU.this.pointee.state.store(CPUState.stopped.rawValue, ordering: .releasing)
        CPU.haltForever()
    }

    /// Every CPU this panic stopped, with the registers its NMI interrupted (the panicking CPU
    /// calls it, interrupts off, after stopOthers).
    static func forEachStoppedCPU(_ body: (PerCPURef, UnsafeMutablePointer<InterruptFrame>) -> Void) {
        let me = PerCPU.this.pointee.index
        for index in 0..<areasUsed where index != me {
            let cpu = PerCPU.area(index)
            guard cpu.pointee.currentState == .stopped, let frame = cpu.pointee.stopFrame else { continue }
            body(cpu, frame)
        }
    }

    // MARK: - Stacks (for backtraces)

    /// Whether `address` (with 16 bytes above it) is on an AP's stack or double-fault stack.
    static func isOnProcessorStack(_ address: UInt64) -> Bool {
        for index in 1..<areasUsed {
            let cpu = PerCPU.area(index)
            if address >= cpu.pointee.stackBottom && address + 16 <= cpu.pointee.stackTop { return true }
            if address >= cpu.pointee.doubleFaultStackBottom && address + 16 <= cpu.pointee.doubleFaultStackTop { return true }
        }
        return false
    }

    /// Whether `address` is in the guard page below an AP's stack.
    static func isInProcessorStackGuard(_ address: UInt64) -> Bool {
        for index in 1..<areasUsed {
            let bottom = PerCPU.area(index).pointee.stackBottom
            if address >= bottom - pageSize && address < bottom { return true }
        }
        return false
    }
}

// MARK: - The application processor's side

/// Where an AP arrives from ap_long_mode_entry, on its own stack, with the kernel's page tables
/// and interrupts off. Never returns.
@_cdecl("ap_main")
func apMain(_ area: UInt64) -> Never {
    let cpu = PerCPURef(bitPattern: UInt(area))!
    PerCPU.install(cpu)
    let tables = PerCPU.descriptorTables(cpu.pointee.index)
    GDT.install(table: tables.gdt, taskState: tables.taskState, doubleFaultStackTop: cpu.pointee.doubleFaultStackTop)
    IDT.load()
    LocalAPIC.enable(.applicationProcessor)
    TLBShootdown.becomeActive(cpu)
    cpu.pointee.state.store(CPUState.online.rawValue, ordering: .releasing)
    LocalAPIC.startPeriodicTimer(vector: SMP.tickVector)
    // This boot stack is the idle thread's (Scheduler.makeIdleThread).
    CPU.enableInterrupts()
    Scheduler.idleLoop()
}

private func wakeInterrupt(_ frame: UnsafeMutablePointer<InterruptFrame>) {
    LocalAPIC.endOfInterrupt()
    Scheduler.wakeInterrupt()
}

/// On an AP: its scheduling tick - skipped while parked, when its idle thread halts and will
/// look at the run queue itself once this interrupt has ended the halt.
private func processorTickInterrupt(_ frame: UnsafeMutablePointer<InterruptFrame>) {
    LocalAPIC.endOfInterrupt()
    let cpu = PerCPU.this
    ProcessorWatch.processorTick(cpu)
    guard cpu.pointee.tlbActive.load(ordering: .acquiring) else { return }
    let entered = KernelLock.enter()
    Scheduler.processorTick()
    KernelLock.leave(entered)
}

/// On an AP: count the ping and answer the boot CPU.
private func pingInterrupt(_ frame: UnsafeMutablePointer<InterruptFrame>) {
    let cpu = PerCPU.this
    cpu.pointee.pingsAnswered.wrappingAdd(1, ordering: .relaxed)
    LocalAPIC.endOfInterrupt()
    LocalAPIC.sendIPI(to: PerCPU.area(0).pointee.apicID, vector: SMP.answerVector, .fixed)
}

/// On the boot CPU: an AP answered a ping.
private func answerInterrupt(_ frame: UnsafeMutablePointer<InterruptFrame>) {
    SMP.answersReceived.wrappingAdd(1, ordering: .releasing)
    LocalAPIC.endOfInterrupt()
}

/// On an AP: the watchdog's heartbeat; taking it is the proof of life.
private func heartbeatInterrupt(_ frame: UnsafeMutablePointer<InterruptFrame>) {
    PerCPU.this.pointee.heartbeats.wrappingAdd(1, ordering: .relaxed)
    LocalAPIC.endOfInterrupt()
}

/// On the boot CPU: a halted LocalAPIC.delay is over (it reads the timer itself).
private func alarmInterrupt(_ frame: UnsafeMutablePointer<InterruptFrame>) {
    LocalAPIC.endOfInterrupt()
}

/// The APIC's spurious vector needs no EOI.
private func spuriousInterrupt(_ frame: UnsafeMutablePointer<InterruptFrame>) {
    SMP.spuriousInterrupts.wrappingAdd(1, ordering: .relaxed)
}
