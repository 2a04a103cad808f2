/*
 * ContextSwitch.S - switching kernel threads, and where new threads start.
 *
 * context_switch(&old->savedStackPointer, new->savedStackPointer) pushes the callee-saved
 * registers on the old thread's stack, saves its stack pointer, loads the new one and pops
 * the new thread's registers: the `ret` then returns into whatever the new thread was doing
 * when it last called context_switch. The caller-saved registers need no saving - the
 * compiler assumes a call clobbers them. Interrupts are off across the switch; each thread
 * restores its own interrupt state after it returns (kernel/Kern/Scheduler.swift).
 *
 * A new thread's stack is prepared (kernel/Kern/Thread.swift) so that the first switch to it
 * "returns" into thread_trampoline with zeroed callee-saved registers, rbp = 0 (the end of
 * every backtrace), and its Thread pointer in r12.
 */
    .text
    .code64

    /* void context_switch(uint64_t *save_stack_pointer, uint64_t load_stack_pointer) */
    .global context_switch
    .type context_switch, @function
context_switch:
    pushq   %rbp
    pushq   %rbx
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    movq    %rsp, (%rdi)
    movq    %rsi, %rsp
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbx
    popq    %rbp
    ret

    .global thread_trampoline
    .type thread_trampoline, @function
thread_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    xorl    %ebp, %ebp
    movq    %r12, %rdi
    call    kernel_thread_start     /* never returns */
    ud2
    .cfi_endproc
