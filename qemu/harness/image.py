"""Where the kernel image lies in physical memory, and whether a machine can hold it.

QEMU's multiboot loader copies the image's loadable segments to their physical addresses (from
1 MiB up). On a machine whose RAM ends below the image's first segment - `-m 1M` - nothing of
the kernel ever runs: the loader copies into the void and jumps there, and QEMU hangs. The
boot stub handles every machine it can run on (boot/multiboot.S checks mem_upper against the
whole image); this is the check for the machines where it cannot run at all, made before QEMU
starts, so that `make run` and the runner say so instead of hanging.

    python3 qemu/harness/image.py IMAGE MEMORY    exit 1 with a message when MEMORY cannot hold IMAGE
"""
import struct
import sys


def memory_mib(size):
    """QEMU's -m size ("24M", "4G", "512") in MiB."""
    units = {"M": 1, "G": 1024, "T": 1024 * 1024}
    if size[-1].upper() in units:
        return int(size[:-1]) * units[size[-1].upper()]
    return int(size)


def entry_segment(image):
    """(start, end) of the loadable segment holding the entry point - the boot stub, its data
    and its stack (an ELF32 image, kernel.mb)."""
    with open(image, "rb") as elf:
        data = elf.read()
    if data[:4] != b"\x7fELF" or data[4] != 1:
        raise ValueError("%s is not a 32-bit ELF image" % image)
    entry, phoff = struct.unpack_from("<II", data, 24)
    phentsize, phnum = struct.unpack_from("<HH", data, 42)
    for index in range(phnum):
        kind, _, vaddr, paddr, _, memsz = struct.unpack_from("<IIIIII", data, phoff + index * phentsize)
        if kind == 1 and vaddr <= entry < vaddr + memsz:      # PT_LOAD
            return paddr, paddr + memsz
    raise ValueError("%s: no loadable segment holds the entry point %#x" % (image, entry))


def refusal(image, memory):
    """Why a machine with `memory` cannot run `image`, or None when the boot stub can take over."""
    start, needed = entry_segment(image)
    if memory_mib(memory) * 1024 * 1024 < needed:
        return ("not started: -m %s ends below the kernel image, which the loader places at %#x; "
                "no kernel code could run to say so (give the machine at least %d MiB)"
                % (memory, start, (needed + (1 << 20) - 1) >> 20))
    return None


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    problem = refusal(sys.argv[1], sys.argv[2])
    if problem:
        print("run: " + problem, file=sys.stderr)
        sys.exit(1)
