/*
 * arch.h - the raw x86-64 primitives the Swift kernel cannot express itself.
 *
 * Every instruction Swift has no spelling for (port I/O, control registers, MSRs, interrupt
 * flags, TLB invalidation, the time-stamp counter) is wrapped here once, as a static inline
 * function, so it inlines into the Swift caller. Symbols defined by the linker script or by
 * the assembly files are exported through accessor functions, because C arrays without a size
 * do not import into Swift. Nothing here has state; the typed wrappers live in kernel/Arch/.
 */
#ifndef KERNEL_ARCH_H
#define KERNEL_ARCH_H

#include <stdint.h>

/* ---- Port I/O ---------------------------------------------------------------------------- */

static inline void arch_outb(uint16_t port, uint8_t value) {
    __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port));
}
static inline uint8_t arch_inb(uint16_t port) {
    uint8_t value;
    __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}
static inline void arch_outw(uint16_t port, uint16_t value) {
    __asm__ volatile("outw %0, %1" : : "a"(value), "Nd"(port));
}
static inline uint16_t arch_inw(uint16_t port) {
    uint16_t value;
    __asm__ volatile("inw %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}
static inline void arch_outl(uint16_t port, uint32_t value) {
    __asm__ volatile("outl %0, %1" : : "a"(value), "Nd"(port));
}
static inline uint32_t arch_inl(uint16_t port) {
    uint32_t value;
    __asm__ volatile("inl %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}
/* Block transfers for the ATA data port: count 16-bit words. */
static inline void arch_insw(uint16_t port, void *buffer, uint64_t count) {
    __asm__ volatile("rep insw" : "+D"(buffer), "+c"(count) : "d"(port) : "memory");
}
static inline void arch_outsw(uint16_t port, const void *buffer, uint64_t count) {
    __asm__ volatile("rep outsw" : "+S"(buffer), "+c"(count) : "d"(port) : "memory");
}

/* ---- Device memory ----------------------------------------------------------------------------- */

/* Volatile loads and stores, for device registers (MMIO) and for memory a device writes behind the
 * compiler's back (a virtqueue's used ring, a status byte): each access happens, once, in program
 * order. x86 keeps stores in order and DMA is cache-coherent, so no fence is needed beyond these. */
static inline uint8_t arch_load8(const volatile void *p) { return *(const volatile uint8_t *)p; }
static inline uint16_t arch_load16(const volatile void *p) { return *(const volatile uint16_t *)p; }
static inline uint32_t arch_load32(const volatile void *p) { return *(const volatile uint32_t *)p; }
static inline void arch_store8(volatile void *p, uint8_t v) { *(volatile uint8_t *)p = v; }
static inline void arch_store16(volatile void *p, uint16_t v) { *(volatile uint16_t *)p = v; }
static inline void arch_store32(volatile void *p, uint32_t v) { *(volatile uint32_t *)p = v; }

/* ---- Control registers, MSRs, flags --------------------------------------------------------- */

static inline uint64_t arch_read_cr0(void) { uint64_t v; __asm__ volatile("mov %%cr0, %0" : "=r"(v)); return v; }
static inline uint64_t arch_read_cr2(void) { uint64_t v; __asm__ volatile("mov %%cr2, %0" : "=r"(v)); return v; }
static inline uint64_t arch_read_cr3(void) { uint64_t v; __asm__ volatile("mov %%cr3, %0" : "=r"(v)); return v; }
static inline uint64_t arch_read_cr4(void) { uint64_t v; __asm__ volatile("mov %%cr4, %0" : "=r"(v)); return v; }
static inline void arch_write_cr3(uint64_t v) { __asm__ volatile("mov %0, %%cr3" : : "r"(v) : "memory"); }
static inline void arch_write_cr4(uint64_t v) { __asm__ volatile("mov %0, %%cr4" : : "r"(v) : "memory"); }

static inline uint64_t arch_rdtsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi) : : "memory");
    return ((uint64_t)hi << 32) | lo;
}

static inline void arch_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t *a, uint32_t *b, uint32_t *c, uint32_t *d) {
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(subleaf));
}

