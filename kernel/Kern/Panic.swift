// Panic.swift - the kernel's last words.
//
// A panic stops everything: interrupts off, a report on the console, a frame-pointer
// backtrace, then QEMU exits with the panic status. The report is plain text that
// qemu/runner.py reads: each line starts with "P panic: ", the reason comes first, and every
// code address is printed as "rip 0x..." or "#N 0x..." so the runner can symbolise it.
// If a watch is in force (kernel/Kern/PanicWatch.swift: the test framework sets one around
// each test case), it decides what is printed after the report and the exit status.
// A panic inside a panic (a fault while printing the report) prints one line and exits.
//
// Several CPUs: the first CPU to panic claims the report (an atomic exchange); it stops every
// other online CPU with an NMI (kernel/Arch/x86_64/SMP.swift) before it prints, and its report
// says which CPU it is. A CPU that panics while another one reports halts quietly and is
// stopped by that CPU's NMI: one report, never two interleaved.

import ArchSupport
import Synchronization

enum Panic {
    /// The reporting CPU's index + 1; 0 while no CPU panics.
    static let owner = Atomic<Int>(0)
    static var inProgress: Bool { owner.load(ordering: .relaxed) != 0 }
    static let maximumFrames = 32
}

extension LogTag {
    static let panicTag = LogTag("panic")
}

/// Stops the kernel with `message`; with `frame`, also prints the registers it holds.
/// `status` is the exit status unless a watch in force says otherwise (the watchdog uses .deadlock).
func panic(_ message: LogMessage, frame: UnsafeMutablePointer<InterruptFrame>? = nil, status: ExitStatus = .panic) -> Never {
    CPU.disableInterrupts()
    let cpu = PerCPU.this
    let me = cpu.pointee.index + 1
    let claim = Panic.owner.compareExchange(expected: 0, desired: me, ordering: .acquiringAndReleasing)
    if !claim.exchanged {
        if claim.original == me {
            Console.printLine("P panic: nested panic while reporting a panic: \(message: message)")
            QEMU.exit(.panic)
        }
        // Another CPU is reporting its panic and stops this one with an NMI: wait for it.
        CPU.haltForever()
    }
    // The CPU that held the kernel lock may be one about to be stopped: print without it.
    KernelLock.bypassForPanic()
    let stopped = SMP.stopOthers()
    kernel_panic_entered()   // a gdb landmark (kernel/Arch/x86_64/Landmarks.S)
    Console.printLine("P panic: ---- kernel panic ----")
    Console.printLine("P panic: \(message: message)")
    Console.printLine("P panic: on cpu \(cpu.pointee.index) (APIC id \(cpu.pointee.apicID)) of \(SMP.onlineCount) online; \(stopped) other CPU(s) stopped")
    if let frame = frame {
        printRegisters(frame.pointee)
        printBacktrace(rip: frame.pointee.rip, rbp: frame.pointee.rbp)
    } else {
        printBacktrace(rip: nil, rbp: CPU.framePointer)
    }
    // Where every other CPU was when it was stopped: its registers and its own backtrace.
    SMP.forEachStoppedCPU { other, stopped in
        let f = stopped.pointee
        Console.printLine("P panic: cpu \(other.pointee.index) (APIC id \(other.pointee.apicID)) was stopped at rip \(address: f.rip)  rsp \(address: f.rsp)  rbp \(address: f.rbp)  rflags \(hex: f.rflags)")
        Console.printLine("P panic: cpu \(other.pointee.index) rax \(address: f.rax)  rbx \(address: f.rbx)  rcx \(address: f.rcx)  rdx \(address: f.rdx)")
        Console.printLine("P panic: cpu \(other.pointee.index) local APIC: highest vector in service \(Int(other.pointee.stopInService)), highest requested \(Int(other.pointee.stopRequested)) (the stop NMI is neither), task priority \(hex: UInt64(other.pointee.stopTaskPriority)); heartbeats taken \(other.pointee.heartbeats.load(ordering: .relaxed)), ticks \(other.pointee.processorTicks), device interrupts \(other.pointee.lockedInterrupts)")
        printBacktrace(rip: f.rip, rbp: f.rbp, cpu: other.pointee.index)
    }
    Console.printLine("P panic: ---- end of panic report ----")
    QEMU.exit(PanicWatch.conclude(message) ?? status)
}

