// Exceptions.swift - the 32 CPU exception vectors, and the report a fatal one produces.
//
// The report is built for two readers: a person at the console and qemu/runner.py, which
// symbolises every address after "rip" and "#N" against build/kernel.elf. A Swift runtime
// trap (overflow, bounds, nil unwrap, fatalError) is a `ud2` instruction: the report says so,
// and the symbolised RIP names the check ("Swift runtime failure: arithmetic overflow").
// A double fault always runs on its own stack (IST 1), so a stack overflow is reported too.

import ArchSupport

enum Exception: Int {
    case divideError = 0, debug, nmi, breakpoint, overflow, boundRange, invalidOpcode,
         deviceNotAvailable, doubleFault, coprocessorSegmentOverrun, invalidTSS, segmentNotPresent,
         stackSegmentFault, generalProtection, pageFault, reserved15, x87FloatingPoint,
         alignmentCheck, machineCheck, simdFloatingPoint, virtualization, controlProtection

    static func name(of vector: Int) -> StaticString {
        switch Exception(rawValue: vector) {
        case .divideError: return "#DE divide error"
        case .debug: return "#DB debug"
        case .nmi: return "NMI non-maskable interrupt"
        case .breakpoint: return "#BP breakpoint"
        case .overflow: return "#OF overflow"
        case .boundRange: return "#BR bound range exceeded"
        case .invalidOpcode: return "#UD invalid opcode"
        case .deviceNotAvailable: return "#NM device not available"
        case .doubleFault: return "#DF double fault"
        case .coprocessorSegmentOverrun: return "coprocessor segment overrun"
        case .invalidTSS: return "#TS invalid TSS"
        case .segmentNotPresent: return "#NP segment not present"
        case .stackSegmentFault: return "#SS stack-segment fault"
        case .generalProtection: return "#GP general protection fault"
        case .pageFault: return "#PF page fault"
        case .x87FloatingPoint: return "#MF x87 floating-point error"
        case .alignmentCheck: return "#AC alignment check"
        case .machineCheck: return "#MC machine check"
        case .simdFloatingPoint: return "#XM SIMD floating-point error"
        case .virtualization: return "#VE virtualization exception"
        case .controlProtection: return "#CP control protection"
        case .reserved15, .none: return "reserved exception"
        }
    }

    static func isInBootStackGuard(_ address: UInt64) -> Bool {
        address >= arch_boot_stack_guard() && address < arch_boot_stack_bottom()
    }

    static func isInStackGuard(_ address: UInt64) -> Bool {
        isInBootStackGuard(address) || (Scheduler.started && Threads.isInStackGuard(address)) || SMP.isInProcessorStackGuard(address)
    }

    /// Panics with a full report of the exception in `frame`.
    static func fatal(_ frame: UnsafeMutablePointer<InterruptFrame>, faultAddress: UInt64) -> Never {
        let vector = Int(frame.pointee.vector)
        let state = frame.pointee
        switch Exception(rawValue: vector) {
        case .pageFault:
            let error = state.errorCode
            if isInStackGuard(faultAddress) {
                panic("kernel stack overflow: page fault in a stack guard page at \(address: faultAddress)", frame: frame)
            }
            let cause: StaticString = error & 1 != 0 ? "protection violation" : "page not present"
            panic("page fault at \(address: faultAddress) (\(pageFaultAccess(error)), \(cause)) in kernel mode", frame: frame)
        case .invalidOpcode:
            if isSwiftTrap(at: state.rip) && RuntimeMessages.last.count > 0 {
                panic("Swift runtime trap (ud2 at \(address: state.rip)) after the runtime reported: \(message: RuntimeMessages.last)", frame: frame)
            }
            if isSwiftTrap(at: state.rip) {
                panic("Swift runtime trap (ud2 at \(address: state.rip)): a failed runtime check such as overflow, out-of-bounds, nil unwrap or fatalError; the symbolised rip names it", frame: frame)
            }
            panic("invalid opcode at \(address: state.rip)", frame: frame)
        case .doubleFault:
            if isInStackGuard(state.rsp) || isInStackGuard(CPU.cr2) {
                panic("double fault: kernel stack overflow (rsp \(address: state.rsp), cr2 \(address: CPU.cr2) in a stack guard page)", frame: frame)
            }
            panic("double fault (rsp \(address: state.rsp))", frame: frame)
        case .generalProtection:
            panic("general protection fault, error code \(hex: state.errorCode) (a selector index, or 0 for a non-canonical address)", frame: frame)
        default:
            panic("CPU exception \(vector): \(name(of: vector)), error code \(hex: state.errorCode)", frame: frame)
        }
    }

    static func pageFaultAccess(_ errorCode: UInt64) -> StaticString {
        if errorCode & (1 << 4) != 0 { return "instruction fetch" }
        return errorCode & (1 << 1) != 0 ? "write" : "read"
    }

    /// Swift compiles every failed runtime check to `ud2` (0F 0B).
    static func isSwiftTrap(at rip: UInt64) -> Bool {
        guard rip >= arch_text_start() && rip + 2 <= arch_text_end() else { return false }
        let bytes = UnsafePointer<UInt8>(bitPattern: UInt(rip))!
        return bytes[0] == 0x0F && bytes[1] == 0x0B
    }
}
