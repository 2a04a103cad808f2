/*
 * Landmarks.S - empty functions that exist only to be stopped at from gdb.
 *
 * They are written in assembly on purpose: Swift's optimizer merges functions with
 * identical bodies, so two empty Swift landmarks became one symbol that tail-called the
 * other and a breakpoint on the first never fired. Each landmark here is its own code.
 *
 *   kernel_panic_entered      panic() calls it before printing its report
 *   kernel_debug_checkpoint   the gdbhelpers test suite stops here (qemu/harness/gdbcheck.py)
 */
    .text
    .code64

    .globl kernel_panic_entered
    .type kernel_panic_entered, @function
kernel_panic_entered:
    ret
    .size kernel_panic_entered, . - kernel_panic_entered

    .globl kernel_debug_checkpoint
    .type kernel_debug_checkpoint, @function
kernel_debug_checkpoint:
    nop
    ret
    .size kernel_debug_checkpoint, . - kernel_debug_checkpoint

