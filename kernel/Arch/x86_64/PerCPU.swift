// PerCPU.swift - each CPU's own data, reached through its GS base.
//
// Every CPU has one `PerCPU` area in static storage (StaticStorage.S: per_cpu_areas), and its
// IA32_GS_BASE MSR points at it, so `PerCPU.this` - one `mov %gs:0` - finds the running
// CPU's area without knowing which CPU it is. The area's first field is its own address;
// that is what gs:0 reads (checked when the area is installed). The boot CPU installs area 0
// as the first thing kernel_main does, before anything reads the running thread; an
// application processor installs its area first thing in ap_main (kernel/Arch/x86_64/SMP.swift).
//
// Who writes what:
//   - index, apicID, the stacks: written once by the boot CPU before the CPU starts; read-only after;
//   - currentThread, idleThread, preemptionCount: only by the CPU itself, interrupts off
//     (on the boot CPU these are the scheduler's: Scheduler.current is `PerCPU.this.currentThread`);
//   - state, the IPI and work counters: atomics, written by either side, as each says.
// An application processor runs threads once SMP.start has given it an idle thread: until then
// its currentThread is the never-mapped placeholder, so any use of the scheduler from one
// faults loudly instead of corrupting it.

import ArchSupport
import Synchronization

/// Where a CPU is in its life.
enum CPUState: UInt32 {
    /// Listed by the firmware (enabled) but not started: `cpus=` left it out, or past capacity.
    case notStarted = 0
    /// INIT-SIPI-SIPI sent; the boot CPU waits for it to say it is online.
    case starting
    /// Running ap_main's parked loop (or, for the boot CPU, the kernel).
    case online
    /// It did not come online within the timeout; the kernel goes on without it.
    case unresponsive
    /// Stopped by a panic on another CPU (NMI); halted for good.
    case stopped

    var name: StaticString {
        switch self {
        case .notStarted: return "not started"
        case .starting: return "starting"
        case .online: return "online"
        case .unresponsive: return "unresponsive"
        case .stopped: return "stopped"
        }
    }
}

/// A function a parked application processor runs when asked (SMP.run(on:...)): a plain C
/// function pointer, so that handing it over allocates and retains nothing.
typealias ParkedWork = @convention(c) (UInt64) -> Void

struct PerCPU: ~Copyable {
    /// This area's own address; what `mov %gs:0` reads. Must stay the first field.
    let address: UInt64
    /// 0 for the boot CPU, then in the order the CPUs were started. Written once, at `prepare`
    /// (a `var` only so that `debugOffsets` can take its address).
    private(set) var index: Int
    /// The local APIC id: what IPIs are addressed to. Written once, like `index`.
    private(set) var apicID: UInt32
    /// The thread running on this CPU. The boot CPU's is the scheduler's `current`.
    /// Set only through `setCurrentThread`, which keeps `freePath` with it. (No property
    /// observer: an observed field has no fixed address, and its offset is measured.)
    var currentThread: ThreadRef = .unsetPlaceholder
    /// The running thread's free-path state (FreePath.swift), kept beside `currentThread` so
    /// that the zone fast path checks it with a load, not a call; FreePath.bootState before
    /// there are threads, so that the check needs no branch for that case.
    var freePath: UnsafeMutablePointer<FreePathState> = FreePath.bootStatePointer

    /// The free-path state of interrupt handlers on this CPU (Interrupts.swift points
    /// `freePath` here while one runs): a handler is not inside the free path it interrupted.
    var interruptFreePath = FreePathState()
    /// Likewise the depth of zone growths an interrupt handler on this CPU is in
    /// (KernelZoneEnvironment.growthDepth): not the interrupted thread's.
    var interruptZoneGrowthDepth = 0

    /// The address of `cpu`'s interrupt free-path state (a field of a per-CPU area: it
    /// never moves).
    static func interruptFreePath(of cpu: PerCPURef) -> UnsafeMutablePointer<FreePathState> {
        func address(_ field: UnsafeMutablePointer<FreePathState>) -> UnsafeMutablePointer<FreePathState> { field }
        return address(&cpu.pointee.interruptFreePath)
    }

