#!/bin/sh
# ensure-qemu.sh - make sure qemu-system-x86_64 is there; install it if we can.
#
# On Debian and Ubuntu the emulator comes from the package qemu-system-x86. As root we
# install it; otherwise we stop and print the exact command to run.
set -e
if command -v qemu-system-x86_64 >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "qemu-system-x86_64 is missing: installing the Debian package qemu-system-x86"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends qemu-system-x86 >/dev/null 2>&1 || {
        apt-get update >/dev/null
        apt-get install -y --no-install-recommends qemu-system-x86
    }
    command -v qemu-system-x86_64 >/dev/null 2>&1 && exit 0
    echo "installing qemu-system-x86 did not provide qemu-system-x86_64" >&2
    exit 1
fi
echo "qemu-system-x86_64 is missing. Install it with:" >&2
if command -v apt-get >/dev/null 2>&1; then
    echo "    sudo apt-get install qemu-system-x86" >&2
else
    echo "    your distribution's QEMU x86 system emulator package (it provides qemu-system-x86_64)" >&2
fi
exit 1
