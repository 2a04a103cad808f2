/*
 * multiboot.S - from the multiboot loader to the Swift entry point.
 *
 * QEMU's -kernel loader (multiboot version 1) jumps to _start in 32-bit protected mode with
 * paging off, EAX = 0x2BADB002 and EBX = the physical address of the multiboot information.
 * This stub:
 *   1. checks the magic; a wrong magic prints a message on COM1, asks QEMU to exit with the
 *      failure status (isa-debug-exit) and halts - it never returns into a reboot loop;
 *   2. checks that the machine has memory for the whole image (.bss included) and 512 KiB more
 *      to run on, from the loader's mem_upper; too little prints how much there is and how
 *      much is needed, and exits with the failure status (docs/boot.md says what happens when
 *      even the image's first megabyte is missing);
 *   3. checks that the CPU has long mode;
 *   4. zeroes .bss, which holds the boot page tables;
 *   5. builds the boot page tables: the first 4 GiB identity-mapped with 2 MiB pages, except
 *      the first 2 MiB, mapped with 4 KiB pages so that page 0 (nil) and the guard page below
 *      the boot stack stay unmapped from the very first instruction;
 *   6. enables PAE, long mode, NX (when the CPU has it), paging and write protection;
 *   7. loads a 64-bit GDT, far-jumps into 64-bit code, and calls kernel_main(magic, info)
 *      on the boot stack with a zero frame pointer, so that backtraces end there.
 * The Swift kernel replaces these page tables with its own (kernel/Arch/x86_64/Pmap.swift) once it
 * knows the memory map; docs/boot.md walks through the whole sequence.
 */

    .set MULTIBOOT_MAGIC,         0x1BADB002
    .set MULTIBOOT_FLAGS,         (1 << 0) | (1 << 1)    /* page-align modules, want memory map */
    .set MULTIBOOT_LOADER_MAGIC,  0x2BADB002

    .set COM1,                    0x3F8
    .set DEBUG_EXIT_PORT,         0xF4
    .set DEBUG_EXIT_BOOT_FAILURE, 0x13                  /* QEMU exits with (0x13 << 1) | 1 = 39 */

    .set MULTIBOOT_INFO_MEMORY,   1 << 0                /* flags bit: mem_lower/mem_upper are valid */
    .set MINIMUM_WORKING_MEMORY,  0x80000               /* beyond the image: page tables, descriptors (with low memory, the 256 pages kernel/VM/MemoryBootstrap.swift asks for) */

    .set PTE_PRESENT,  1 << 0
    .set PTE_WRITE,    1 << 1
    .set PTE_LARGE,    1 << 7

    .section .multiboot, "a"
    .balign 4
multiboot_header:
    .long MULTIBOOT_MAGIC
    .long MULTIBOOT_FLAGS
    .long -(MULTIBOOT_MAGIC + MULTIBOOT_FLAGS)

    .section .boot.text, "ax"
    .code32
    .global _start
    .type _start, @function
_start:
    cli
    cld
    mov     $boot_stack_top, %esp
    mov     %eax, boot_magic
    mov     %ebx, boot_info

    cmp     $MULTIBOOT_LOADER_MAGIC, %eax
    jne     bad_magic

    /* Memory: mem_upper (at info + 8) is the KiB of RAM from 1 MiB up. The image is linked at
     * 1 MiB and its .bss, zeroed below, must exist; so must room to run. (The boot stack and
     * this code are in the image's first pages, so they exist whenever we get here.) */
    testl   $MULTIBOOT_INFO_MEMORY, (%ebx)
    jz      1f
    mov     $(__kernel_end + MINIMUM_WORKING_MEMORY - 0x100000), %ecx
    shr     $10, %ecx                               /* KiB needed from 1 MiB up */
    cmp     %ecx, 8(%ebx)
    jb      too_little_memory
