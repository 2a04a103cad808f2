#!/usr/bin/env python3
"""trace.py - pictures of memory pressure: boot a workload with trace=on and chart the samples.

usage: qemu/trace.py run [--arguments "stress=objects"] [--memory 32M] [--seed N] [--out build/trace/trace.png]
       qemu/trace.py chart LOG OUT.png|OUT.svg [--title TEXT]

`run` boots the kernel under QEMU with -icount (guest time is instructions: the same seed
draws the same picture up to the first swap I/O, docs/trace.md) and a fresh swap disk, keeps
the serial log beside the chart (OUT with .log) and then does what `chart` does: reads the
samples (qemu/harness/pressure.py), checks them - in order, equally spaced in guest time, free
pages within 0..managed - and writes the chart. Exits non-zero when the samples fail the check
or there are none; a workload that ends in the deadlock watchdog (reserves=off) is drawn like
any other, its end marked. `make trace` runs `run` (docs/trace.md).
"""
import argparse
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import pressure  # noqa: E402
from harness.qemu import Boot, require_qemu, run_boot, status_name  # noqa: E402


def mebibytes(size):
    units = {"M": 1, "G": 1024}
    return int(size[:-1]) * units[size[-1].upper()] if size[-1].upper() in units else int(size) // (1 << 20)


def chart_log(log_path, out_path, title):
    with open(log_path, encoding="utf-8", errors="replace") as log:
        trace = pressure.parse(log.read())
    problems = pressure.check(trace)
    if problems:
        for problem in problems[:20]:
            print("trace: %s" % problem)
        if len(problems) > 20:
            print("trace: ... and %d more" % (len(problems) - 20))
        print("trace: %s: the samples fail the check; no chart written" % log_path)
        return 1
    pressure.chart(trace, out_path, title)
    first, last = trace.samples[0], trace.samples[-1]
    print("trace: %d samples, %.2f s to %.2f s of guest time; lowest free %d pages (free_min %d); chart in %s"
          % (len(trace.samples), trace.seconds(first), trace.seconds(last), min(s.free for s in trace.samples),
             trace.header["free_min"], out_path))
    if trace.deadlock:
        print("trace: ends in the deadlock watchdog: %s" % trace.deadlock)
    return 0


def run(options):
    require_qemu()
    seed = options.seed if options.seed is not None else random.randrange(1, 1 << 31)
    arguments = "%s trace=on seed=%d" % (options.arguments, seed)
    out_dir = os.path.dirname(os.path.abspath(options.out))
    os.makedirs(out_dir, exist_ok=True)
    # The stress workloads fill past RAM into swap: a disk of twice the memory, 40 MiB at least,
    # as the stress suites have (kernel/Test/DeadlockTests.swift).
    disk = max(40, 2 * mebibytes(options.memory))
    name = os.path.splitext(os.path.basename(options.out))[0]
    print("make trace: seed %d; kernel command line '%s' at %s with a %d MiB swap disk (replay: make trace SEED=%d ARGS=\"%s\")"
          % (seed, arguments, options.memory, disk, seed, options.arguments), flush=True)
    boot = Boot(name, arguments, memory=options.memory, timeout=options.timeout, disk_mib=disk, icount=True)
    result = run_boot(options.image, boot, out_dir)
    print("trace: the kernel ended with %s after %.0f s; serial log in %s" % (status_name(result.status), result.seconds,
                                                                         result.log_path))
    title = "%s, %s, seed %d" % (options.arguments, options.memory, seed)
    return chart_log(result.log_path, options.out, title)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="boot a workload with trace=on and chart it")
    run_parser.add_argument("--image", default="build/kernel.mb")
    run_parser.add_argument("--arguments", default="stress=objects", help="the workload's kernel command line")
    run_parser.add_argument("--memory", default="32M")
    run_parser.add_argument("--seed", type=int, default=None, help="default: a random one, printed")
    run_parser.add_argument("--timeout", type=float, default=1200.0)
    run_parser.add_argument("--out", default="build/trace/trace.png")
    chart_parser = commands.add_parser("chart", help="chart the samples in a serial log")
    chart_parser.add_argument("log")
    chart_parser.add_argument("out")
    chart_parser.add_argument("--title", default="")
    options = parser.parse_args()
    if options.command == "run":
        return run(options)
    return chart_log(options.log, options.out, options.title or os.path.basename(options.log))


if __name__ == "__main__":
    sys.exit(main())
