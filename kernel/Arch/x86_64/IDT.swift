// IDT.swift - the interrupt descriptor table.
//
// Every one of the 256 vectors gets an interrupt gate pointing at its entry stub in
// kernel/Arch/x86_64/InterruptEntry.S; all of them arrive in `interruptDispatch`
// (kernel/Arch/x86_64/Interrupts.swift). Interrupt gates clear IF on entry, so handlers start with
// interrupts off. The double fault uses IST 1 (see GDT.swift).

import ArchSupport

enum IDT {
    static let vectorCount = 256
    static let doubleFault = 8

    static func install() {
        let table = arch_idt_table()!.assumingMemoryBound(to: UInt64.self)
        for vector in 0..<vectorCount {
            let handler = arch_interrupt_stub(UInt32(vector))
            let ist: UInt64 = vector == doubleFault ? UInt64(GDT.doubleFaultIST) : 0
            let gateType: UInt64 = 0x8E  // present, ring 0, 64-bit interrupt gate
            table[2 * vector] = (handler & 0xFFFF) | (UInt64(GDT.kernelCode) << 16) | (ist << 32)
                | (gateType << 40) | (((handler >> 16) & 0xFFFF) << 48)
            table[2 * vector + 1] = handler >> 32
        }
        load()
    }

    /// Loads the (one, shared) IDT on the running CPU; application processors call this alone.
    static func load() {
        arch_lidt(arch_idt_table()!, UInt16(vectorCount * 16 - 1))
    }
}