1:

    /* Long mode: CPUID leaf 0x80000001, EDX bit 29. NX is bit 20 of the same register. */
    mov     $0x80000000, %eax
    cpuid
    cmp     $0x80000001, %eax
    jb      no_long_mode
    mov     $0x80000001, %eax
    cpuid
    test    $(1 << 29), %edx
    jz      no_long_mode
    mov     %edx, boot_cpuid_ext_edx

    /* Zero .bss (the boot page tables live there). */
    mov     $__bss_start, %edi
    mov     $__bss_end, %ecx
    sub     %edi, %ecx
    shr     $2, %ecx
    xor     %eax, %eax
    rep stosl

    /* PML4[0] -> PDPT; PDPT[0..3] -> PD0..PD3; PD0[0] -> PT0. */
    mov     $boot_pdpt, %eax
    or      $(PTE_PRESENT | PTE_WRITE), %eax
    mov     %eax, boot_pml4

    mov     $boot_pd, %eax
    or      $(PTE_PRESENT | PTE_WRITE), %eax
    mov     $boot_pdpt, %edi
    mov     $4, %ecx
1:  mov     %eax, (%edi)
    add     $4096, %eax
    add     $8, %edi
    loop    1b

    /* 2048 large pages cover 4 GiB: entry i maps physical i * 2 MiB. */
    mov     $boot_pd, %edi
    mov     $(PTE_PRESENT | PTE_WRITE | PTE_LARGE), %eax
    mov     $2048, %ecx
2:  mov     %eax, (%edi)
    add     $0x200000, %eax
    add     $8, %edi
    loop    2b

    /* The first 2 MiB with 4 KiB pages, skipping page 0 and the boot stack guard page. */
    mov     $boot_pt0, %eax
    or      $(PTE_PRESENT | PTE_WRITE), %eax
    mov     %eax, boot_pd
    mov     $boot_pt0, %edi
    mov     $(PTE_PRESENT | PTE_WRITE), %eax
    mov     $512, %ecx
3:  mov     %eax, (%edi)
    add     $4096, %eax
    add     $8, %edi
    loop    3b
    movl    $0, boot_pt0                            /* page 0: nil dereferences fault */
    mov     $boot_stack_guard, %eax
    shr     $12, %eax
    movl    $0, boot_pt0(, %eax, 8)                 /* the guard page below the boot stack */

    /* CR4.PAE, CR3, EFER.LME (+NXE), CR0.PG | CR0.WP. */
    mov     %cr4, %eax
    or      $(1 << 5), %eax
    mov     %eax, %cr4
    mov     $boot_pml4, %eax
    mov     %eax, %cr3
    mov     $0xC0000080, %ecx
    rdmsr
    or      $(1 << 8), %eax
    testl   $(1 << 20), boot_cpuid_ext_edx
    jz      4f
    or      $(1 << 11), %eax
4:  wrmsr
    mov     %cr0, %eax
    or      $((1 << 31) | (1 << 16)), %eax
    mov     %eax, %cr0

    lgdt    boot_gdt_descriptor
    ljmp    $0x08, $long_mode_entry

/* mem_upper is too small: "boot: too little memory: N KiB from 1 MiB up, the kernel needs M KiB
 * there (...)", then the failure exit. %ecx = KiB needed, %ebx = the multiboot information. */
too_little_memory:
    mov     8(%ebx), %edx
    mov     $msg_memory_have, %esi
    call    serial_puts32
    mov     %edx, %eax
    call    serial_putdec32
    mov     $msg_memory_need, %esi
    call    serial_puts32
    mov     %ecx, %eax
    call    serial_putdec32
    mov     $msg_memory_tail, %esi
    xor     %ebx, %ebx
    jmp     boot_fail

/* Print the NUL-terminated string at %esi, then the hex value in %edx (if %ebx != 0), halt. */
bad_magic:
    mov     %eax, %edx
    mov     $msg_bad_magic, %esi
    mov     $1, %ebx
    jmp     boot_fail
no_long_mode:
    mov     $msg_no_long_mode, %esi
    xor     %ebx, %ebx
boot_fail:
    push    %edx
5:  lodsb
    test    %al, %al
    jz      6f
    call    serial_putc32
    jmp     5b
