"""The host side of the kernel tests: boot QEMU, read the serial log, judge it."""