static inline uint64_t arch_read_rflags(void) {
    uint64_t v;
    __asm__ volatile("pushfq; popq %0" : "=r"(v) : : "memory");
    return v;
}
static inline void arch_cli(void) { __asm__ volatile("cli" : : : "memory"); }
static inline void arch_sti(void) { __asm__ volatile("sti" : : : "memory"); }
static inline void arch_hlt(void) { __asm__ volatile("hlt" : : : "memory"); }
/* Enable interrupts and halt in one step: an interrupt arriving between the two is not lost. */
static inline void arch_sti_hlt(void) { __asm__ volatile("sti; hlt" : : : "memory"); }
static inline void arch_pause(void) { __asm__ volatile("pause" : : : "memory"); }
/* Runs `iterations` turns of an empty loop the compiler keeps: plain instructions that pass
   guest time under -icount without leaving QEMU's execution loop, as pause does. */
static inline void arch_spin(unsigned long iterations) {
    while (iterations--) __asm__ volatile("" : : : "memory");
}

/* A breakpoint trap (vector 3); the kernel's handler logs it and returns. */
static inline void arch_int3(void) { __asm__ volatile("int3" : : : "memory"); }

static inline void arch_invlpg(uint64_t va) { __asm__ volatile("invlpg (%0)" : : "r"(va) : "memory"); }

/* One locked instruction: neither an interrupt nor another CPU can fall between its read and
 * its write. */
static inline void arch_increment(uint64_t *counter) { __asm__ volatile("lock incq %0" : "+m"(*counter) : : "memory"); }

/* Atomics on a plain 32-bit word, for locks embedded in ordinary (copyable) structures
 * (kernel/Kern/SpinLock.swift says why not Synchronization's Atomic there). */
static inline int arch_atomic_cmpxchg_acquire_u32(uint32_t *word, uint32_t expected, uint32_t desired) {
    return __atomic_compare_exchange_n(word, &expected, desired, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}
static inline uint32_t arch_atomic_load_relaxed_u32(const uint32_t *word) { return __atomic_load_n(word, __ATOMIC_RELAXED); }
static inline void arch_atomic_store_release_u32(uint32_t *word, uint32_t value) { __atomic_store_n(word, value, __ATOMIC_RELEASE); }

/* A compiler barrier: keeps the optimiser from moving memory accesses across it. */
static inline void arch_barrier(void) { __asm__ volatile("" : : : "memory"); }

/* Device registers: exactly one 32-bit access each, never merged, narrowed or cached by the
 * compiler (an APIC register read with a 1-byte load returns nothing useful). */
static inline uint32_t arch_mmio_read32(uint64_t address) { return *(volatile uint32_t *)address; }
static inline void arch_mmio_write32(uint64_t address, uint32_t value) { *(volatile uint32_t *)address = value; }

/* Model-specific registers. */
static inline uint64_t arch_rdmsr(uint32_t msr) {
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}
static inline void arch_wrmsr(uint32_t msr, uint64_t value) {
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)value), "d"((uint32_t)(value >> 32)) : "memory");
}

/* A quadword at `offset` in the GS segment: the running CPU's per-CPU area (kernel/Arch/x86_64/PerCPU.swift). */
static inline uint64_t arch_read_gs_u64(uint64_t offset) {
    uint64_t v;
    __asm__ volatile("movq %%gs:(%1), %0" : "=r"(v) : "r"(offset) : "memory");
    return v;
}

/* Fields at fixed offsets in the per-CPU area, each read with one gs-relative load whose offset
 * is part of the instruction (PerCPU.checkFixedOffsets stops the boot if the layout moved them).
 * The zone and page-list fast paths read them. `index` never changes on a CPU, and the free-path
 * pointer changes only at a thread switch, a call the compiler cannot see through, so their reads
 * need no memory clobber; the running thread's keeps the one arch_read_gs_u64 has. */
