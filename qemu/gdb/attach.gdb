# attach.gdb - settings for attaching gdb to a kernel that is already running (`make attach`).
#
# Unlike kernel.gdb it sets no breakpoint: the point is to look at a kernel as it is, say a
# test run that hangs. Connecting stops the CPU wherever it was; `continue` lets it go on.
set pagination off
set confirm off
set architecture i386:x86-64
source qemu/gdb/kernel_helpers.py
