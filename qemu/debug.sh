#!/bin/sh
# debug.sh - boot the kernel halted with QEMU's gdb stub and attach gdb with its symbols.
#
# usage: qemu/debug.sh <kernel.elf> <kernel.mb> "<kernel command line>"
# gdb stops at kernel_main, ready for `continue`. The serial console goes to
# build/debug-serial.log (follow it with `tail -f` in another terminal). QEMU is stopped
# when gdb exits. GDB_PORT picks another port (default 1234).
elf=$1
image=$2
args=$3
port=${GDB_PORT:-1234}
memory=${MEMORY:-128M}
. "$(dirname "$0")/disk-options.sh"
serial=build/debug-serial.log
qemu-system-x86_64 -accel tcg -cpu qemu64 -m "$memory" -display none -no-reboot \
    -serial "file:$serial" -monitor none \
    -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    -kernel "$image" -append "$args" $machine_options $disk_options -gdb "tcp:127.0.0.1:$port" -S $QEMU_EXTRA &
qemu=$!
trap 'kill $qemu 2>/dev/null' EXIT INT TERM
sleep 0.3
gdb -q -ex "file $elf" -ex "target remote 127.0.0.1:$port" -x qemu/gdb/kernel.gdb $GDB_EXTRA