#define ARCH_PERCPU_INDEX_OFFSET 8
#define ARCH_PERCPU_CURRENT_THREAD_OFFSET 24
#define ARCH_PERCPU_FREE_PATH_OFFSET 32
static inline uint64_t arch_percpu_index(void) {
    uint64_t v;
    __asm__ volatile("movq %%gs:%c1, %0" : "=r"(v) : "i"(ARCH_PERCPU_INDEX_OFFSET));
    return v;
}
static inline uint64_t arch_percpu_current_thread(void) {
    uint64_t v;
    __asm__ volatile("movq %%gs:%c1, %0" : "=r"(v) : "i"(ARCH_PERCPU_CURRENT_THREAD_OFFSET) : "memory");
    return v;
}
static inline uint64_t arch_percpu_free_path(void) {
    uint64_t v;
    __asm__ volatile("movq %%gs:%c1, %0" : "=r"(v) : "i"(ARCH_PERCPU_FREE_PATH_OFFSET));
    return v;
}
static inline uint64_t arch_percpu_index_offset(void) { return ARCH_PERCPU_INDEX_OFFSET; }
static inline uint64_t arch_percpu_current_thread_offset(void) { return ARCH_PERCPU_CURRENT_THREAD_OFFSET; }
static inline uint64_t arch_percpu_free_path_offset(void) { return ARCH_PERCPU_FREE_PATH_OFFSET; }

/* ---- The zone fast path: restartable sequences ---------------------------------------------
 * A pop from and a push onto the running CPU's loaded magazine of a zone
 * (kernel/Mem/Portable/ZoneCPUCache.swift), with interrupts left ON: each is a restartable
 * sequence (kernel/Arch/x86_64/RestartableSequences.swift). Everything before the commit
 * store only reads, or writes a magazine slot above `count` that nobody else reads; an
 * interrupt taken there sends the thread back to the sequence's first instruction, which finds
 * its CPU and its magazine again (the handler may have used them; the thread may now run on
 * another CPU). An interrupt between the commit and the statistics increment finishes the
 * increment for it (the slot's address is in rcx, pinned so that the fixup can find it).
 * Each inlined copy records itself in .zone_ras: first instruction, commit, increment, end
 * and the counter's offset in the slot. Layouts (checked at boot: ZoneFastPath.checkLayout):
 * a CPUCache slot is one 64-byte line {loaded, previous, allocations, frees, ...}; a
 * Magazine is {next, count} followed by its rounds. */
#define ARCH_ZONE_SLOT_SHIFT 6
#define ARCH_ZONE_SLOT_ALLOCATIONS 16
#define ARCH_ZONE_SLOT_FREES 24
#define ARCH_ZONE_MAGAZINE_COUNT 8
#define ARCH_ZONE_MAGAZINE_ROUNDS 16
#define ARCH_ZONE_MAGAZINE_CAPACITY 32

/* The sequences' common parts. First: this CPU's slot (index << shift, plus the slot array)
 * and its loaded magazine, leaving for `missing` when there is none. Last: after the commit
 * (label 2), the slot's statistics increment (label 3) and the table entry. */
#define ARCH_ZONE_FIND_LOADED(missing) \
        "1:  movq %%gs:%c[index], %[slot]\n\t" \
        "    shlq $%c[shift], %[slot]\n\t" \
        "    addq %[caches], %[slot]\n\t" \
        "    movq (%[slot]), %[magazine]\n\t" \
        "    testq %[magazine], %[magazine]\n\t" \
        "    jz %l[" missing "]\n\t"
#define ARCH_ZONE_COUNT_AND_RECORD \
        "3:  incq %c[counter](%[slot])\n\t" \
        "4:\n\t" \
        "    .pushsection .zone_ras, \"a\"\n\t" \
        "    .quad 1b, 2b, 3b, 4b, %c[counter]\n\t" \
        "    .popsection"