/// Panics unless `condition` holds. For invariants whose failure means memory is corrupt.
@inline(__always)
func kassert(_ condition: Bool, _ message: @autoclosure () -> LogMessage) {
    if !condition { panic("assertion failed: \(message: message())") }
}

private func printRegisters(_ f: InterruptFrame) {
    let vector = Int(f.vector)
    Console.printLine("P panic: vector \(vector) (\(Exception.name(of: vector))), error code \(hex: f.errorCode)")
    Console.printLine("P panic: rip \(address: f.rip)  rsp \(address: f.rsp)  rflags \(hex: f.rflags)  cr2 \(address: CPU.cr2)")
    Console.printLine("P panic: rax \(address: f.rax)  rbx \(address: f.rbx)  rcx \(address: f.rcx)")
    Console.printLine("P panic: rdx \(address: f.rdx)  rsi \(address: f.rsi)  rdi \(address: f.rdi)")
    Console.printLine("P panic: rbp \(address: f.rbp)  r8  \(address: f.r8)  r9  \(address: f.r9)")
    Console.printLine("P panic: r10 \(address: f.r10)  r11 \(address: f.r11)  r12 \(address: f.r12)")
    Console.printLine("P panic: r13 \(address: f.r13)  r14 \(address: f.r14)  r15 \(address: f.r15)")
    Console.printLine("P panic: cr0 \(hex: CPU.cr0)  cr3 \(hex: CPU.cr3)  cr4 \(hex: CPU.cr4)")
}

/// Walks the frame-pointer chain. Each frame is [saved rbp][return address]; the chain ends
/// at the zero rbp the boot stub and thread entry set up. A frame pointer outside every known
/// stack stops the walk rather than faulting inside the panic. With `cpu`, the backtrace is
/// another CPU's, one the panic stopped: its lines say which (`cpu N #i`), so that they are
/// never read as the panicking CPU's.
private func printBacktrace(rip: UInt64?, rbp: UInt64, cpu: Int? = nil) {
    func frame(_ index: Int, _ address: UInt64) {
        if let cpu {
            Console.printLine("P panic:   cpu \(cpu) #\(index) \(address: address)")
        } else {
            Console.printLine("P panic:   #\(index) \(address: address)")
        }
    }
    if let cpu {
        Console.printLine("P panic: cpu \(cpu) backtrace:")
    } else {
        Console.printLine("P panic: backtrace:")
    }
    var index = 0
    if let rip = rip {
        frame(index, rip)
        index += 1
    }
    var framePointer = rbp
    var previous: UInt64 = 0
    var repeats = 0
    while framePointer != 0 && index < Panic.maximumFrames {
        guard framePointer % 8 == 0, Backtrace.isOnKnownStack(framePointer) else {
            Console.printLine("P panic:   (frame pointer \(address: framePointer) is not on a known stack; stopping)")
            break
        }
        let slots = UnsafePointer<UInt64>(bitPattern: UInt(framePointer))!
        let returnAddress = slots[1]
        framePointer = slots[0]
        if returnAddress == 0 { break }
        // Deep recursion (a stack overflow) would fill the report with one address.
        if returnAddress == previous {
            repeats += 1
            continue
        }
        if repeats > 0 { Console.printLine("P panic:   (the frame above repeats \(repeats) more times)") }
        repeats = 0
        previous = returnAddress
        // The return address points after the call; one byte back is inside the call, which
        // is the line the symboliser should name.
        frame(index, returnAddress &- 1)
        index += 1
    }
    if repeats > 0 { Console.printLine("P panic:   (the frame above repeats \(repeats) more times)") }
}

enum Backtrace {
    static func isOnKnownStack(_ address: UInt64) -> Bool {
        if address >= arch_boot_stack_bottom() && address + 16 <= arch_boot_stack_top() { return true }
        if address >= arch_double_fault_stack_bottom() && address + 16 <= arch_double_fault_stack_top() { return true }
        if SMP.isOnProcessorStack(address) { return true }
        return Scheduler.started && PerCPU.this.pointee.index == 0 && Threads.isOnStack(address)
    }
}