    mutating func setCurrentThread(_ thread: ThreadRef) {
        currentThread = thread
        freePath = thread.pointer(to: \.freePath)!
    }
    /// The thread this CPU runs when nothing else can (the boot CPU's idle thread).
    var idleThread: ThreadRef = .unsetPlaceholder
    /// Spin locks this CPU holds (kernel/Kern/SpinLock.swift). While it is not zero the CPU
    /// may not switch threads or sleep: another thread on it could spin forever on the lock.
    var preemptionCount = 0
    /// How many of those are `.standalone` spin locks (SpinLock.swift): the ones another CPU
    /// may spin on without the kernel lock, interrupts off (TLBShootdown asserts none is held).
    var standaloneSpinLocks = 0
    /// The kernel lock's nesting on this CPU (kernel/Kern/KernelLock.swift); its own.
    var kernelLockDepth = 0
    /// Zone-lock sections this CPU entered (KernelZoneEnvironment.lock): a zone's slow paths.
    /// The fast paths take none; make bench counts them per 1,000 pairs.
    var zoneLockSections: UInt64 = 0
    /// Kernel-lock sections this CPU entered in the page allocator (PhysicalMemory.allocate
    /// and free past the CPU page lists); make bench counts them per 1,000 order-0 pairs.
    var pageAllocatorSections: UInt64 = 0
    /// The running thread used its quantum while it held preemption off: switch when it lets
    /// go (Preemption.enable). This CPU's, under the kernel lock.
    var needsReschedule = false
    /// The idle thread is about to halt or is halted: a thread made ready for this CPU must
    /// wake it with an IPI (Scheduler.kick). Under the kernel lock.
    var idling = false
    /// The stack ap_main runs on, and the double-fault stack (IST 1); 0 for the boot CPU, whose
    /// stacks are in the image. Used by backtraces to know a frame pointer is safe to follow.
    var stackBottom: UInt64 = 0
    var stackTop: UInt64 = 0
    var doubleFaultStackBottom: UInt64 = 0
    var doubleFaultStackTop: UInt64 = 0
    /// The registers this CPU held when a panicking CPU's NMI stopped it: the NMI's frame, on
    /// this CPU's stack, which stays as it is while the CPU halts. Written by the CPU itself
    /// before it says it stopped (release); read by the panicking CPU after (acquire).
    var stopFrame: UnsafeMutablePointer<InterruptFrame>? = nil
    /// Its local APIC when it stopped, for the report: the highest vector in service (ISR)
    /// and the highest waiting (IRR), -1 for none, and its task priority. A CPU that runs with
    /// interrupts on but takes no heartbeat shows here what blocks it.
    var stopInService: Int32 = -1
    var stopRequested: Int32 = -1
    var stopTaskPriority: UInt32 = 0

    /// A CPUState raw value. The starting CPU stores .online (release) when it is ready; the
    /// boot CPU stores the others.
    let state = Atomic<UInt32>(CPUState.notStarted.rawValue)
    /// Test IPIs this CPU answered (SMP.pingVector).
    let pingsAnswered = Atomic<UInt64>(0)
    /// Work handed to a parked CPU: the boot CPU writes `work` and `workArgument`, then bumps
    /// `workRequested` (release); the CPU runs it and stores `workDone` = requested (release).
    var work: ParkedWork? = nil
    var workArgument: UInt64 = 0
    let workRequested = Atomic<UInt64>(0)
    let workDone = Atomic<UInt64>(0)
    /// TLB shootdown (TLBShootdown.swift): whether the CPU runs work that may use changing
    /// kernel mappings (it stores this itself), the shootdown generation it last flushed at,
    /// and its mailbox - the range the boot CPU writes before bumping `tlbRequested`
    /// (release), and `tlbDone`, stored by this CPU once it invalidated (release).
    let tlbActive = Atomic<Bool>(false)
    var tlbFlushedGeneration: UInt64 = 0
    var tlbStart: UInt64 = 0
    var tlbPages = 0
    let tlbRequested = Atomic<UInt64>(0)
    let tlbDone = Atomic<UInt64>(0)
    /// Zone cache requests (kernel/Mem/ZoneCacheRequests.swift): the zone-lock holder writes
    /// the zone and the request, then bumps `cacheRequested` (release); this CPU answers on its
    /// slot of that zone and stores `cacheDone` = requested (release).
    var cacheRequestZone: UnsafeMutablePointer<ZoneState>? = nil
    var cacheRequest = CPUCache.Request.handOver
    let cacheRequested = Atomic<UInt64>(0)
    let cacheDone = Atomic<UInt64>(0)
    /// Requests this CPU answered: the smp suite checks that its drains really asked.
    var cacheRequestsAnswered: UInt64 = 0
    /// Zone fast-path sequences an interrupt on this CPU sent back to their start, and those
    /// whose statistics increment it finished (RestartableSequences.swift); written by this
    /// CPU's interrupt entry only.
    var sequencesRestarted: UInt64 = 0
    var sequencesFinished: UInt64 = 0
    /// Heartbeat IPIs this CPU took (ProcessorWatch.swift), and what the boot CPU's watchdog
    /// last saw of them and when (its own fields).
    let heartbeats = Atomic<UInt64>(0)
    var heartbeatsSeen: UInt64 = 0
    var heartbeatSeenTick: UInt64 = 0
    /// This AP's own APIC timer ticks, and - on the AP that watches the boot CPU - the boot
    /// CPU's PIT count it last saw and at which of its own ticks (ProcessorWatch.processorTick;
    /// written by this CPU's tick interrupt only).
    var processorTicks: UInt64 = 0
    /// Interrupts this CPU took on vectors whose handlers run under the kernel lock (device
    /// lines, the boot CPU's tick); the interrupts suite sees where a device line arrives.
    var lockedInterrupts: UInt64 = 0
    var bootTicksSeen: UInt64 = 0
    var bootTicksSeenAt: UInt64 = 0

