#!/usr/bin/env python3
"""runner.py - boot every kernel test suite in QEMU and report what failed.

usage: qemu/runner.py --elf build/kernel.elf --image build/kernel.mb [--jobs N] [--seed N]
                      [--only suite,suite] [--no-scenarios] [--gdb-port PORT]
                      [--disk virtio|ide|ahci] [--machine pc|q35]

The plan comes from the kernel itself (test=list): each suite at each of its memory sizes,
each expected-panic case alone, plus the host-side scenario and gdb checks, plus a few swap
suites on the other disk interfaces and machines (virtio on pc is the default). Boots run in
parallel; each has a timeout, so a hang is a failure. Logs are kept in build/test-logs/.
Exits non-zero on any failure.

To debug a suite that hangs: --only SUITE --gdb-port 1234 boots one QEMU at a time with its
gdb stub listening and no timeout; `make attach GDB_PORT=1234` in another terminal attaches
gdb with the kernel helpers (docs/debugging.md).
"""
import argparse
import concurrent.futures
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import gdbcheck, grub, judge, necessity, plan, scenarios  # noqa: E402
from harness import qemu  # noqa: E402
from harness.qemu import Boot, EXIT_SUCCESS, require_qemu, run_boot, status_name  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--elf", default="build/kernel.elf")
    parser.add_argument("--image", default="build/kernel.mb")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SEED", "1")))
    parser.add_argument("--only", default="", help="comma-separated suites (default: all)")
    parser.add_argument("--no-scenarios", action="store_true", help="skip the host-side scenario and gdb checks")
    parser.add_argument("--logs", default="build/test-logs")
    parser.add_argument("--seed-scale", type=int, default=1,
                        help="boot multi-seed suites with this many times their seeds (make soak)")
    parser.add_argument("--max-seeds", type=int, default=0,
                        help="boot multi-seed suites with at most this many seeds (a quick sweep of another --disk)")
    parser.add_argument("--kernel-arguments", default="",
                        help="extra kernel command-line options for every suite boot (make soak: stressrounds=)")
    parser.add_argument("--memory", default="",
                        help="comma-separated QEMU memory sizes to boot every suite with instead of its own (16M,3G)")
    parser.add_argument("--cpus", default="",
                        help="comma-separated CPU counts (QEMU -smp, 1 to 8) to boot every suite with instead of its own (1,2,4)")
    parser.add_argument("--random-sizes", type=int, default=0,
                        help="boot each selected suite at this many random memory sizes (seeded by --seed) instead of its own")
    parser.add_argument("--size-range", default="16M:16G",
                        help="with --random-sizes: the range, log-uniform (MIN:MAX); a suite never boots above twice "
                             "the largest size it declares")
    parser.add_argument("--disk", default=None, choices=qemu.DISKS,
                        help="the swap disk's interface for every boot with a disk (default: virtio; docs/io.md)")
    parser.add_argument("--machine", default=qemu.DEFAULTS["machine"], choices=qemu.MACHINES,
                        help="the QEMU machine type for every boot")
    parser.add_argument("--gdb-port", type=int, default=None,
                        help="every boot listens for gdb on this port, one at a time, without a timeout")
    options = parser.parse_args()
    if options.gdb_port is not None:
        options.jobs, options.no_scenarios = 1, True
    require_qemu()
    if options.machine == "q35" and options.disk == "ide":
        parser.error("q35 has no IDE controller (its if=ide disks go to AHCI): use --disk ahci")
    qemu.DEFAULTS.update(disk=options.disk or qemu.DEFAULTS["disk"], machine=options.machine)
    os.makedirs(options.logs, exist_ok=True)

    listing = run_boot(options.image, Boot("list", "test=list", timeout=60), options.logs)
    if listing.status != EXIT_SUCCESS:
        print("FAIL  test=list: %s" % status_name(listing.status))
        print(listing.output[-2000:])
        return 1
    suites = plan.parse_list(listing.output)
    only = set(filter(None, options.only.split(",")))
    # --only may name host-side scenarios too (scenario.all-with-disk): those alone boot then.
    chosen_scenarios = {name for name in only if name.startswith("scenario.")}
    only -= chosen_scenarios
    unknown = (only - set(suites)) | (chosen_scenarios - {boot.name for boot, _ in scenarios.SCENARIOS})
    if unknown:
        print("unknown suites: %s (known: %s)" % (", ".join(sorted(unknown)), ", ".join(suites)))
        return 1
    memory = list(filter(None, options.memory.split(","))) or None
    cpus = [int(count) for count in filter(None, options.cpus.split(","))] or None
    if cpus and not all(1 <= count <= 8 for count in cpus):
        print("--cpus: each count must be 1 to 8, got %s" % options.cpus)
        return 1
    if options.random_sizes:
        boots = plan.plan_random_sizes(suites, options.seed, only, options.random_sizes, options.seed_scale,
                                       options.kernel_arguments, options.size_range)
    else:
        boots = plan.plan(suites, options.seed, only, options.seed_scale, options.kernel_arguments, memory,
                          options.max_seeds, cpus)
    if chosen_scenarios and not only:
        boots = []
    # A full run also boots a few swap suites on the other disks and machines (plan.DEVICE_BOOTS).
    if not only and not chosen_scenarios and not options.random_sizes:
        boots += plan.device_boots(suites, options.seed, options.kernel_arguments)
    print("kernel tests: seed %d, %d suites, %d boots, %d parallel jobs; logs in %s"
          % (options.seed, len(suites) if not only else len(only), len(boots), options.jobs, options.logs))

    jobs = []
    for planned in boots:
        if planned.kind == "suite":
            judge_it = (lambda p: lambda result: judge.judge_suite(result, p.suite, options.elf))(planned)
        else:
            judge_it = (lambda p: lambda result: judge.judge_expected_panic(result, p.suite, p.case, options.elf))(planned)
        jobs.append((planned.boot.name, lambda p=planned: run_boot(options.image, p.boot, options.logs, options.gdb_port), judge_it, planned))
    # One suite boots through GRUB too (with --only, when that suite is selected).
    if not options.no_scenarios and ((not only and not chosen_scenarios) or grub.SUITE in only):
        jobs.append(grub.job(options.image, options.elf, options.logs, options.seed, suites[grub.SUITE]))
    if chosen_scenarios:
        for boot, check in scenarios.SCENARIOS:
            if boot.name in chosen_scenarios:
                jobs.append((boot.name, lambda b=boot: run_boot(options.image, b, options.logs, elf=options.elf), check, None))
    elif not options.no_scenarios and not only:
        # Scenarios go first: test=all with a disk is the longest boot of the run, and started
        # last it would run alone at the end while the other job slot idles.
        jobs[:0] = [(boot.name, lambda b=boot: run_boot(options.image, b, options.logs, elf=options.elf), check, None)
                    for boot, check in scenarios.SCENARIOS]
        for name, check in gdbcheck.CHECKS:
            jobs.append((name, lambda c=check: c(options.image, options.elf, options.logs), None, None))

    failures = 0
    matrix = []         # the necessity suites' cells, printed as one table at the end
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=options.jobs) as pool:
        futures = {pool.submit(job): (name, judge_it, planned) for name, job, judge_it, planned in jobs}
        for future in concurrent.futures.as_completed(futures):
            name, judge_it, planned = futures[future]
            outcome = None
            try:
                outcome = future.result()
                if judge_it is None:
                    problems, seconds, log = outcome, None, os.path.join(options.logs, name + ".gdb.log")
                else:
                    problems, seconds, log = judge_it(outcome), outcome.seconds, outcome.log_path
            except Exception as error:  # a harness bug must fail loudly, not pass
                problems, seconds, log = ["harness error: %r" % error], None, ""
            if planned is not None and necessity.is_necessity(planned.suite.name):
                matrix.extend(necessity.cells(planned, outcome, problems))
            timing = "%6.1fs" % seconds if seconds is not None else "       "
            if problems:
                failures += 1
                print("FAIL  %-60s %s  %s" % (name, timing, log))
                if judge_it is not None and options.random_sizes:
                    boot = outcome.boot
                    print("      replay: python3 qemu/runner.py --only %s --memory %s --seed %s"
                          % (boot.arguments.split()[0][len("test="):].split(".")[0], boot.memory,
                             boot.arguments.split("seed=")[1].split()[0]))
                for problem in problems:
                    print("      " + problem)
            else:
                print("pass  %-60s %s" % (name, timing))
            sys.stdout.flush()
    necessity.print_matrix(matrix)
    total = len(jobs)
    print("kernel tests: %d of %d boots passed, %d failed (%.0fs)" % (total - failures, total, failures, time.monotonic() - started))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