/* An object from this CPU's loaded magazine, or 0 (no magazine, or an empty one). */
static inline void *arch_zone_pop(void *caches) {
    void *object;
    uint64_t slot, magazine, count;
    __asm__ goto(
        ARCH_ZONE_FIND_LOADED("none")
        "    movq %c[count](%[magazine]), %[number]\n\t"
        "    subq $1, %[number]\n\t"
        "    jb %l[none]\n\t"
        "    movq %c[rounds](%[magazine], %[number], 8), %[object]\n\t"
        "2:  movq %[number], %c[count](%[magazine])\n\t"
        ARCH_ZONE_COUNT_AND_RECORD
        : [slot] "=&c"(slot), [magazine] "=&r"(magazine), [number] "=&r"(count), [object] "=&r"(object)
        : [caches] "r"(caches), [index] "i"(ARCH_PERCPU_INDEX_OFFSET), [shift] "i"(ARCH_ZONE_SLOT_SHIFT),
          [count] "i"(ARCH_ZONE_MAGAZINE_COUNT), [rounds] "i"(ARCH_ZONE_MAGAZINE_ROUNDS),
          [counter] "i"(ARCH_ZONE_SLOT_ALLOCATIONS)
        : "cc", "memory"
        : none);
    /* A magazine never holds a null object (free takes a non-null pointer): said here, the
       caller's nil test of the result folds into the branches above. */
    if (!object) __builtin_unreachable();
    return object;
none:
    return 0;
}

/* Pushes `object` onto this CPU's loaded magazine; 0 when there is none or it is full. */
static inline int arch_zone_push(void *caches, void *object) {
    uint64_t slot, magazine, count;
    __asm__ goto(
        ARCH_ZONE_FIND_LOADED("full")
        "    movq %c[count](%[magazine]), %[number]\n\t"
        "    cmpq $%c[capacity], %[number]\n\t"
        "    jae %l[full]\n\t"
        "    movq %[object], %c[rounds](%[magazine], %[number], 8)\n\t"
        "    addq $1, %[number]\n\t"
        "2:  movq %[number], %c[count](%[magazine])\n\t"
        ARCH_ZONE_COUNT_AND_RECORD
        : [slot] "=&c"(slot), [magazine] "=&r"(magazine), [number] "=&r"(count)
        : [caches] "r"(caches), [object] "r"(object), [index] "i"(ARCH_PERCPU_INDEX_OFFSET),
          [shift] "i"(ARCH_ZONE_SLOT_SHIFT), [count] "i"(ARCH_ZONE_MAGAZINE_COUNT),
          [rounds] "i"(ARCH_ZONE_MAGAZINE_ROUNDS), [capacity] "i"(ARCH_ZONE_MAGAZINE_CAPACITY),
          [counter] "i"(ARCH_ZONE_SLOT_FREES)
        : "cc", "memory"
        : full);
    return 1;
full:
    return 0;
}

/* The restartable sequences' table (.zone_ras, between these linker symbols). */
extern char __zone_ras_start[], __zone_ras_end[];
static inline uint64_t arch_zone_ras_start(void) { return (uint64_t)__zone_ras_start; }
static inline uint64_t arch_zone_ras_end(void) { return (uint64_t)__zone_ras_end; }
static inline uint64_t arch_zone_slot_allocations_offset(void) { return ARCH_ZONE_SLOT_ALLOCATIONS; }
static inline uint64_t arch_zone_slot_frees_offset(void) { return ARCH_ZONE_SLOT_FREES; }
static inline uint64_t arch_zone_magazine_count_offset(void) { return ARCH_ZONE_MAGAZINE_COUNT; }
static inline uint64_t arch_zone_magazine_rounds_offset(void) { return ARCH_ZONE_MAGAZINE_ROUNDS; }
static inline uint64_t arch_zone_magazine_capacity(void) { return ARCH_ZONE_MAGAZINE_CAPACITY; }
static inline uint64_t arch_zone_slot_bytes(void) { return 1u << ARCH_ZONE_SLOT_SHIFT; }

