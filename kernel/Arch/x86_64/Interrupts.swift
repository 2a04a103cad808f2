// Interrupts.swift - where every interrupt and exception arrives, and what happens to it.
//
// `interruptDispatch` is called by the common entry path in InterruptEntry.S with the saved
// registers. Exceptions the kernel can resolve (a breakpoint; later, page faults on pageable
// memory) return and resume the interrupted code. Every other exception is fatal: it panics
// with the vector, its name, the error code decoded, RIP, CR2 for page faults, the registers
// and a backtrace. Hardware interrupts (vectors 32 and up) go to the handlers registered in
// `Interrupts.handlers`.

import ArchSupport
import Synchronization

/// A handler for a hardware interrupt vector. Runs with interrupts disabled.
typealias InterruptHandler = (UnsafeMutablePointer<InterruptFrame>) -> Void

/// Whether a handler runs under the kernel lock (kernel/Kern/KernelLock.swift). Device
/// interrupts and the tick touch the shared kernel, as any section does. The IPIs that one CPU
/// sends another - shootdowns, heartbeats, pings - must be taken while the sender holds the
/// lock and waits, so they do not take it; the wake IPI and the AP tick take it themselves,
/// after they checked that their CPU is not parked.
enum InterruptLocking {
    case underKernelLock
    case lockFree
}

enum Interrupts {
    static let firstExternalVector = 32

    /// Handlers for vectors 32...255, nil when nothing is registered.
    static var handlers: UnsafeMutablePointer<InterruptHandler?>? = nil
    static var locking: UnsafeMutablePointer<InterruptLocking>? = nil
    static var breakpointsTaken = 0
    static var spuriousInterrupts = 0

    static func initialize() {
        GDT.install()
        IDT.install()
        let table = UnsafeMutablePointer<InterruptHandler?>.allocate(capacity: IDT.vectorCount)
        table.initialize(repeating: nil, count: IDT.vectorCount)
        handlers = table
        let modes = UnsafeMutablePointer<InterruptLocking>.allocate(capacity: IDT.vectorCount)
        modes.initialize(repeating: .underKernelLock, count: IDT.vectorCount)
        locking = modes
    }

    static func register(vector: Int, _ handler: @escaping InterruptHandler, locking: InterruptLocking = .underKernelLock) {
        precondition(vector >= firstExternalVector && vector < IDT.vectorCount, "Interrupts.register: not an external vector")
        handlers![vector] = handler
        self.locking![vector] = locking
    }
}

@_cdecl("interrupt_dispatch")
func interruptDispatch(_ rawFrame: UnsafeMutableRawPointer) {
    let frame = rawFrame.assumingMemoryBound(to: InterruptFrame.self)
    let vector = Int(frame.pointee.vector)
    switch vector {
    case Exception.breakpoint.rawValue:
        Interrupts.breakpointsTaken += 1
        Log.debug(.cpu, "breakpoint at \(address: frame.pointee.rip), resuming")
    case Exception.nmi.rawValue:
        // A panicking CPU stops the others with an NMI (SMP.stopOthers); any other NMI is fatal.
        if SMP.stopRequested.load(ordering: .acquiring) { SMP.stopThisCPU(frame) }
        Exception.fatal(frame, faultAddress: 0)
    case Exception.pageFault.rawValue:
        let faultAddress = CPU.cr2
        // The one instruction allowed to fault without consequence (ProbeRead.S).
        if frame.pointee.rip == arch_probe_read_load_address() {
            frame.pointee.rip = arch_probe_read_faulted_address()
            return
        }
        // Offered to the VM first once it serves faults (PageFault.swift); it returns true when
        // it resolved the fault and the faulting instruction may be retried.
        if PageFault.isEnabled && PageFault.handle(frame, VirtualAddress(faultAddress)) { return }
        Exception.fatal(frame, faultAddress: faultAddress)
    case 0..<Interrupts.firstExternalVector:
        Exception.fatal(frame, faultAddress: 0)
    default:
        // First of all: an interrupted zone fast path resumes where it must, before a handler
        // may use the same magazine or the scheduler move the thread (RestartableSequences).
        RestartableSequences.fixUp(frame)
        // A handler is not part of the free path its interrupt may have landed in (now that
        // the zone fast path runs with interrupts on, a free's slow path can be interrupted
        // before it turns them off): it checks its allocations against its CPU's own state.
        // Restored from the CPU the handler ends on: a handler that switched threads comes
        // back to this thread, possibly elsewhere, whose own state the scheduler set.
        let threadFreePath = PerCPU.this.pointee.freePath
        PerCPU.this.pointee.freePath = PerCPU.interruptFreePath(of: PerCPU.this)
        defer { PerCPU.this.pointee.freePath = threadFreePath }
        if let handler = Interrupts.handlers?[vector] {
            if Interrupts.locking![vector] == .lockFree {
                handler(frame)
            } else {
                // A device line routed to an AP may arrive while its idle thread halts, parked:
                // shootdowns skipped it, so it becomes active and flushes what changed before
                // the handler touches the kernel's changing mappings, and parks again after, back
                // in its halt (TLBShootdown.swift). Only the idle halt is parked.
                let cpu = PerCPU.this
                let parked = cpu.pointee.index != 0 && !cpu.pointee.tlbActive.load(ordering: .relaxed)
                if parked { TLBShootdown.becomeActive(cpu) }
                cpu.pointee.lockedInterrupts &+= 1
                let entered = KernelLock.enter()
                handler(frame)
                KernelLock.leave(entered)
                if parked { TLBShootdown.becomeParked(cpu) }
            }
        } else {
            Interrupts.spuriousInterrupts += 1
            Log.warn(.cpu, "interrupt on vector \(vector) with no handler, ignored")
        }
    }
}
