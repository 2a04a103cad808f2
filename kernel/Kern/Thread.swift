// Thread.swift - kernel threads: creation, stacks with guard pages, exit, join.
//
// A thread is a Thread record (from kmalloc) and a stack in the kmem submap whose lowest page
// is left unmapped: the map entry still covers it, so nothing else is ever placed there, and a
// stack overflow faults on it (and, unable to push the fault's frame, becomes a double fault
// on its own IST stack, reported as a stack overflow). Threads run in ring 0 and start in
// thread_trampoline (kernel/Arch/x86_64/ContextSwitch.S), which calls `kernel_thread_start`.
//
// A thread ends by returning from its body or by Threads.exit(). Its creator either joins it
// (which frees the stack and the record) or detaches it (the idle thread reaps it).

import ArchSupport

enum ThreadState: UInt8 {
    case ready
    case running
    case sleeping
    case dead

    var name: StaticString {
        switch self {
        case .ready: return "ready"
        case .running: return "running"
        case .sleeping: return "sleeping"
        case .dead: return "dead"
        }
    }
}

/// What a sleeping thread waits on, and so how the wait-for graph (kernel/Kern/WaitGraph.swift)
/// reads `WaitInfo.channel` and where it finds the owner - the thread that could end the wait.
enum WaitKind: UInt8 {
    /// Not asleep.
    case none
    /// A plain wait channel: whoever calls wakeup on it. No owner is recorded.
    case channel
    /// The channel is a Mutex; its owner is Mutex.owner.
    case mutex
    /// The channel is a busy page's descriptor (PageablePage); its owner is PageablePage.busyOwner, the
    /// thread that set busy.
    case busyPage
    /// vm_wait: pages are freed by the pageout thread (Pageout.thread).
    case pages
    /// join: the channel is the Thread joined, which ends the wait by ending.
    case thread
    /// A timed sleep and nothing else: the timer ends it.
    case time

    var name: StaticString {
        switch self {
        case .none: return "none"
        case .channel: return "channel"
        case .mutex: return "mutex"
        case .busyPage: return "busy page"
        case .pages: return "pages"
        case .thread: return "thread"
        case .time: return "time"
        }
    }
}

/// What a sleeping thread waits for: enough to explain a deadlock. Written by Scheduler.sleep
/// with interrupts off, on the sleeping thread's own record; read by the watchdog (interrupts
/// off) and by the gdb helper `kthreads`.
struct WaitInfo {
    var channel: UnsafeRawPointer? = nil
    var reason: StaticString = ""
    /// What `channel` is, and so who owns what the thread waits on.
    var kind: WaitKind = .none
    /// The requester of the page allocation the thread waits in (vm_wait), if any.
    var requester: Requester? = nil
    var pagesWanted: UInt64 = 0
    /// The zone the thread was growing when it began to wait, if any.
    var zone: StaticString? = nil
    var sinceTick: UInt64 = 0
}

struct Thread {
    /// The free paths this thread is in: depth and outermost name (kernel/Lib/FreePath.swift;
    /// FreePath finds the running thread's through its CPU: Scheduler.bootstrap).
    var freePath = FreePathState()
    /// Zones this thread is growing right now, nested (kernel/Mem/Portable/ZoneAllocator.swift).
    var zoneGrowthDepth = 0
    /// The locks this thread holds, for the lock-order checker (lockorder=on: LockOrder.swift).
    var heldLocks = HeldLocks()

