// GDT.swift - the global descriptor table and the task-state segment.
//
// Long mode barely uses segmentation, but it still needs a GDT for the code and data
// selectors and for the TSS, whose only job here is the interrupt stack table: IST slot 1
// points at a dedicated double-fault stack, so that a kernel stack overflow (a page fault
// that cannot push its frame) becomes a double fault on a good stack and a readable panic,
// instead of a triple fault that silently resets the machine.
//
// Selectors: 0x08 kernel code, 0x10 kernel data (the same as the boot GDT, so the segment
// registers need no reload), 0x18 the TSS (a 16-byte system descriptor).
//
// Every CPU has its own GDT and TSS: a TSS descriptor is marked busy when loaded, so two CPUs
// cannot share one, and each CPU needs its own double-fault stack. The boot CPU uses the
// tables in StaticStorage.S; an application processor those in its per-CPU slot
// (kernel/Arch/x86_64/PerCPU.swift), with a double-fault stack allocated when it is started.

import ArchSupport

enum GDT {
    static let kernelCode: UInt16 = 0x08
    static let kernelData: UInt16 = 0x10
    static let taskState: UInt16 = 0x18
    static let doubleFaultIST: UInt8 = 1

    /// The boot CPU's tables.
    static func install() {
        install(table: arch_gdt_table()!, taskState: arch_tss_segment()!, doubleFaultStackTop: arch_double_fault_stack_top())
    }

    /// Fills and loads a GDT at `table` (40 bytes) and a TSS at `taskState` (104 bytes) whose
    /// IST 1 is `doubleFaultStackTop`, on the running CPU.
    static func install(table: UnsafeMutableRawPointer, taskState tss: UnsafeMutableRawPointer, doubleFaultStackTop istTop: UInt64) {
        let gdt = table.assumingMemoryBound(to: UInt64.self)
        gdt[0] = 0
        gdt[1] = 0x00AF_9A00_0000_FFFF  // present, ring 0, code, long mode
        gdt[2] = 0x00CF_9200_0000_FFFF  // present, ring 0, data, writable

        let tssLimit: UInt64 = 104 - 1
        // IST1 at byte offset 36 is not 8-byte aligned: store it as two 32-bit halves.
        tss.storeBytes(of: UInt32(truncatingIfNeeded: istTop), toByteOffset: 36, as: UInt32.self)
        tss.storeBytes(of: UInt32(truncatingIfNeeded: istTop >> 32), toByteOffset: 40, as: UInt32.self)
        // No I/O permission bitmap: its offset points past the segment's limit.
        tss.storeBytes(of: UInt16(104), toByteOffset: 102, as: UInt16.self)

        let base = UInt64(UInt(bitPattern: tss))
        // Available 64-bit TSS (type 9), present; base split over both descriptor words.
        gdt[3] = (tssLimit & 0xFFFF) | ((base & 0xFF_FFFF) << 16) | (0x89 << 40)
            | (((tssLimit >> 16) & 0xF) << 48) | (((base >> 24) & 0xFF) << 56)
        gdt[4] = base >> 32

        arch_lgdt(gdt, UInt16(5 * 8 - 1))
        arch_ltr(taskState)
    }
}
