#!/usr/bin/env python3
"""bench.py - make bench: the memory system's speed and overhead, in the kernel and on the host.

  1. Kernel figures in GUEST INSTRUCTIONS (the primary figures): QEMU's TCG with
     `-icount shift=0,align=off` makes rdtsc count guest instructions, so every figure is the
     instructions one operation executes - the same on every run. bench=zones is booted twice
     and the two must agree (printed as the determinism check). Boots: bench=all (page
     allocator, zones, kmalloc, pmap, vm_map, zero-fill fault, overhead), bench=swap (ATA
     disk) and bench=pageout once per swap disk driver: ATA on pc's IDE, AHCI on q35,
     virtio-blk on both (PAGEOUT_DEVICES).
  2. Plain TCG (secondary): the same bench=all without -icount. Its ticks are host time scaled
     to QEMU's TSC rate: noisy (2x between runs on a shared machine), only for comparing
     operations within one run.
  3. KVM: used for cycle figures only if it is hardware virtualisation. bench=cpu times a loop
     of plain instructions under KVM; its nanoseconds per instruction (instructions counted
     under -icount) must be within a small factor of a real CPU's (under 1 ns). On machines
     where KVM is emulated (no vmx/svm: ~0.5-0.7 us per instruction) it says so and skips.
  4. Boot time (TCG wall time) at 128 MiB and 4 GiB.
  5. The host comparison (bench/host/run.sh): the zone code against glibc, jemalloc, mimalloc
     and tcmalloc, medians of 5 rounds, ratios.
  6. The change of every figure since the previous run, kept in docs/bench-baseline.json;
     instruction counts that grew by more than 10% are flagged. Then the baseline is replaced
     by this run's figures (--keep-baseline to leave it), and a chart of kernel instructions
     per operation and of the host ratios is written (docs/bench-chart.png, matplotlib).
Prints a report and writes it to build/bench/report.md. Benchmarks never fail the build.
"""
import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness.qemu import disk_options, make_disk  # noqa: E402

RESULT = re.compile(r"^B (?P<group>\S+) (?P<name>.+) (?P<value>\d+) (?P<unit>\S+)$")
ICOUNT = ["-icount", "shift=0,align=off"]
PLAIN_LOOP = "plain loop of 100000 iterations"
# A real CPU runs the plain loop at well under 1 ns per instruction; KVM within this many ns
# per instruction is taken to be hardware virtualisation.
KVM_NS_PER_INSTRUCTION = 4.0
GROWTH_FLAG = 0.10
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def kvm_usable():
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
        os.close(fd)
        return True
    except OSError:
        return False