    var id: UInt64
    var name: StaticString
    var state: ThreadState = .ready
    var savedStackPointer: UInt64 = 0
    /// The stack's range, guard page included: the guard is [stackStart, stackStart + 4 KiB).
    var stackStart = VirtualAddress(0)
    var stackBytes: UInt64 = 0
    var wait = WaitInfo()
    /// The innermost zone this thread is growing (for the deadlock report).
    var growingZone: StaticString? = nil
    /// Link on the run queue.
    var queueNext: UnsafeMutablePointer<Thread>? = nil
    /// Links on the sleep queue chain of its wait channel, while sleeping
    /// (kernel/Kern/SleepQueues.swift).
    var sleepNext: UnsafeMutablePointer<Thread>? = nil
    var sleepPrevious: UnsafeMutablePointer<Thread>? = nil
    /// Links on the timeout list, while in a timed sleep (wakeAtTick != 0).
    var timeoutNext: UnsafeMutablePointer<Thread>? = nil
    var timeoutPrevious: UnsafeMutablePointer<Thread>? = nil
    /// Link on the list of all threads.
    var allNext: UnsafeMutablePointer<Thread>? = nil
    /// The tick a timed sleep ends at; 0 when the thread is not in one.
    var wakeAtTick: UInt64 = 0
    var preemptDisableCount = 0
    /// The kernel lock's depth on its CPU when it switched away (KernelLock.swift).
    var kernelLockDepth = 0
    /// Which CPUs may run it (Scheduler.mayRun).
    var affinity = CPUAffinity.any
    /// The CPU it runs on, or last ran on (for kthreads).
    var cpu = 0
    var quantumLeft = 0
    var body: (() -> Void)? = nil
    var detached = false
    /// Set by the out-of-memory policy: the thread must stop at its next chance.
    var killed = false
    var switchesIn: UInt64 = 0
    var createdAtTick: UInt64 = 0

    init(id: UInt64, name: StaticString) {
        self.id = id
        self.name = name
    }
}

typealias ThreadRef = UnsafeMutablePointer<Thread>

/// Where a thread may run. Threads migrate freely by default: one run queue serves every CPU.
enum CPUAffinity: Equatable {
    case any
    /// Only CPU `index`: the boot thread stays on the boot CPU, where the test harness and
    /// SMP.run expect it, and each AP's idle thread on its AP.
    case only(Int)

    func allows(_ index: Int) -> Bool {
        switch self {
        case .any: return true
        case .only(let cpu): return cpu == index
        }
    }
}

extension LogTag {
    static let thread = LogTag("thread")
}

enum Threads {
    static var all: ThreadRef? = nil
    static var nextID: UInt64 = 1
    static var created: UInt64 = 0
    static var live = 0
    static let defaultStackPages = 4

    /// Registers `thread` on the list of all threads.
    static func register(_ thread: ThreadRef) {
        withInterruptsDisabled {
            thread.pointee.allNext = all
            all = thread
            live += 1
        }
    }

    static func makeRecord(_ name: StaticString) -> ThreadRef {
        let thread = Kmalloc.allocate(MemoryLayout<Thread>.stride)!.bindMemory(to: Thread.self, capacity: 1)
        let id = withInterruptsDisabled { () -> UInt64 in
            nextID += 1
            return nextID - 1
        }
        thread.initialize(to: Thread(id: id, name: name))
        thread.pointee.createdAtTick = Timer.ticks
        return thread
    }

    /// A kernel stack of `pages` pages in the kmem submap with an unmapped guard page below
    /// it: returns the start (the guard page) and the size, guard included.
    static func allocateStack(_ name: StaticString, pages: Int) -> (start: VirtualAddress, bytes: UInt64) {
        let bytes = UInt64(pages + 1) * pageSize
        guard let start = Kmem.allocate(bytes, .ordinary) else { panic("\(name): no memory for a stack of \(pages) pages") }
        // The lowest page becomes the guard: unmapped, but still inside the stack's map entry.
        if let guardPage = Pmap.extract(start).flatMap({ PhysicalMemory.index(of: $0) }) {
            Pmap.remove(start, pages: 1)
            PhysicalMemory.clearUse(guardPage, .wired)
            PhysicalMemory.free(guardPage)
        }
        return (start, bytes)
    }

    /// Creates a thread that runs `body` and puts it on the run queue.
    @discardableResult
    static func spawn(_ name: StaticString, stackPages: Int = defaultStackPages, detached: Bool = false,
                      affinity: CPUAffinity = .any, _ body: @escaping () -> Void) -> ThreadRef {
        let thread = makeRecord(name)
        thread.pointee.affinity = affinity
        let (start, bytes) = allocateStack(name, pages: stackPages)
        thread.pointee.stackStart = start
        thread.pointee.stackBytes = bytes
        thread.pointee.body = body
        thread.pointee.detached = detached
        // The first switch "returns" into thread_trampoline with r12 = the thread.
        let top = start + bytes
        let frame = pointer(at: top - 7 * 8).assumingMemoryBound(to: UInt64.self)
        frame[0] = 0                               // r15
        frame[1] = 0                               // r14
        frame[2] = 0                               // r13
        frame[3] = UInt64(UInt(bitPattern: thread)) // r12
        frame[4] = 0                               // rbx
        frame[5] = 0                               // rbp
        frame[6] = arch_thread_trampoline()        // return address
        thread.pointee.savedStackPointer = (top - 7 * 8).rawValue
        register(thread)
        withInterruptsDisabled { created += 1 }
        Scheduler.makeReady(thread)
        return thread
    }

