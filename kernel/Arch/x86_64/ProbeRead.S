/*
 * ProbeRead.S - a read of kernel memory that reports a page fault instead of panicking.
 *
 *   int arch_probe_read(const uint64_t *address, uint64_t *value)
 *
 * Returns 1 and stores the word when the read succeeds, 0 when it faults. The page-fault
 * path (interrupt_dispatch, Interrupts.swift) knows the one instruction that may fault here,
 * `probe_read_load`, and resumes a fault there at `probe_read_faulted` - an exception table
 * of one entry, as Linux keeps for its user-copy routines. The smp suite uses it on an AP to
 * tell "the mapping is gone" (a fault) from "a stale TLB entry still reaches the old page"
 * (a read that succeeds): TLBShootdown.swift.
 */
    .text
    .code64

    .globl arch_probe_read, probe_read_load, probe_read_faulted
    .type arch_probe_read, @function
arch_probe_read:
probe_read_load:
    movq    (%rdi), %rax
    movq    %rax, (%rsi)
    movl    $1, %eax
    ret
probe_read_faulted:
    xorl    %eax, %eax
    ret
    .size arch_probe_read, . - arch_probe_read