6:  pop     %edx
    test    %ebx, %ebx
    jz      8f
    mov     $8, %ecx                                /* eight hex digits of %edx */
7:  rol     $4, %edx
    mov     %edx, %eax
    and     $0xF, %eax
    movb    hex_digits(%eax), %al
    call    serial_putc32
    loop    7b
8:  mov     $'\n', %al
    call    serial_putc32
    mov     $DEBUG_EXIT_BOOT_FAILURE, %al
    outb    %al, $DEBUG_EXIT_PORT
9:  cli
    hlt
    jmp     9b

/* Write the NUL-terminated string at %esi to COM1. Clobbers %esi and %eax. */
serial_puts32:
12: lodsb
    test    %al, %al
    jz      13f
    call    serial_putc32
    jmp     12b
13: ret

/* Write %eax to COM1 in decimal. Clobbers %eax. */
serial_putdec32:
    push    %ebx
    push    %ecx
    push    %edx
    mov     $10, %ebx
    xor     %ecx, %ecx
14: xor     %edx, %edx
    div     %ebx
    push    %edx
    inc     %ecx
    test    %eax, %eax
    jnz     14b
15: pop     %eax
    add     $'0', %al
    call    serial_putc32
    loop    15b
    pop     %edx
    pop     %ecx
    pop     %ebx
    ret

/* Write %al to COM1 once its transmit register is empty. Clobbers nothing else. */
serial_putc32:
    push    %edx
    push    %eax
    mov     $COM1 + 5, %dx
10: inb     %dx, %al
    test    $0x20, %al
    jz      10b
    pop     %eax
    mov     $COM1, %dx
    outb    %al, %dx
    pop     %edx
    ret

    .code64
    .type long_mode_entry, @function
long_mode_entry:
    /* The outermost frame: tell debuggers' unwinders there is nothing above it. */
    .cfi_startproc
    .cfi_undefined rip
    mov     $0x10, %ax
    mov     %ax, %ds
    mov     %ax, %es
    mov     %ax, %ss
    xor     %ax, %ax
    mov     %ax, %fs
    mov     %ax, %gs
    mov     $boot_stack_top, %rsp
    xor     %ebp, %ebp
    mov     boot_magic, %edi
    mov     boot_info, %esi
    call    kernel_main
    /* kernel_main never returns; if it does, stop here rather than run off into memory. */
11: cli
    hlt
    jmp     11b
    .cfi_endproc

    .section .boot.data, "aw"
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF                        /* 0x08: 64-bit code, ring 0 */
    .quad 0x00CF92000000FFFF                        /* 0x10: data, ring 0 */
boot_gdt_end:
boot_gdt_descriptor:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt
    .global boot_magic, boot_info, boot_cpuid_ext_edx
boot_magic:         .long 0
boot_info:          .long 0
boot_cpuid_ext_edx: .long 0
msg_bad_magic:      .asciz "boot: bad multiboot magic, not started by a multiboot loader: eax=0x"
msg_no_long_mode:   .asciz "boot: this CPU has no long mode (x86-64); cannot start"
msg_memory_have:    .asciz "boot: too little memory: "
msg_memory_need:    .asciz " KiB from 1 MiB up, the kernel needs "
msg_memory_tail:    .asciz " KiB there (its image and 512 KiB to run on); give the machine more memory"
hex_digits:         .ascii "0123456789abcdef"

/* The boot stack, with an unmapped guard page below it (see the page-table setup above). */
    .section .boot.stack, "aw", @nobits
    .balign 4096
    .global boot_stack_guard, boot_stack_bottom, boot_stack_top
boot_stack_guard:   .skip 4096
boot_stack_bottom:  .skip 65536
boot_stack_top:

/* The boot page tables; reclaimed by nobody (they are part of the kernel image). */
    .section .bss, "aw", @nobits
    .balign 4096
    .global boot_pml4, boot_pdpt, boot_pd, boot_pt0, boot_page_tables_end
boot_pml4:  .skip 4096
boot_pdpt:  .skip 4096
boot_pd:    .skip 4 * 4096
boot_pt0:   .skip 4096
boot_page_tables_end:
