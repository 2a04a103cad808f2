/*
 * InterruptEntry.S - the 256 interrupt entry stubs and their common path.
 *
 * Each stub is 16 bytes: it pushes a zero error code when the CPU does not push one, pushes
 * its vector number and jumps to interrupt_common, which saves the general registers so that
 * the stack holds an InterruptFrame (kernel/Arch/x86_64/InterruptFrame.swift) and calls the Swift
 * dispatcher with a pointer to it. The dispatcher may change the frame (a fault handler that
 * fixes things up) or switch threads (the frame then stays on the old thread's stack until it
 * is switched back in); either way the registers are restored from the frame and iretq
 * resumes whatever the frame describes. All of this runs in ring 0: the CPU switches stacks
 * only for vectors that have an IST slot (the double fault, see kernel/Arch/x86_64/GDT.swift).
 */

    .text
    .code64

    .altmacro
    .macro interrupt_stub vector
    .balign 16
    .if (\vector == 8) || ((\vector >= 10) && (\vector <= 14)) || (\vector == 17) || (\vector == 21) || (\vector == 29) || (\vector == 30)
    /* the CPU pushed an error code */
    .else
    pushq   $0
    .endif
    pushq   $\vector
    jmp     interrupt_common
    .endm

    .balign 16
    .global interrupt_stub_table
interrupt_stub_table:
    .set vector, 0
    .rept 256
    interrupt_stub %vector
    .set vector, vector + 1
    .endr

    .global interrupt_common
    .type interrupt_common, @function
interrupt_common:
    pushq   %rax
    pushq   %rbx
    pushq   %rcx
    pushq   %rdx
    pushq   %rsi
    pushq   %rdi
    pushq   %rbp
    pushq   %r8
    pushq   %r9
    pushq   %r10
    pushq   %r11
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    cld
    mov     %rsp, %rdi
    mov     %rsp, %rbx                  /* callee-saved: survives the call */
    and     $-16, %rsp                  /* the ABI wants a 16-byte aligned stack at the call */
    call    interrupt_dispatch
    mov     %rbx, %rsp
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %r11
    popq    %r10
    popq    %r9
    popq    %r8
    popq    %rbp
    popq    %rdi
    popq    %rsi
    popq    %rdx
    popq    %rcx
    popq    %rbx
    popq    %rax
    add     $16, %rsp                   /* vector number and error code */
    iretq
