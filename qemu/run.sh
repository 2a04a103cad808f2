#!/bin/sh
# run.sh - boot the kernel in QEMU with the serial console on this terminal.
#
# usage: qemu/run.sh <kernel.mb> "<kernel command line>"
#        qemu/run.sh <kernel.iso>      (GRUB boots it; the command line is in the ISO's menu)
# The kernel ends every run through QEMU's isa-debug-exit device; the status it chose is
# translated here (see kernel/Arch/x86_64/QEMUExit.swift). -no-reboot turns a triple fault into an
# exit instead of a reboot loop, so QEMU never stays behind.
image=$1
args=$2
memory=${MEMORY:-128M}
# A machine whose memory ends below the boot stub cannot run a single kernel instruction (QEMU
# would hang in its loader): say so here. Anything larger the boot stub checks itself.
case $image in
    *.iso) set -- -cdrom "$image" -boot d ;;
    *)  python3 "$(dirname "$0")/harness/image.py" "$image" "$memory" || exit 1
        set -- -kernel "$image" -append "$args" ;;
esac
. "$(dirname "$0")/disk-options.sh"
qemu-system-x86_64 -accel tcg -cpu qemu64 -m "$memory" -display none -no-reboot \
    -serial stdio -monitor none \
    -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    "$@" $machine_options $disk_options $QEMU_EXTRA
status=$?
case $status in
    33) exit 0 ;;
    35) echo "run.sh: the kernel reports failed tests (QEMU status 35)" >&2 ;;
    37) echo "run.sh: the kernel panicked (QEMU status 37)" >&2 ;;
    39) echo "run.sh: the boot failed: the boot stub, or errors on the command line (QEMU status 39)" >&2 ;;
    41) echo "run.sh: the deadlock watchdog fired (QEMU status 41)" >&2 ;;
    0)  echo "run.sh: QEMU exited without the kernel's exit code: a triple fault or reset?" >&2 ;;
    *)  echo "run.sh: QEMU exited with status $status" >&2 ;;
esac
exit 1
