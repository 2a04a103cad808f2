#!/usr/bin/env python3
"""bench.py - make bench: the memory system's speed and overhead, in the kernel and on the host.

  1. Chooses the accelerator: KVM when /dev/kvm is usable and does not trap the instructions the
     fast paths use (bench=cpu measures rdtsc and interrupts off+on); otherwise TCG, with the
     warning that TCG cycles are not hardware cycles.
  2. Boots bench=all (page allocator, zones, kmalloc, pmap, vm_map, faults, overhead) and
     bench=pageout (with a swap disk and little memory, so that pages really go to swap), once per
     swap disk driver: ATA on pc's IDE, AHCI on q35, virtio-blk on both (PAGEOUT_DEVICES).
  3. Times boots from QEMU start to the end of initialisation at 128 MiB and 4 GiB.
  4. Runs the host comparison (bench/host/run.sh): the zone code against glibc, jemalloc,
     mimalloc and tcmalloc.
Prints a report and writes it to build/bench/report.md. Benchmarks never fail the build.
"""
import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness.qemu import disk_options, make_disk  # noqa: E402

RESULT = re.compile(r"^B (?P<group>\S+) (?P<name>.+) (?P<value>\d+) (?P<unit>\S+)$")
TRAP_CYCLES = 1000     # rdtsc or cli/sti dearer than this: the hypervisor is trapping them


def kvm_usable():
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
        os.close(fd)
        return True
    except OSError:
        return False


