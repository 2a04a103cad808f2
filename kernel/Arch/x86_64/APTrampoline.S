/*
 * APTrampoline.S - how an application processor gets from its start-up IPI to Swift.
 *
 * A started-up AP begins in 16-bit real mode at physical address vector * 4096, CS = vector *
 * 256, IP = 0. The code between ap_trampoline_start and ap_trampoline_end is assembled here,
 * inside the kernel image, for that address (AP_TRAMPOLINE_BASE, page 8) and copied there at
 * boot by kernel/Arch/x86_64/SMP.swift while the boot identity map still reaches low memory; the
 * page is kept out of the page allocator (kernel/VM/MemoryBootstrap.swift). Steps:
 *   1. real mode: load the trampoline's own GDT, set CR0.PE, far-jump to 32-bit code;
 *   2. protected mode: PAE on, CR3 = the boot page tables (boot/multiboot.S: they identity-map
 *      the first 4 GiB, so this page and the kernel image stay where they are when paging
 *      starts), EFER.LME (and NXE when the CPU has NX - the kernel's tables use the NX bit),
 *      paging and write protection on, far-jump to 64-bit code;
 *   3. long mode, still in this page: jump to ap_long_mode_entry in the kernel image;
 *   4. there: load the kernel's own page tables (ap_boot_cr3), the stack (ap_boot_stack_top)
 *      and call ap_main(per-CPU area) - which loads the AP's own GDT, TSS and the IDT before it
 *      touches a segment register (the trampoline's GDT is unmapped from step 4 on).
 * The three ap_boot_* words are written by the boot CPU before each start-up IPI; one AP starts
 * at a time, so one set is enough.
 */
    .set AP_TRAMPOLINE_BASE, 0x8000
    /* The 64-bit code and data selectors are the kernel's (kernel/Arch/x86_64/GDT.swift): CS and SS
     * keep them when ap_main loads the AP's own GDT, and every interrupt frame pushes them. */
    .set TRAMPOLINE_CODE64,  0x08
    .set TRAMPOLINE_DATA,    0x10
    .set TRAMPOLINE_CODE32,  0x18

/* The trampoline's address once copied to AP_TRAMPOLINE_BASE. */
#define LOW(label) (AP_TRAMPOLINE_BASE + (label - ap_trampoline_start))

    .section .rodata.ap_trampoline, "a"
    .balign 16
    .global ap_trampoline_start, ap_trampoline_end
    .code16
ap_trampoline_start:
    cli
    cld
    mov     %cs, %ax
    mov     %ax, %ds
    lgdtl   (ap_trampoline_gdt_descriptor - ap_trampoline_start)
    mov     %cr0, %eax
    or      $1, %eax
    mov     %eax, %cr0
    ljmpl   $TRAMPOLINE_CODE32, $LOW(ap_trampoline_32)

    .code32
ap_trampoline_32:
    mov     $TRAMPOLINE_DATA, %ax
    mov     %ax, %ds
    mov     %ax, %es
    mov     %ax, %ss
    mov     %cr4, %eax
    or      $(1 << 5), %eax                 /* PAE */
    mov     %eax, %cr4
    mov     $boot_pml4, %eax
    mov     %eax, %cr3
    mov     $0xC0000080, %ecx               /* EFER */
    rdmsr
    or      $(1 << 8), %eax                 /* LME */
    testl   $(1 << 20), boot_cpuid_ext_edx  /* the boot CPU found NX */
    jz      1f
    or      $(1 << 11), %eax                /* NXE */
1:  wrmsr
    mov     %cr0, %eax
    or      $((1 << 31) | (1 << 16)), %eax  /* PG, WP */
    mov     %eax, %cr0
    ljmpl   $TRAMPOLINE_CODE64, $LOW(ap_trampoline_64)

    .code64
ap_trampoline_64:
    movabs  $ap_long_mode_entry, %rax
    jmp     *%rax

    .balign 8
ap_trampoline_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF                /* 0x08: 64-bit code */
    .quad 0x00CF92000000FFFF                /* 0x10: data */
    .quad 0x00CF9A000000FFFF                /* 0x18: 32-bit code */
ap_trampoline_gdt_end:
ap_trampoline_gdt_descriptor:
    .word ap_trampoline_gdt_end - ap_trampoline_gdt - 1
    .long LOW(ap_trampoline_gdt)
ap_trampoline_end:

    .text
    .code64
    .global ap_long_mode_entry
    .type ap_long_mode_entry, @function
ap_long_mode_entry:
    .cfi_startproc
    .cfi_undefined rip
    mov     ap_boot_cr3(%rip), %rax
    mov     %rax, %cr3
    mov     ap_boot_stack_top(%rip), %rsp
    xor     %ebp, %ebp
    mov     ap_boot_per_cpu(%rip), %rdi
    call    ap_main                         /* never returns */
1:  cli
    hlt
    jmp     1b
    .cfi_endproc

    .section .rodata
    .balign 8
    .global ap_trampoline_base
ap_trampoline_base: .quad AP_TRAMPOLINE_BASE

    .data
    .balign 8
    .global ap_boot_cr3, ap_boot_stack_top, ap_boot_per_cpu
ap_boot_cr3:        .quad 0
ap_boot_stack_top:  .quad 0
ap_boot_per_cpu:    .quad 0
