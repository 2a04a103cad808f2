"""Turning code addresses in a panic report into function names and source lines.

llvm-symbolizer (it ships with the Swift toolchain) reads the 64-bit ELF's DWARF, including
inlined frames - which is how a Swift runtime trap is named: the `ud2` is attributed to an
artificial inlined function "Swift runtime failure: <check>". Names are demangled with
swift-demangle.
"""
import os
import re
import shutil
import subprocess

ADDRESS_LINE = re.compile(r"^P panic: .*?(?:rip |#\d+ )(0x[0-9a-f]+)")


def toolchain_tool(name):
    swiftc = shutil.which("swiftc")
    if swiftc:
        candidate = os.path.join(os.path.dirname(os.path.realpath(swiftc)), name)
        if os.path.exists(candidate):
            return candidate
    return shutil.which(name)


def symbolize_addresses(elf, addresses):
    """Returns {address: [frame description, ...]} with the innermost inlined frame first."""
    symbolizer = toolchain_tool("llvm-symbolizer")
    demangler = toolchain_tool("swift-demangle")
    if not symbolizer or not addresses:
        return {}
    unique = sorted(set(addresses))
    result = subprocess.run([symbolizer, "--obj=" + elf, "--inlining", "--functions=linkage"],
                            input="\n".join(unique) + "\n", capture_output=True, text=True)
    blocks = result.stdout.strip("\n").split("\n\n")
    names = {}
    for address, block in zip(unique, blocks):
        lines = block.splitlines()
        frames = []
        for index in range(0, len(lines) - 1, 2):
            location = lines[index + 1]
            location = re.sub(r"^.*/kernel/", "kernel/", location)
            frames.append((lines[index], location))
        names[address] = frames
    if demangler:
        all_names = [name for frames in names.values() for name, _ in frames]
        demangled = subprocess.run([demangler, "--simplified"], input="\n".join(all_names) + "\n",
                                   capture_output=True, text=True).stdout.splitlines()
        mapping = dict(zip(all_names, demangled))
        for address in names:
            names[address] = [(mapping.get(name, name), location) for name, location in names[address]]
    return {address: ["%s at %s" % (name, location) for name, location in frames]
            for address, frames in names.items()}


def symbolize_panic(elf, output):
    """The panic report lines of `output`, each code address followed by what it is."""
    lines = [line for line in output.splitlines() if line.startswith("P panic: ")]
    addresses = [m.group(1) for m in (ADDRESS_LINE.match(line) for line in lines) if m]
    names = symbolize_addresses(elf, addresses)
    annotated = []
    for line in lines:
        annotated.append(line)
        match = ADDRESS_LINE.match(line)
        if match:
            for frame in names.get(match.group(1), []):
                annotated.append("P panic:       -> " + frame)
    return annotated