    init(address: UInt64, index: Int, apicID: UInt32) {
        self.address = address
        self.index = index
        self.apicID = apicID
    }

    var currentState: CPUState { CPUState(rawValue: state.load(ordering: .acquiring)) ?? .notStarted }
}

typealias PerCPURef = UnsafeMutablePointer<PerCPU>

extension PerCPU {
    static let gsBaseMSR: UInt32 = 0xC000_0101
    /// Bytes of GDT and TSS each CPU has in per_cpu_descriptor_tables.
    static let descriptorSlotSize = 256

    /// How many CPUs the kernel can run (the static storage's capacity).
    static var capacity: Int { Int(arch_per_cpu_capacity()) }

    /// The area of CPU `index` (not necessarily initialised).
    static func area(_ index: Int) -> PerCPURef {
        precondition(index >= 0 && index < capacity, "PerCPU.area: index out of range")
        let raw = arch_per_cpu_areas()! + index * Int(arch_per_cpu_area_size())
        return raw.assumingMemoryBound(to: PerCPU.self)
    }

    /// The running CPU's area.
    @inline(__always)
    static var this: PerCPURef {
        PerCPURef(bitPattern: UInt(arch_read_gs_u64(0))).unsafelyUnwrapped
    }

    /// Fills area `index` for the CPU with `apicID`. Called by the boot CPU, for itself and for
    /// each CPU before starting it.
    static func prepare(_ index: Int, apicID: UInt32) -> PerCPURef {
        kassert(MemoryLayout<PerCPU>.size <= Int(arch_per_cpu_area_size()), "PerCPU is \(MemoryLayout<PerCPU>.size) bytes, its slot \(arch_per_cpu_area_size())")
        let area = area(index)
        area.initialize(to: PerCPU(address: UInt64(UInt(bitPattern: area)), index: index, apicID: apicID))
        return area
    }

    /// Where the fields gdb's `kcpus` reads sit in an area (kernel/Kern/DebugTable.swift).
    /// PerCPU is ~Copyable, which key-path offsets do not support, so they are measured on the
    /// boot CPU's area: the `var` fields by their addresses, the state word through a borrow of
    /// its Atomic - checked against a load, since a borrow that made a copy would give the
    /// wrong address.
    static func debugOffsets() -> (index: Int, apicID: Int, state: Int, currentThread: Int, idleThread: Int, preemptionCount: Int) {
        let area = area(0)
        let base = UInt(bitPattern: area)
        func offset(_ field: UnsafeMutableRawPointer) -> Int { Int(UInt(bitPattern: field) - base) }
        let index = offset(&area.pointee.index)
        let apicID = offset(&area.pointee.apicID)
        let current = offset(&area.pointee.currentThread)
        let idle = offset(&area.pointee.idleThread)
        let preemption = offset(&area.pointee.preemptionCount)
        let state = withUnsafePointer(to: area.pointee.state) { Int(UInt(bitPattern: $0) - base) }
        kassert(state > 0 && state + 4 <= MemoryLayout<PerCPU>.size
                && (UnsafeRawPointer(area) + state).load(as: UInt32.self) == area.pointee.state.load(ordering: .relaxed),
                "PerCPU.debugOffsets: the state word is not where its borrow says")
        return (index, apicID, state, current, idle, preemption)
    }

