// InterruptFrame.swift - the register snapshot every interrupt and exception leaves on the stack.
//
// kernel/Arch/x86_64/InterruptEntry.S pushes the general registers on top of what the CPU pushed
// (error code slot, RIP, CS, RFLAGS, RSP, SS), so the stack at the call into Swift holds
// exactly this structure, lowest address first. The field order must match the push order.

struct InterruptFrame {
    var r15: UInt64
    var r14: UInt64
    var r13: UInt64
    var r12: UInt64
    var r11: UInt64
    var r10: UInt64
    var r9: UInt64
    var r8: UInt64
    var rbp: UInt64
    var rdi: UInt64
    var rsi: UInt64
    var rdx: UInt64
    var rcx: UInt64
    var rbx: UInt64
    var rax: UInt64
    /// Pushed by the entry stub.
    var vector: UInt64
    /// Pushed by the CPU for some exceptions, by the stub (as 0) for the others.
    var errorCode: UInt64
    // Pushed by the CPU.
    var rip: UInt64
    var cs: UInt64
    var rflags: UInt64
    var rsp: UInt64
    var ss: UInt64
}
