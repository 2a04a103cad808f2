#!/usr/bin/env python3
"""profile.py - where a boot spends its host time: a sampling profiler over QEMU's monitor.

Boots the kernel under TCG with a QMP socket and, until the guest exits, samples it: stop the
VM, read the boot CPU's RIP and RBP (`info registers`), walk the frame-pointer chain through
guest memory (`x /2gx`), resume. Each sample is charged to the function holding RIP (flat) and
to every distinct function on the chain (inclusive). Prints both tables, heaviest first.

    python3 qemu/profile.py [--image build/kernel.mb] [--elf build/kernel.elf] [--memory 128M]
                            [--disk virtio|ide|ahci] [--machine pc|q35] [--top 40] -- bench=pageout

Why stop the VM for each sample: while TCG runs chained translation blocks it does not store
RIP, so reading the registers of a running vCPU charges a call's time to its caller. Stopped,
the vCPU has left its loop at a block boundary and RIP is exact. What it measures is host time
(TCG's cost of each guest instruction varies: an exception or a `rep` iteration costs far more
than an add), which is what the host-time benchmarks (`bench=pageout`) report; -icount figures
count guest instructions instead (docs/benchmarks.md). Only the boot CPU is sampled.
"""
import argparse
import bisect
import collections
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness.qemu import disk_options, make_disk  # noqa: E402

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Monitor:
    """A QMP connection that runs human monitor commands."""

    def __init__(self, path):
        for _ in range(100):
            try:
                self.socket = socket.socket(socket.AF_UNIX)
                self.socket.connect(path)
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise SystemExit("profile.py: QEMU's QMP socket %s never came up" % path)
        self.stream = self.socket.makefile("rw")
        self.stream.readline()                      # the greeting
        self.send({"execute": "qmp_capabilities"})

    def send(self, message):
        self.stream.write(json.dumps(message) + "\n")
        self.stream.flush()
        while True:
            line = self.stream.readline()
            if not line:
                raise EOFError("QEMU closed the monitor")
            answer = json.loads(line)
            if "return" in answer or "error" in answer:
                return answer.get("return", "")

    def command(self, text):
        return self.send({"execute": "human-monitor-command", "arguments": {"command-line": text}})


class Symbols:
    """Function names by address, from the kernel ELF's symbol table."""

    def __init__(self, elf):
        listing = subprocess.run(["nm", "--defined-only", elf], capture_output=True, text=True, check=True).stdout
        entries = sorted((int(address, 16), name) for address, kind, name in
                         (line.split(" ", 2) for line in listing.splitlines() if line.count(" ") >= 2)
                         if kind in "tTwW")
        self.addresses = [address for address, _ in entries]
        self.names = [name for _, name in entries]
        demangled = subprocess.run(["swift", "demangle", "--simplified", "--compact"], input="\n".join(self.names),
                                   capture_output=True, text=True)
        if demangled.returncode == 0 and demangled.stdout.count("\n") >= len(self.names) - 1:
            self.names = demangled.stdout.splitlines()

    def name(self, address):
        index = bisect.bisect_right(self.addresses, address) - 1
        return self.names[index] if index >= 0 else "0x%x" % address


def sample(monitor, symbols, depth):
    """One sample: the functions of RIP and of each return address up the frame chain."""
    registers = monitor.command("info registers")
    rip = re.search(r"RIP=([0-9a-f]+)", registers)
    rbp = re.search(r"RBP=([0-9a-f]+)", registers)
    if not rip or not rbp:
        return None
    chain = [symbols.name(int(rip.group(1), 16))]
    frame = int(rbp.group(1), 16)
    for _ in range(depth):
        if frame < 0x1000 or frame & 7:
            break
        words = re.findall(r"0x([0-9a-f]{16})", monitor.command("x /2gx 0x%x" % frame).split(":", 1)[-1])
        if len(words) < 2:
            break
        caller_frame, return_address = int(words[0], 16), int(words[1], 16)
        chain.append(symbols.name(return_address))
        if caller_frame <= frame:
            break
        frame = caller_frame
    return chain


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=os.path.join(REPOSITORY, "build", "kernel.mb"))
    parser.add_argument("--elf", default=os.path.join(REPOSITORY, "build", "kernel.elf"))
    parser.add_argument("--memory", default="128M")
    parser.add_argument("--disk", default="virtio", choices=("virtio", "ide", "ahci"))
    parser.add_argument("--machine", default="pc", choices=("pc", "q35"))
    parser.add_argument("--depth", type=int, default=16, help="frames to walk per sample")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("arguments", nargs="+", help="the kernel command line (after --)")
    options = parser.parse_args()
    for path in (options.image, options.elf):
        if not os.path.exists(path):
            raise SystemExit("profile.py: %s is missing: run `make kernel` first" % path)
    scratch = tempfile.mkdtemp(prefix="profile-")
    qmp = os.path.join(scratch, "qmp.sock")
    serial = os.path.join(scratch, "serial.log")
    drive, swapdev = disk_options(options.disk, options.machine, make_disk(os.path.join(scratch, "swap.img"), 256))
    command = ["qemu-system-x86_64", "-machine", options.machine, "-accel", "tcg", "-cpu", "qemu64",
               "-m", options.memory, "-display", "none", "-no-reboot", "-serial", "file:" + serial,
               "-monitor", "none", "-qmp", "unix:%s,server=on,wait=off" % qmp,
               "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-kernel", options.image,
               "-append", " ".join(options.arguments + [swapdev])] + drive
    symbols = Symbols(options.elf)
    qemu = subprocess.Popen(command)
    monitor = Monitor(qmp)
    flat, inclusive, samples = collections.Counter(), collections.Counter(), 0
    try:
        while qemu.poll() is None:
            monitor.command("stop")
            chain = sample(monitor, symbols, options.depth)
            monitor.command("cont")
            if chain:
                samples += 1
                flat[chain[0]] += 1
                for name in set(chain):
                    inclusive[name] += 1
    except (EOFError, OSError, json.JSONDecodeError):
        pass                                         # the guest exited between two commands
    qemu.wait()
    with open(serial, errors="replace") as log:
        results = [line.rstrip() for line in log if line.startswith("B ")]
    print("%d samples of %s (%s, %s + %s)" % (samples, " ".join(options.arguments), options.memory, options.machine, options.disk))
    for line in results:
        print(line)
    for title, counts in (("flat: where RIP was", flat), ("inclusive: on the frame chain", inclusive)):
        print("\n%s" % title)
        for name, count in counts.most_common(options.top):
            print("%6.1f%%  %s" % (100.0 * count / max(1, samples), name))


if __name__ == "__main__":
    main()
