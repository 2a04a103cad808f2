#!/bin/sh
# ensure-qemu.sh - make sure the programs the kernel's tests run are there; install them if we can.
#
#   qemu-system-x86_64  from the Debian package qemu-system-x86 (every kernel boot)
#   gdb                 from the Debian package gdb (make debug, and the gdb checks in make test)
#
# As root on Debian or Ubuntu we install what is missing; otherwise we stop and print the
# exact command to run.
set -e
missing_packages=
for pair in qemu-system-x86_64:qemu-system-x86 gdb:gdb; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing_packages="$missing_packages ${pair#*:}"
done
[ -z "$missing_packages" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing the Debian package(s)$missing_packages"
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086
    apt-get install -y --no-install-recommends $missing_packages >/dev/null 2>&1 || {
        apt-get update >/dev/null
        apt-get install -y --no-install-recommends $missing_packages
    }
    for program in qemu-system-x86_64 gdb; do
        command -v "$program" >/dev/null 2>&1 || { echo "installing$missing_packages did not provide $program" >&2; exit 1; }
    done
    exit 0
fi
echo "missing:$missing_packages. Install with:" >&2
if command -v apt-get >/dev/null 2>&1; then
    echo "    sudo apt-get install$missing_packages" >&2
else
    echo "    your distribution's packages for qemu-system-x86_64 (QEMU's x86 system emulator) and gdb" >&2
fi
exit 1