def qemu(image, accelerator, memory, arguments, disk=None, timeout=1800, machine="pc", interface="virtio"):
    command = ["qemu-system-x86_64", "-machine", machine, "-accel", accelerator, "-cpu", "qemu64", "-m", memory,
               "-display", "none", "-no-reboot", "-serial", "stdio", "-monitor", "none",
               "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]
    if disk:
        options, swapdev = disk_options(interface, machine, disk)
        command += ["-kernel", image, "-append", (arguments + " " + swapdev).strip()] + options
    else:
        command += ["-kernel", image, "-append", arguments]
    output = subprocess.run(command, capture_output=True, text=True, timeout=timeout).stdout
    return output.replace("\r\n", "\n")


# The pageout benchmark on each swap disk driver (docs/io.md): machine, disk interface.
PAGEOUT_DEVICES = (("pc", "ide"), ("pc", "virtio"), ("q35", "ahci"), ("q35", "virtio"))


def results(output):
    found = []
    for line in output.splitlines():
        match = RESULT.match(line.strip())
        if match:
            found.append((match.group("group"), match.group("name"), int(match.group("value")), match.group("unit")))
    return found


def boot_seconds(image, accelerator, memory):
    """Wall time from starting QEMU to the kernel's 'initialisation complete' line."""
    command = ["qemu-system-x86_64", "-accel", accelerator, "-cpu", "qemu64", "-m", memory, "-display", "none",
               "-no-reboot", "-serial", "stdio", "-monitor", "none", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
               "-kernel", image, "-append", ""]
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seconds = None
    for line in process.stdout:
        if "initialisation complete" in line:
            seconds = time.monotonic() - started
    process.wait()
    return seconds


def cpu_model():
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default="build/kernel.mb")
    parser.add_argument("--out", default="build/bench")
    parser.add_argument("--skip-host", action="store_true", help="skip the host allocator comparison")
    options = parser.parse_args()
    os.makedirs(options.out, exist_ok=True)
    report = []

    def say(line=""):
        print(line)
        report.append(line)

    say("# Benchmark report")
    say()
    say("- date: %s" % datetime.datetime.now().strftime("%Y-%m-%d %H:%M"))
    say("- machine: %s, %d CPUs, %s" % (cpu_model(), os.cpu_count() or 0, platform.platform()))
    say("- command: `make bench`")

    accelerator = "tcg"
    if kvm_usable():
        probe = results(qemu(options.image, "kvm", "128M", "bench=cpu"))
        costs = {name: value for group, name, value, unit in probe if group == "cpu"}
        rdtsc = costs.get("rdtsc", 0)
        flags = costs.get("interrupts off+on (pushf, cli, sti)", 0)
        if rdtsc and rdtsc < TRAP_CYCLES and flags < TRAP_CYCLES:
            accelerator = "kvm"
            say("- accelerator: KVM (/dev/kvm usable; rdtsc %d cycles, interrupts off+on %d cycles)" % (rdtsc, flags))
        else:
            say("- accelerator: TCG. /dev/kvm is usable, but this host traps the instructions the fast paths")
            say("  use - under KVM rdtsc costs %d cycles and interrupts off+on %d (a nested hypervisor?) -" % (rdtsc, flags))
            say("  so KVM cycle counts would measure the hypervisor, not the kernel.")
    else:
        say("- accelerator: TCG (/dev/kvm is missing or not usable)")
    if accelerator == "tcg":
        say()
        say("**Warning: TCG cycles are QEMU's emulated time-stamp counter, not hardware cycles.** They compare")
        say("the kernel's operations with each other and show trends (logarithmic growth, ratios), not real costs.")
    say()

    output = qemu(options.image, accelerator, "512M", "bench=all")
    table = results(output)
    for machine, interface in PAGEOUT_DEVICES:
        disk = make_disk(os.path.join(options.out, "bench-swap.img"), 96)
        for group, name, value, unit in results(qemu(options.image, accelerator, "32M", "bench=pageout", disk=disk,
                                                      machine=machine, interface=interface)):
            table.append(("%s %s+%s" % (group, machine, interface), name, value, unit))
        os.unlink(disk)
    say("## In the kernel (%s)" % accelerator.upper())
    say()
    say("| group | measurement | value | unit |")
    say("| --- | --- | ---: | --- |")
    for group, name, value, unit in table:
        say("| %s | %s | %d | %s |" % (group, name, value, unit))
    say()
    lookups = {name: value for group, name, value, unit in table if group == "vmmap"}
    small, large = lookups.get("lookup, 100 entries"), lookups.get("lookup, 100000 entries")
    if small and large:
        say("vm_map lookup at 100,000 entries costs %.2fx the cost at 100 entries in %s cycles (target: at most 3x)."
            % (large / small, accelerator.upper()))
    visits = {name: value for group, name, value, unit in table if group == "vmmap" and name.startswith("nodes visited")}
    fewest, most = visits.get("nodes visited per lookup, 100 entries"), visits.get("nodes visited per lookup, 100000 entries")
    if fewest and most:
        say("Tree nodes visited per lookup: %.2f at 100 entries, %.2f at 100,000 - %.2fx for 1000x the entries (logarithmic)."
            % (fewest / 100, most / 100, most / fewest))
    pair = {name: value for group, name, value, unit in table}.get("allocate+free pair (64 B, warm)")
    if pair:
        say("zone allocate+free pair: %d %s cycles (target: below 42 hardware cycles under KVM)." % (pair, accelerator.upper()))
    descriptor = {name: value for group, name, value, unit in table}.get("page descriptor per 4 KiB page")
    if descriptor:
        say("page descriptor: %d bytes per 4 KiB page, %.2f%% of RAM (target: at most 64 bytes, 1.6%%)." % (descriptor, descriptor * 100 / 4096))
    say()

    say("## Boot time, QEMU start to the end of initialisation (%s)" % accelerator.upper())
    say()
    for memory in ["128M", "4G"]:
        seconds = boot_seconds(options.image, accelerator, memory)
        say("- %s: %s" % (memory, "%.2f s" % seconds if seconds is not None else "did not finish"))
    say()

    if not options.skip_host:
        say("## On the host: the zone code against the allocators people use")
        say()
        host = subprocess.run(["bash", "bench/host/run.sh"], capture_output=True, text=True)
        lines = host.stdout.splitlines()
        start = next((index for index, line in enumerate(lines) if line.startswith("median ns per operation")), None)
        say("```")
        for line in (lines[start:] if start is not None else lines[-20:]):
            say(line)
        say("```")
    with open(os.path.join(options.out, "report.md"), "w") as out:
        out.write("\n".join(report) + "\n")
    print("\nreport written to %s" % os.path.join(options.out, "report.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