static inline uint64_t arch_read_rbp(void) { uint64_t v; __asm__ volatile("mov %%rbp, %0" : "=r"(v)); return v; }
static inline uint64_t arch_read_rsp(void) { uint64_t v; __asm__ volatile("mov %%rsp, %0" : "=r"(v)); return v; }

/* Descriptor tables: the pseudo-descriptor is built on the stack. */
static inline void arch_lgdt(const void *base, uint16_t limit) {
    struct __attribute__((packed)) { uint16_t limit; const void *base; } d = { limit, base };
    __asm__ volatile("lgdt %0" : : "m"(d) : "memory");
}
static inline void arch_lidt(const void *base, uint16_t limit) {
    struct __attribute__((packed)) { uint16_t limit; const void *base; } d = { limit, base };
    __asm__ volatile("lidt %0" : : "m"(d) : "memory");
}
static inline void arch_ltr(uint16_t selector) { __asm__ volatile("ltr %0" : : "r"(selector) : "memory"); }

/* ---- Symbols from linker.ld and the assembly files ------------------------------------------- */

extern char __kernel_start[], __kernel_end[];
extern char __text_start[], __text_end[];
extern char __rodata_start[], __rodata_end[];
extern char __data_start[], __bss_start[], __bss_end[];
extern char boot_stack_guard[], boot_stack_bottom[], boot_stack_top[];
/* ProbeRead.S: a read that reports a page fault instead of panicking. */
int arch_probe_read(const uint64_t *address, uint64_t *value);
extern char probe_read_load[], probe_read_faulted[];
static inline uint64_t arch_probe_read_load_address(void) { return (uint64_t)probe_read_load; }
static inline uint64_t arch_probe_read_faulted_address(void) { return (uint64_t)probe_read_faulted; }
extern char boot_pml4[], boot_page_tables_end[];
extern char double_fault_stack_bottom[], double_fault_stack_top[];
extern char interrupt_stub_table[];

static inline uint64_t arch_kernel_start(void) { return (uint64_t)__kernel_start; }
static inline uint64_t arch_kernel_end(void) { return (uint64_t)__kernel_end; }
static inline uint64_t arch_text_start(void) { return (uint64_t)__text_start; }
static inline uint64_t arch_text_end(void) { return (uint64_t)__text_end; }
static inline uint64_t arch_rodata_start(void) { return (uint64_t)__rodata_start; }
static inline uint64_t arch_rodata_end(void) { return (uint64_t)__rodata_end; }
static inline uint64_t arch_data_start(void) { return (uint64_t)__data_start; }
static inline uint64_t arch_bss_start(void) { return (uint64_t)__bss_start; }
static inline uint64_t arch_bss_end(void) { return (uint64_t)__bss_end; }
static inline uint64_t arch_boot_stack_guard(void) { return (uint64_t)boot_stack_guard; }
static inline uint64_t arch_boot_stack_bottom(void) { return (uint64_t)boot_stack_bottom; }
static inline uint64_t arch_boot_stack_top(void) { return (uint64_t)boot_stack_top; }
static inline uint64_t arch_boot_page_tables_start(void) { return (uint64_t)boot_pml4; }
static inline uint64_t arch_boot_page_tables_end(void) { return (uint64_t)boot_page_tables_end; }
static inline uint64_t arch_double_fault_stack_bottom(void) { return (uint64_t)double_fault_stack_bottom; }
static inline uint64_t arch_double_fault_stack_top(void) { return (uint64_t)double_fault_stack_top; }
/* Address of the entry stub for interrupt vector `vector` (each stub is 16 bytes long). */
static inline uint64_t arch_interrupt_stub(uint32_t vector) { return (uint64_t)interrupt_stub_table + 16u * vector; }



/* ---- Static storage (kernel/Arch/x86_64/StaticStorage.S) ------------------------------------------ */

