#!/bin/sh
# make-iso.sh - a GRUB 2 rescue ISO that boots the kernel with a given command line.
#
#   sh qemu/make-iso.sh <kernel.mb> "<kernel command line>" <out.iso>
#
# The ISO holds the 32-bit image as /boot/kernel.mb and a grub.cfg whose one menu entry,
# chosen at once, loads it with `multiboot /boot/kernel.mb ARGS`. GRUB 2 hands the kernel only
# ARGS (not the path), and names itself in the multiboot information: the kernel tells the two
# loaders apart by that name (kernel/Lib/BootLoader.swift). GRUB's own menu goes to the VGA
# screen, so the serial console carries only the kernel's output.
#
# Needs grub-mkrescue (Debian package grub-common), xorriso (xorriso) and GRUB's BIOS modules
# (grub-pc-bin); `make grub` installs them as root. Without them this prints the package to
# install and fails - the test runner shows that message as the GRUB boot's failure.
set -e
image=$1
args=$2
out=$3
[ -n "$image" ] && [ -n "$out" ] || { echo "usage: $0 <kernel.mb> \"<command line>\" <out.iso>" >&2; exit 2; }
missing=
command -v grub-mkrescue >/dev/null 2>&1 || missing="$missing grub-common"
command -v xorriso >/dev/null 2>&1 || missing="$missing xorriso"
[ -e /usr/lib/grub/i386-pc/cdboot.img ] || missing="$missing grub-pc-bin"
if [ -n "$missing" ]; then
    echo "cannot build the GRUB ISO: missing the Debian package(s)$missing; install with: sudo apt-get install$missing (or run make grub as root)" >&2
    exit 1
fi
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree/boot/grub"
cp "$image" "$tree/boot/kernel.mb"
# Each option is single-quoted, so GRUB's script parser passes it on unchanged. The words are
# split on spaces as the kernel splits them; set -f keeps a '*' in one from matching files here.
quoted=
set -f
for word in $args; do
    quoted="$quoted '$(printf '%s' "$word" | sed "s/'/'\\\\''/g")'"
done
set +f
cat > "$tree/boot/grub/grub.cfg" <<CFG
set timeout=0
set default=0
menuentry "swift-kernel" {
    multiboot /boot/kernel.mb$quoted
    boot
}
CFG
grub-mkrescue -o "$out" "$tree" >"$tree.log" 2>&1 || { cat "$tree.log" >&2; rm -f "$tree.log"; exit 1; }
rm -f "$tree.log"
