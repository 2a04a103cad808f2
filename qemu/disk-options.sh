# disk-options.sh - sourced by run.sh and debug.sh: the QEMU options that attach $SWAP_IMAGE as
# the swap disk, over DISK (virtio, the default; ide; ahci) on MACHINE (pc, the default; q35),
# with CPUS processors (1 unless said: benchmarks and scripts that call run.sh directly keep one;
# `make run` and `make debug` ask for 2). Sets `machine_options` and `disk_options`. The same
# choices as qemu/harness/qemu.py (disk_options) makes for the test runner; docs/io.md says
# what each attaches.
machine=${MACHINE:-pc}
case $machine in
    pc|q35) ;;
    *) echo "MACHINE=$machine: use pc or q35" >&2; exit 1 ;;
esac
cpus=${CPUS:-1}
case $cpus in
    [1-8]) ;;
    *) echo "CPUS=$cpus: use 1 to 8" >&2; exit 1 ;;
esac
machine_options="-machine $machine -smp $cpus"
disk_options=
if [ -n "$SWAP_IMAGE" ] && [ -f "$SWAP_IMAGE" ]; then
    drive="file=$SWAP_IMAGE,format=raw,cache=unsafe"
    case ${DISK:-virtio} in
        virtio) disk_options="-drive $drive,if=none,id=swap -device virtio-blk-pci,drive=swap" ;;
        ide)    if [ "$machine" = q35 ]; then
                    echo "DISK=ide: q35 has no IDE controller (its if=ide disks go to AHCI); use DISK=ahci" >&2; exit 1
                fi
                disk_options="-drive $drive,if=ide,index=0,media=disk" ;;
        ahci)   if [ "$machine" = q35 ]; then
                    disk_options="-drive $drive,if=ide,index=0,media=disk"
                else
                    disk_options="-device ahci,id=ahci -drive $drive,if=none,id=swap -device ide-hd,drive=swap,bus=ahci.0"
                fi ;;
        *) echo "DISK=$DISK: use virtio, ide or ahci" >&2; exit 1 ;;
    esac
fi