    /// Checks that `index`, `currentThread` and `freePath` sit where arch.h's fixed-offset reads
    /// (`arch_percpu_index` and its neighbours) look for them: right after the boot CPU's area
    /// is installed, before anything reads them. Swift lays a struct out in declaration order
    /// today, but does not promise to; a layout that moved them stops the boot here, by name,
    /// instead of making every CPU read the wrong word.
    static func checkFixedOffsets() {
        let area = area(0)
        let base = UInt(bitPattern: area)
        func offset(_ field: UnsafeMutableRawPointer) -> UInt64 { UInt64(UInt(bitPattern: field) - base) }
        let fields: [(StaticString, UInt64, UInt64)] = [
            ("index", offset(&area.pointee.index), arch_percpu_index_offset()),
            ("currentThread", offset(&area.pointee.currentThread), arch_percpu_current_thread_offset()),
            ("freePath", offset(&area.pointee.freePath), arch_percpu_free_path_offset()),
        ]
        for (name, measured, expected) in fields where measured != expected {
            // No panic() yet on the boot CPU (see install). Say it and stop.
            Console.printLine("P panic: PerCPU.\(name) is at offset \(measured), arch.h reads it at \(expected); PerCPU's layout changed")
            QEMU.exit(.panic)
        }
    }

    /// The thread running on this CPU, read with ONE gs-relative load. A thread with
    /// interrupts on must not find its area (gs:0) and then read a field of it in two steps:
    /// preempted between them and resumed on another CPU, it would read the old CPU's
    /// current thread - another thread (a concurrency boot at 4 CPUs saw FreePath.leave
    /// reach another thread's free-path state that way).
    static var runningThread: ThreadRef {
        @inline(__always) get { ThreadRef(bitPattern: UInt(arch_percpu_current_thread())).unsafelyUnwrapped }
    }

    /// Whether this CPU runs an interrupt handler (Interrupts.swift points the free-path
    /// pointer at the CPU's own state for it; a thread switch inside the handler points it
    /// back at the new thread's). Interrupts are off, so the answer holds while they stay so.
    static var inInterruptHandler: Bool {
        runningFreePath == interruptFreePath(of: this)
    }

    /// The running thread's free-path state (FreePath.bootState before there are threads); one
    /// load, as `runningThread`.
    static var runningFreePath: UnsafeMutablePointer<FreePathState> {
        // A bit cast: never null (checkFixedOffsets, and `freePath` is not optional), and a
        // checked unwrap would cost the zone fast path a test and a branch.
        @inline(__always) get { unsafeBitCast(UInt(arch_percpu_free_path()), to: UnsafeMutablePointer<FreePathState>.self) }
    }

    /// The running CPU's index, one load; the caller keeps the thread on this CPU (interrupts
    /// off) for as long as it uses it.
    static var runningIndex: Int {
        @inline(__always) get { Int(truncatingIfNeeded: arch_percpu_index()) }
    }

    /// Points the running CPU's GS base at `area`, and checks that gs:0 now reads the area's
    /// own address (the `address` field is first in the layout).
    static func install(_ area: PerCPURef) {
        let address = UInt64(UInt(bitPattern: area))
        arch_wrmsr(gsBaseMSR, address)
        if arch_read_gs_u64(0) != address {
            // No panic() yet on the boot CPU: it reads the per-CPU area. Say it and stop.
            Console.printLine("P panic: per-CPU area at \(address: address) does not start with its own address; PerCPU's layout changed")
            QEMU.exit(.panic)
        }
    }

    /// This CPU's GDT (40 bytes) and TSS (104 bytes) slot; application processors only.
    static func descriptorTables(_ index: Int) -> (gdt: UnsafeMutableRawPointer, taskState: UnsafeMutableRawPointer) {
        let slot = arch_per_cpu_descriptor_tables()! + index * descriptorSlotSize
        return (slot, slot + 64)
    }
}