def qemu(image, memory, arguments, accel="tcg", extra=(), disk=None, timeout=1800, machine="pc", interface="ide"):
    command = ["qemu-system-x86_64", "-machine", machine, "-accel", accel, *extra, "-cpu", "qemu64", "-m", memory,
               "-display", "none", "-no-reboot", "-serial", "stdio", "-monitor", "none",
               "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]
    if disk:
        options, swapdev = disk_options(interface, machine, disk)
        command += ["-kernel", image, "-append", (arguments + " " + swapdev).strip()] + options
    else:
        command += ["-kernel", image, "-append", arguments]
    try:
        output = subprocess.run(command, capture_output=True, text=True, timeout=timeout).stdout
    except subprocess.TimeoutExpired as expired:
        output = expired.stdout.decode() if isinstance(expired.stdout, bytes) else (expired.stdout or "")
        print("warning: %s timed out after %d s" % (arguments, timeout))
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


def boot_seconds(image, memory):
    """Wall time from starting QEMU (TCG) to the kernel's 'initialisation complete' line."""
    command = ["qemu-system-x86_64", "-accel", "tcg", "-cpu", "qemu64", "-m", memory, "-display", "none",
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


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def key(group, name):
    return "%s: %s" % (group, name)


def host_medians(path):
    """{(workload, size, allocator): ns} from bench/host/run.sh's medians file."""
    medians = {}
    if os.path.exists(path):
        with open(path) as lines:
            for line in lines:
                parts = line.split()
                if len(parts) == 4:
                    medians[(parts[0], int(parts[1]), parts[2])] = float(parts[3])
    return medians


def load_baseline(path):
    try:
        with open(path) as source:
            return json.load(source)
    except (OSError, ValueError):
        return {}


def changes(say, title, now, before, unit, flag_growth):
    """One line per figure: value now, before, change. Returns the figures flagged."""
    flagged = []
    say("| %s | now | previous | change |" % title)
    say("| --- | ---: | ---: | ---: |")
    for name, value in now.items():
        old = before.get(name)
        if old is None or old == 0:
            say("| %s | %s | - | new |" % (name, fmt(value)))
            continue
        change = (value - old) / old
        mark = ""
        if flag_growth and change > GROWTH_FLAG:
            mark = " **GREW >10%**"
            flagged.append("%s: %s -> %s %s (%+.0f%%)" % (name, fmt(old), fmt(value), unit, change * 100))
        say("| %s | %s | %s | %+.1f%%%s |" % (name, fmt(value), fmt(old), change * 100, mark))
    say()
    return flagged


def fmt(value):
    return "{:,}".format(value) if isinstance(value, int) else "%.2f" % value


def chart(path, kernel, kernel_before, ratios):
    """Kernel instructions per operation (now and the issue-16 starting point) and host ratios."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is missing (Debian: python3-matplotlib); no chart"
    operations = [name for name in kernel if not name.startswith("vmmap: nodes")]
    figure, (left, right) = plt.subplots(1, 2, figsize=(16, 0.32 * max(len(operations), 12) + 2))
    positions = list(range(len(operations)))
    now = [kernel[name] for name in operations]
    before = [kernel_before.get(name, 0) for name in operations]
    left.barh([p + 0.2 for p in positions], before, height=0.4, color="#bbbbbb", label="before (issue 16)")
    left.barh([p - 0.2 for p in positions], now, height=0.4, color="#1f77b4", label="now")
    left.set_yticks(positions)
    left.set_yticklabels(operations, fontsize=7)
    left.invert_yaxis()
    left.set_xscale("log")
    left.set_xlabel("guest instructions per operation (QEMU -icount; log scale)")
    left.set_title("In the kernel")
    left.legend(fontsize=8)
    for p, value in zip(positions, now):
        left.text(value, p - 0.2, " %s" % fmt(value), va="center", fontsize=6)
    rows = sorted({(w, s) for (w, s, _peer) in ratios}, key=lambda r: (["pair", "batch", "random"].index(r[0]), r[1]))
    peers = [peer for peer in ("glibc", "jemalloc", "mimalloc", "tcmalloc") if any(k[2] == peer for k in ratios)]
    width = 0.8 / max(1, len(peers))
    for index, peer in enumerate(peers):
        xs = [r + index * width - 0.4 + width / 2 for r in range(len(rows))]
        right.bar(xs, [ratios.get((w, s, peer), 0) for (w, s) in rows], width=width, label="zone / " + peer)
    right.axhline(1.0, color="black", linewidth=0.8)
    right.set_xticks(range(len(rows)))
    right.set_xticklabels(["%s %d B" % row for row in rows], rotation=45, ha="right", fontsize=8)
    right.set_ylabel("zone time / peer time (below 1: the zone is faster)")
    right.set_title("On the host: the zone code against malloc (medians)")
    right.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default="build/kernel.mb")
    parser.add_argument("--out", default="build/bench")
    parser.add_argument("--baseline", default=os.path.join(REPOSITORY, "docs", "bench-baseline.json"))
    parser.add_argument("--chart", default=os.path.join(REPOSITORY, "docs", "bench-chart.png"))
    parser.add_argument("--keep-baseline", action="store_true", help="compare with the baseline but do not replace it")
    parser.add_argument("--skip-host", action="store_true", help="skip the host allocator comparison")
    parser.add_argument("--skip-tcg", action="store_true", help="skip the plain-TCG (host time) figures and boot times")
    parser.add_argument("--skip-kvm", action="store_true", help="do not probe KVM")
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
    say()

    # 1. Guest instructions.
    table = results(qemu(options.image, "512M", "bench=all", extra=ICOUNT))
    again = results(qemu(options.image, "512M", "bench=zones", extra=ICOUNT))
    disk = make_disk(os.path.join(options.out, "bench-swap.img"), 96)
    table += results(qemu(options.image, "128M", "bench=swap", extra=ICOUNT, disk=disk))
    os.unlink(disk)
    for machine, interface in PAGEOUT_DEVICES:
        disk = make_disk(os.path.join(options.out, "bench-swap.img"), 96)
        for group, name, value, unit in results(qemu(options.image, "32M", "bench=pageout", extra=ICOUNT, disk=disk,
                                                      machine=machine, interface=interface)):
            table.append(("%s %s+%s" % (group, machine, interface), name, value, unit))
        os.unlink(disk)
    # Zone pairs on 1, 2 and 4 CPUs at once (bench=zonescaling): the per-CPU layer's scaling.
    for cpus in (1, 2, 4):
        for group, name, value, unit in results(qemu(options.image, "128M", "bench=zonescaling", extra=ICOUNT + ["-smp", str(cpus)])):
            table.append(("%s %dcpu" % (group, cpus), name, value, unit))
    first = [row for row in table if row[0] == "zones"]
    deterministic = bool(first) and first == [row for row in again if row[0] == "zones"]
    say("## In the kernel: guest instructions per operation (TCG, -icount shift=0,align=off)")
    say()
    say("rdtsc counts guest instructions under -icount: these figures are exact and repeatable. "
        "Determinism check, bench=zones booted twice: %s." % ("identical" if deterministic else "**DIFFERENT**"))
    say("Each figure includes the benchmark loop's own instructions (2 per iteration: decrement, branch).")
    say()
    say("| group | measurement | instructions | unit |")
    say("| --- | --- | ---: | --- |")
    kernel = {}
    for group, name, value, unit in table:
        if group == "machine":
            continue
        shown_unit = "instructions" if unit == "cycles" else unit
        say("| %s | %s | %s | %s |" % (group, name, fmt(value), shown_unit))
        if unit == "cycles" or (group == "vmmap" and name.startswith("nodes")):
            kernel[key(group, name)] = value
    say()
    pair = kernel.get(key("zones", "allocate+free pair (64 B, warm)"))
    if pair:
        say("Zone allocate+free pair: %d instructions with the loop, %d without (target: at most 40)%s."
            % (pair, pair - 2, "" if pair - 2 <= 40 else " - **NOT MET**"))
    visits = {name: value for name, value in kernel.items() if name.startswith("vmmap: nodes visited")}
    fewest, most = visits.get("vmmap: nodes visited per lookup, 100 entries"), visits.get("vmmap: nodes visited per lookup, 100000 entries")
    if fewest and most:
        say("Tree nodes visited per lookup: %.2f at 100 entries, %.2f at 100,000 (%.2fx for 1000x the entries)."
            % (fewest / 100, most / 100, most / fewest))
    say()

    # 3. KVM.
    say("## KVM")
    say()
    plain = next((value for group, name, value, unit in table if name == PLAIN_LOOP), None)
    if options.skip_kvm:
        say("not probed (--skip-kvm).")
    elif not kvm_usable():
        say("/dev/kvm is missing or not usable: no cycle figures.")
    else:
        probe = results(qemu(options.image, "16M", "bench=cpu", accel="kvm", timeout=600))
        values = {name: value for group, name, value, unit in probe}
        hertz, ticks = values.get("tsc-hz"), values.get(PLAIN_LOOP)
        flags = cpu_flags()
        virtualisation = "vmx" if "vmx" in flags else "svm" if "svm" in flags else None
        if not (hertz and ticks and plain):
            say("/dev/kvm is usable, but the probe (bench=cpu under KVM) gave no figure: no cycle figures.")
        else:
            ns = ticks / hertz * 1e9 / plain
            say("A loop of plain instructions (multiply, add, branch: nothing a hypervisor traps) costs %.1f ns per "
                "guest instruction under KVM (%s ticks at %.2f GHz for %s instructions counted under -icount); "
                "the host CPU flags %s." % (ns, fmt(ticks), hertz / 1e9, fmt(plain),
                                            "include " + virtualisation if virtualisation else "have neither vmx nor svm"))
            if ns <= KVM_NS_PER_INSTRUCTION:
                say("That is hardware speed: KVM cycle figures follow.")
                say()
                say("| group | measurement | cycles |")
                say("| --- | --- | ---: |")
                for group, name, value, unit in results(qemu(options.image, "512M", "bench=all", accel="kvm")):
                    if unit == "cycles":
                        say("| %s | %s | %s |" % (group, name, fmt(value)))
            else:
                say("A real CPU runs it at well under 1 ns per instruction: **this KVM is emulated, not hardware "
                    "virtualisation**, and every guest instruction - not only rdtsc or cli/sti - costs hundreds of "
                    "host cycles. KVM cycle figures would measure the emulation, so there are none.")
    say()

    # 2. Plain TCG, and boot times.
    if not options.skip_tcg:
        say("## Plain TCG (secondary): rdtsc ticks, host time")
        say()
        say("**Not instructions and not hardware cycles**: host time scaled to QEMU's TSC rate, which moves by up "
            "to 2x between runs on a shared machine. Only for comparing operations within this run.")
        say()
        say("| group | measurement | TCG ticks |")
        say("| --- | --- | ---: |")
        for group, name, value, unit in results(qemu(options.image, "512M", "bench=all")):
            if unit == "cycles":
                say("| %s | %s | %s |" % (group, name, fmt(value)))
        say()
        say("Boot time, QEMU start to the end of initialisation (TCG wall time):")
        for memory in ["128M", "4G"]:
            seconds = boot_seconds(options.image, memory)
            say("- %s: %s" % (memory, "%.2f s" % seconds if seconds is not None else "did not finish"))
        say()

    # 5. Host comparison.
    host = {}
    ratios = {}
    if not options.skip_host:
        say("## On the host: the zone code against the allocators people use")
        say()
        run = subprocess.run(["bash", os.path.join(REPOSITORY, "bench/host/run.sh")], capture_output=True, text=True)
        lines = run.stdout.splitlines()
        start = next((index for index, line in enumerate(lines) if line.startswith("median ns per operation")), None)
        say("```")
        for line in (lines[start:] if start is not None else lines[-20:] + run.stderr.splitlines()[-10:]):
            say(line)
        say("```")
        say()
        medians = host_medians(os.path.join(REPOSITORY, "build/bench/host-medians.txt"))
        for (workload, size, allocator), ns in medians.items():
            host["%s %d B %s (ns)" % (workload, size, allocator)] = ns
            zone = medians.get((workload, size, "zone"))
            if allocator != "zone" and zone:
                ratios[(workload, size, allocator)] = zone / ns
                host["%s %d B zone/%s" % (workload, size, allocator)] = round(zone / ns, 2)

    # 6. Changes since the previous run, the baseline, the chart.
    baseline = load_baseline(options.baseline)
    say("## Change since the previous run (%s)" % baseline.get("date", "no previous figures"))
    say()
    flagged = changes(say, "kernel (guest instructions)", kernel, baseline.get("kernel", {}), "instructions", True)
    if host:
        changes(say, "host (ns and ratios; noisy: medians of a shared machine)", host, baseline.get("host", {}), "", False)
    if flagged:
        say("**Instruction counts that grew by more than 10%:**")
        for line in flagged:
            say("- " + line)
    else:
        say("No instruction count grew by more than 10%.")
    say()
    if not options.keep_baseline and kernel:
        saved = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
                 "command": "make bench",
                 "kernel": kernel,
                 "host": host if host else baseline.get("host", {}),
                 "before_issue_16": baseline.get("before_issue_16", {})}
        with open(options.baseline, "w") as out:
            json.dump(saved, out, indent=1, sort_keys=False)
            out.write("\n")
        say("Figures saved as the new baseline: %s (--keep-baseline to leave it)." % os.path.relpath(options.baseline, REPOSITORY))
    problem = chart(options.chart, kernel, baseline.get("before_issue_16", {}), ratios)
    say("Chart: %s" % (problem or os.path.relpath(options.chart, REPOSITORY)))
    with open(os.path.join(options.out, "report.md"), "w") as out:
        out.write("\n".join(report) + "\n")
    print("\nreport written to %s" % os.path.join(options.out, "report.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
