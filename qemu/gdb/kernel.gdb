# kernel.gdb - attach gdb to a kernel that QEMU started halted (-s -S), stop at the Swift entry.
#
# Used by `make debug` (qemu/debug.sh), which passes the symbol file and the port. QEMU starts
# the CPU in 32-bit mode and reports registers in the 64-bit layout, so the architecture is set
# before connecting. Hardware breakpoints (hbreak) are reliable across the switch to long mode.
set pagination off
set confirm off
set architecture i386:x86-64
source qemu/gdb/kernel_helpers.py
hbreak kernel_main
continue
echo \n
echo Stopped at the Swift entry point kernel_main(magic, info). Useful next steps:\n
echo \  continue                       run on (hbreak kernel_init_complete first to stop after boot)\n
echo \  bt                             backtrace (Swift names are mangled; swift demangle reads them)\n
echo \  p *(unsigned long*)&'SYMBOL'   read a Swift global by its mangled name (see docs/debugging.md)\n
echo \  kzones kbuddy kmap kpage kthreads klog   the memory system's own view (after boot)\n
echo The serial console is written to build/debug-serial.log.\n