    /// Ends the calling thread.
    static func exit() -> Never {
        CPU.disableInterrupts()
        _ = KernelLock.enter()
        let thread = Scheduler.current
        kassert(thread.pointee.freePath.depth == 0, "thread \(thread.pointee.name) exits inside a free path (\(thread.pointee.freePath.outermost.name))")
        thread.pointee.state = .dead
        thread.pointee.body = nil
        _ = Scheduler.wakeup(UnsafeRawPointer(thread))
        Scheduler.switchAway()
        panic("a dead thread was scheduled")
    }

    /// Waits until `thread` has ended, then frees it. Returns whether it was killed.
    @discardableResult
    static func join(_ thread: ThreadRef) -> Bool {
        withInterruptsDisabled {
            while thread.pointee.state != .dead {
                Scheduler.sleep(on: UnsafeRawPointer(thread), reason: "join", kind: .thread)
            }
        }
        let killed = thread.pointee.killed
        reap(thread)
        return killed
    }

    /// Frees a dead thread's stack and record.
    static func reap(_ thread: ThreadRef) {
        kassert(thread.pointee.state == .dead, "reaping thread \(thread.pointee.name), which is not dead")
        withInterruptsDisabled {
            var link: ThreadRef? = nil
            var current = all
            while let candidate = current, candidate != thread {
                link = candidate
                current = candidate.pointee.allNext
            }
            if let link = link { link.pointee.allNext = thread.pointee.allNext } else { all = thread.pointee.allNext }
            live -= 1
        }
        if thread.pointee.stackBytes > 0 { Kmem.free(thread.pointee.stackStart, thread.pointee.stackBytes) }
        thread.deinitialize(count: 1)
        Kmalloc.free(UnsafeMutableRawPointer(thread))
    }

    /// Reaps detached threads that have ended (every CPU's idle thread calls this). A thread
    /// found is claimed - no longer detached - before the lock is let go, so that two idle
    /// CPUs never reap the same one.
    static func reapDetached() {
        while let dead = withInterruptsDisabled({ () -> ThreadRef? in
            var current = all
            while let thread = current {
                if thread.pointee.detached && thread.pointee.state == .dead {
                    thread.pointee.detached = false
                    return thread
                }
                current = thread.pointee.allNext
            }
            return nil
        }) {
            reap(dead)
        }
    }

    static func forEach(_ body: (ThreadRef) -> Void) {
        var current = all
        while let thread = current {
            body(thread)
            current = thread.pointee.allNext
        }
    }

    /// Whether `address` is on some thread's stack (for the backtrace walker).
    static func isOnStack(_ rawAddress: UInt64) -> Bool {
        let address = VirtualAddress(rawAddress)
        var found = false
        forEach { thread in
            let t = thread.pointee
            if t.stackBytes > 0 && address >= t.stackStart + pageSize && address + 16 <= t.stackStart + t.stackBytes { found = true }
        }
        return found
    }

    /// Whether `address` is in some thread's stack guard page.
    static func isInStackGuard(_ rawAddress: UInt64) -> Bool {
        let address = VirtualAddress(rawAddress)
        var found = false
        forEach { thread in
            let t = thread.pointee
            if t.stackBytes > 0 && address >= t.stackStart && address < t.stackStart + pageSize { found = true }
        }
        return found
    }
}

@_cdecl("kernel_thread_start")
func kernelThreadStart(_ raw: UnsafeMutableRawPointer) -> Never {
    let thread = raw.assumingMemoryBound(to: Thread.self)
    kassert(thread == Scheduler.current, "thread_trampoline ran a thread that is not the current one")
    // The CPU holds the kernel lock for the thread that switched here; this one holds nothing.
    KernelLock.leaveForNewThread()
    CPU.enableInterrupts()
    thread.pointee.body?()
    Threads.exit()
}
