#!/bin/sh
# ensure-packages.sh - make sure programs are there; install their Debian packages if we can.
#
#   sh qemu/ensure-packages.sh PROGRAM:PACKAGE ...
#
# Used by the Makefile for what make test needs: qemu-system-x86_64 (qemu-system-x86) and gdb
# for the kernel boots and gdb checks, spin and cc (gcc) for the reserve model in verify/,
# grub-mkrescue (grub-common), xorriso and GRUB's BIOS modules (grub-pc-bin) for the ISO.
# A PROGRAM with a slash in it is a file that must exist rather than a command on PATH: some
# packages (grub-pc-bin) matter for the files they install, not for a program.
# As root on Debian or Ubuntu we install what is missing; otherwise we stop and print the
# exact command to run.
set -e
present() {
    case $1 in
        */*) [ -e "$1" ] ;;
        *) command -v "$1" >/dev/null 2>&1 ;;
    esac
}
missing_packages=
programs=
for pair in "$@"; do
    programs="$programs ${pair%%:*}"
    present "${pair%%:*}" || missing_packages="$missing_packages ${pair#*:}"
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
    for program in $programs; do
        present "$program" || { echo "installing$missing_packages did not provide $program" >&2; exit 1; }
    done
    exit 0
fi
echo "missing:$missing_packages. Install with:" >&2
if command -v apt-get >/dev/null 2>&1; then
    echo "    sudo apt-get install$missing_packages" >&2
else
    echo "    your distribution's packages for:$programs" >&2
fi
exit 1
