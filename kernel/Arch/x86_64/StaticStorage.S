/*
 * StaticStorage.S - fixed, aligned memory the kernel needs before any allocator exists.
 *
 * Swift cannot declare an aligned static byte array, so these regions are declared here and
 * reached through the accessors in kernel/Arch/x86_64/CSupport/arch.h. All of it is in .bss (zeroed by
 * the boot stub) and therefore inside the kernel image, which the physical memory map excludes.
 * Symbols with C names (klog_*) are also what the gdb helpers in qemu/gdb/ read.
 */
    .section .bss, "aw", @nobits

    /* Descriptor tables: the IDT (256 gates), the GDT (5 slots) and the TSS. */
    .balign 4096
    .global idt_table
idt_table:          .skip 4096
    .balign 16
    .global gdt_table, tss_segment
gdt_table:          .skip 64
tss_segment:        .skip 128

    /* The double-fault handler's own stack (IST 1): a kernel stack overflow lands here. */
    .balign 4096
    .global double_fault_stack_bottom, double_fault_stack_top
double_fault_stack_bottom:
                    .skip 16384
double_fault_stack_top:

    /* The kernel log ring: every line ever logged, the newest KLOG_SIZE bytes of it. */
    .balign 4096
    .global klog_buffer, klog_written
    .set KLOG_SIZE, 65536
klog_buffer:        .skip KLOG_SIZE
    .balign 8
klog_written:       .skip 8                 /* total bytes ever written; the ring index is this mod KLOG_SIZE */

    /* The early heap (kernel/Mem/Portable/EarlyHeap.swift), used until the zones are up. */
    .balign 4096
    .global early_heap_start, early_heap_end
early_heap_start:   .skip 1048576
early_heap_end:

    /* The kernel command line, copied out of the multiboot information at boot. */
    .balign 16
    .global command_line_buffer
command_line_buffer: .skip 4096

    .section .rodata
    .global klog_size
    .balign 8
klog_size:          .quad KLOG_SIZE

/* Static slabs (kernel/Mem/KernelZones.swift): zones that must work before the page allocator
 * exists - pv_entry and map_entry - start from slabs carved out of this pool. */
    .section .bss, "aw", @nobits
    .balign 65536
    .global static_slab_pool_start, static_slab_pool_end
static_slab_pool_start:
    .skip 65536
static_slab_pool_end:

/* The static page of buddy descriptors (kernel/Mem/Portable/BuddyDescriptorPool.swift): the
 * buddy allocator describes its first free blocks with these, before any page is free. */
    .section .bss, "aw", @nobits
    .balign 4096
    .global buddy_descriptor_static_page
buddy_descriptor_static_page:
    .skip 4096

/* The debug table (kernel/Kern/DebugTable.swift): what the gdb helpers in qemu/gdb/ read to
 * find the kernel's data structures and the layout of their fields. Header: magic "KDBG" and
 * the version, then the entry count; entries are (name pointer, name length, value). */
    .section .bss, "aw", @nobits
    .balign 16
    .global kernel_debug_table, kernel_debug_table_capacity
    .equ DEBUG_TABLE_CAPACITY, 256
kernel_debug_table:
    .skip 16 + DEBUG_TABLE_CAPACITY * 24
    .section .rodata
    .balign 8
kernel_debug_table_capacity:
    .quad DEBUG_TABLE_CAPACITY

/* Per-CPU storage (kernel/Arch/x86_64/PerCPU.swift): one area per CPU, reached through the GS
 * base, and each application processor's own GDT and TSS (the boot CPU uses gdt_table and
 * tss_segment above). PER_CPU_CAPACITY bounds how many CPUs the kernel runs. */
    .section .bss, "aw", @nobits
    .equ PER_CPU_AREA_SIZE, 512
    .equ PER_CPU_CAPACITY, 64
    .balign 4096
    .global per_cpu_areas, per_cpu_descriptor_tables
per_cpu_areas:
    .skip PER_CPU_AREA_SIZE * PER_CPU_CAPACITY
    .balign 16
per_cpu_descriptor_tables:
    .skip 256 * PER_CPU_CAPACITY                /* 64 bytes of GDT, then the TSS, per CPU */
    .section .rodata
    .balign 8
    .global per_cpu_area_size, per_cpu_capacity
per_cpu_area_size:  .quad PER_CPU_AREA_SIZE
per_cpu_capacity:   .quad PER_CPU_CAPACITY