extern char idt_table[], gdt_table[], tss_segment[];
extern char klog_buffer[];
extern uint64_t klog_written;
extern const uint64_t klog_size;
extern char early_heap_start[], early_heap_end[];
extern char command_line_buffer[];

static inline void *arch_idt_table(void) { return idt_table; }
static inline void *arch_gdt_table(void) { return gdt_table; }
static inline void *arch_tss_segment(void) { return tss_segment; }
static inline uint8_t *arch_klog_buffer(void) { return (uint8_t *)klog_buffer; }
static inline uint64_t arch_klog_size(void) { return klog_size; }
static inline uint64_t *arch_klog_written(void) { return &klog_written; }
static inline void *arch_early_heap_start(void) { return early_heap_start; }
static inline uint64_t arch_early_heap_size(void) { return (uint64_t)(early_heap_end - early_heap_start); }
static inline uint8_t *arch_command_line_buffer(void) { return (uint8_t *)command_line_buffer; }
static inline uint64_t arch_command_line_capacity(void) { return 4096; }

/* kernel/Arch/x86_64/ContextSwitch.S */
void context_switch(uint64_t *save_stack_pointer, uint64_t load_stack_pointer);
extern char thread_trampoline[];
static inline uint64_t arch_thread_trampoline(void) { return (uint64_t)thread_trampoline; }

/* kernel/Arch/x86_64/Landmarks.S: empty functions for gdb breakpoints */
void kernel_panic_entered(void);
void kernel_debug_checkpoint(void);

/* kernel/Arch/x86_64/APTrampoline.S and the per-CPU storage in StaticStorage.S */
extern char ap_trampoline_start[], ap_trampoline_end[];
extern uint64_t ap_boot_cr3, ap_boot_stack_top, ap_boot_per_cpu;
extern char per_cpu_areas[], per_cpu_descriptor_tables[];
extern const uint64_t per_cpu_area_size, per_cpu_capacity, ap_trampoline_base;
static inline uint64_t arch_ap_trampoline_start(void) { return (uint64_t)ap_trampoline_start; }
static inline uint64_t arch_ap_trampoline_size(void) { return (uint64_t)(ap_trampoline_end - ap_trampoline_start); }
static inline uint64_t arch_ap_trampoline_base(void) { return ap_trampoline_base; }
static inline void arch_set_ap_boot_parameters(uint64_t cr3, uint64_t stack_top, uint64_t per_cpu) {
    ap_boot_cr3 = cr3;
    ap_boot_stack_top = stack_top;
    ap_boot_per_cpu = per_cpu;
}
static inline void *arch_per_cpu_areas(void) { return per_cpu_areas; }
static inline uint64_t arch_per_cpu_area_size(void) { return per_cpu_area_size; }
static inline uint64_t arch_per_cpu_capacity(void) { return per_cpu_capacity; }
static inline void *arch_per_cpu_descriptor_tables(void) { return per_cpu_descriptor_tables; }
/* The boot page tables (boot/multiboot.S): page 0's entry, for the one read of the BIOS data area. */
extern uint64_t boot_pt0[];
static inline void arch_boot_map_page_zero(int present) {
    boot_pt0[0] = present ? 3 : 0;
    __asm__ volatile("invlpg (%0)" : : "r"(0UL) : "memory");
}

extern char kernel_debug_table[];
static inline uint64_t *arch_kernel_debug_table(void) { return (uint64_t *)kernel_debug_table; }
extern const uint64_t kernel_debug_table_capacity;
static inline uint64_t arch_kernel_debug_table_capacity(void) { return kernel_debug_table_capacity; }

extern char static_slab_pool_start[], static_slab_pool_end[];
static inline uint64_t arch_static_slab_pool_start(void) { return (uint64_t)static_slab_pool_start; }
static inline uint64_t arch_static_slab_pool_end(void) { return (uint64_t)static_slab_pool_end; }
extern char buddy_descriptor_static_page[];
static inline uint64_t arch_buddy_descriptor_static_page(void) { return (uint64_t)buddy_descriptor_static_page; }
#endif
