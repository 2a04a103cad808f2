"""Planning the boots of a test run from the kernel's own test registry.

The kernel describes its suites (`test=list`): for each suite, the memory sizes to boot it
with, whether it needs a swap disk and extra command-line options; for each case, whether it
expects a panic. Every suite is booted once per memory size; every expected-panic case is
booted alone, because nothing runs after a panic.
"""
import re
from dataclasses import dataclass, field

from .image import memory_mib
from .qemu import DEFAULTS, Boot

SUITE_LINE = re.compile(r"^suite (?P<name>\S+) memory=(?P<memory>\S+) disk=(?P<disk>\d+)\+(?P<perram>\d+)xram icount=(?P<icount>yes|no) timeout=(?P<timeout>\d+) seeds=(?P<seeds>\d+)(?: cpus=(?P<cpus>[\d,]+))? arguments=(?P<arguments>.*)$")
CASE_LINE = re.compile(r"^case (?P<suite>[^.\s]+)\.(?P<case>\S+)(?P<panic> (?P<kind>expects|may)-panic(?P<condition>-on-interrupt-driven-disk)?)?$")
# The disks whose transfers complete by interrupt while the issuing thread sleeps (the kernel's
# DiskKind.completesByInterrupt); ATA PIO ("ide") keeps the CPU, polling.
INTERRUPT_DRIVEN_DISKS = ("virtio", "ahci")


@dataclass
class SuiteInfo:
    name: str
    memory: list
    disk_mib: int
    disk_per_ram: int
    icount: bool
    timeout: int
    seeds: int
    arguments: str
    cpus: list = field(default_factory=lambda: [1])     # QEMU -smp counts, the first one the main one
    cases: list = field(default_factory=list)
    panic_cases: list = field(default_factory=list)
    # Cases that may panic, or pass, on a disk that completes by interrupt, where a race
    # decides (the kernel's PanicCondition.possibleOnAnInterruptDrivenDisk): they boot alone
    # there and either outcome is accepted; elsewhere they run in the suite's boot and pass.
    interrupt_disk_panic_cases: list = field(default_factory=list)

    def panic_cases_on(self, disk):
        """The cases a boot with `disk` (an interface name; "" for the default) runs alone,
        awaiting a panic, in the suite's order."""
        interrupt = (disk or DEFAULTS["disk"]) in INTERRUPT_DRIVEN_DISKS
        return [case for case in self.cases
                if case in self.panic_cases or (interrupt and case in self.interrupt_disk_panic_cases)]


def parse_list(output):
    suites = {}
    for line in output.splitlines():
        line = line.strip()
        match = SUITE_LINE.match(line)
        if match:
            suites[match.group("name")] = SuiteInfo(
                match.group("name"), match.group("memory").split(","), int(match.group("disk")), int(match.group("perram")),
                match.group("icount") == "yes", int(match.group("timeout")), int(match.group("seeds")),
                match.group("arguments").strip(),
                [int(count) for count in match.group("cpus").split(",")] if match.group("cpus") else [1])
            continue
        match = CASE_LINE.match(line)
        if match and match.group("suite") in suites:
            suite = suites[match.group("suite")]
            suite.cases.append(match.group("case"))
            if match.group("condition") and match.group("kind") == "may":
                suite.interrupt_disk_panic_cases.append(match.group("case"))
            elif match.group("panic"):
                suite.panic_cases.append(match.group("case"))
    return suites


@dataclass
class PlannedBoot:
    boot: Boot
    kind: str               # "suite" or "panic"
    suite: SuiteInfo
    case: str = None


def disk_size(suite, memory):
    """The suite's swap disk in MiB at this memory size: its own size, and at least
    disk_per_ram times the memory when it asks for that (0: no disk)."""
    if suite.disk_mib == 0:
        return 0
    return max(suite.disk_mib, suite.disk_per_ram * memory_mib(memory))


def boot_timeout(suite, memory, cpus=1):
    """The suite's timeout, stretched in proportion when a boot has more memory than the
    largest size the suite declares: pressure workloads grow with RAM (paging writes twice
    RAM), so a fixed timeout would call a slow boot at an undeclared size hung. Each CPU past
    the first adds a quarter: TCG runs them on the same few host cores."""
    largest = max(memory_mib(size) for size in suite.memory)
    return int(suite.timeout * max(1.0, memory_mib(memory) / largest) * (1.0 + 0.25 * (cpus - 1)))


def plan_random_sizes(suites, seed, only, count, seed_scale, extra_arguments, size_range):
    """Soak boots: each selected suite `count` times per seed, each at a memory size drawn
    log-uniformly from `size_range`, but never above twice the largest size the suite declares
    (the pressure suites declare up to 256M: their workloads grow with RAM and would take hours
    at many GiB under TCG), with a generator
    seeded by `seed`, so that the same command plans the same boots. Boot names carry the size
    and the seed; any failure replays with --only SUITE --memory SIZE --seed N."""
    import math
    import random
    generator = random.Random(seed)
    planned = []
    for suite in suites.values():
        if only and suite.name not in only:
            continue
        low, high = (memory_mib(size) for size in size_range.split(":"))
        high = max(low, min(high, 2 * max(memory_mib(size) for size in suite.memory)))
        seeds = suite.seeds * seed_scale if suite.seeds > 1 else 1
        for offset in range(max(1, seeds // max(1, suite.seeds))):
            for _ in range(count):
                size = "%dM" % round(math.exp(generator.uniform(math.log(low), math.log(high))))
                boot_seed = seed + offset * 1000 + generator.randrange(1000)
                arguments = ("seed=%d %s %s" % (boot_seed, suite.arguments, extra_arguments)).strip()
                count_cpus = suite.cpus[-1]     # the most CPUs the suite asks for
                planned.append(PlannedBoot(Boot(name=boot_name(suite.name, size, count_cpus, boot_seed),
                                                arguments="test=%s %s" % (suite.name, arguments), memory=size,
                                                timeout=boot_timeout(suite, size, count_cpus), disk_mib=disk_size(suite, size),
                                                icount=suite.icount, cpus=count_cpus), "suite", suite))
                for case in suite.panic_cases_on(""):
                    planned.append(PlannedBoot(Boot(name=boot_name("%s.%s" % (suite.name, case), size, count_cpus, boot_seed),
                                                    arguments="test=%s.%s %s" % (suite.name, case, arguments),
                                                    memory=size, timeout=boot_timeout(suite, size, count_cpus), disk_mib=disk_size(suite, size),
                                                    icount=suite.icount, cpus=count_cpus), "panic", suite, case))
    return planned


def boot_name(suite, size, cpus, seed=None):
    """suite@SIZE, -Ncpu when the boot has more than one CPU, #SEED for multi-seed suites."""
    return "%s@%s" % (suite, size) + ("-%dcpu" % cpus if cpus > 1 else "") + ("#%d" % seed if seed is not None else "")


def plan(suites, seed, only=None, seed_scale=1, extra_arguments="", memory=None, max_seeds=0, cpus=None):
    """Boots for `suites`: each memory size (the suite's own, or `memory` when given), and
    each of the suite's seeds (times `seed_scale` for soak runs, at most `max_seeds` when
    given) at its first size, plus each expected-panic case at every size. A suite's first CPU
    count (or each of `cpus`, when given) boots like that; its other CPU counts boot at its
    first size with the first seed only; expected-panic cases boot with its last CPU count (an
    AP panic needs APs)."""
    planned = []
    for suite in suites.values():
        if only and suite.name not in only:
            continue
        seeds = suite.seeds * seed_scale if suite.seeds > 1 else 1
        if max_seeds:
            seeds = min(seeds, max_seeds)
        sizes = memory or suite.memory
        counts = cpus or suite.cpus
        for offset in range(seeds):
            arguments = ("seed=%d %s %s" % (seed + offset, suite.arguments, extra_arguments)).strip()
            # Every seed at the suite's first size; the other sizes with the first seed only,
            # so that a 20-seed pressure suite adds one boot, not twenty, per extra size.
            for size in sizes if offset == 0 else sizes[:1]:
                # Every CPU count with the first seed at the first size (at every size when
                # --cpus asks for them); otherwise the suite's first count.
                every_count = offset == 0 and (cpus or size == sizes[0])
                for count in counts if every_count else counts[:1]:
                    name = boot_name(suite.name, size, count, seed + offset if seeds > 1 else None)
                    boot = Boot(name=name, arguments="test=%s %s" % (suite.name, arguments),
                                memory=size, timeout=boot_timeout(suite, size, count), disk_mib=disk_size(suite, size),
                                icount=suite.icount, cpus=count)
                    planned.append(PlannedBoot(boot, "suite", suite))
        arguments = ("seed=%d %s %s" % (seed, suite.arguments, extra_arguments)).strip()
        count = counts[-1]
        for case, size in ((case, size) for case in suite.panic_cases_on("") for size in sizes):
            boot = Boot(name=boot_name("%s.%s" % (suite.name, case), size, count), arguments="test=%s.%s %s" % (suite.name, case, arguments),
                        memory=size, timeout=boot_timeout(suite, size, count), disk_mib=disk_size(suite, size),
                        icount=suite.icount, cpus=count)
            planned.append(PlannedBoot(boot, "panic", suite, case))
    return planned


# The swap suites booted again, in a full run, on the disk interfaces and machines other than
# the default (virtio on pc): two suites per combination, at one size, so that each driver is
# proved by the device round trip and by paging under pressure without adding much time.
# necessity-pages on IDE shows the cells of the necessity matrix that depend on the disk: with
# ATA PIO the zone reserve alone carries Dillon's workload (docs/reserves.md, "Necessity").
# `--disk`/`--machine` run any selection on one combination (docs/io.md).
DEVICE_BOOTS = (
    ("pc", "ide", ("swapdevice", "128M"), ("paging", "24M"), ("necessity-pages", "24M"), ("interrupts", "24M")),
    ("q35", "ahci", ("swapdevice", "128M"), ("paging", "24M"), ("interrupts", "24M"), ("writesinflight", "64M")),
    ("q35", "virtio", ("swapdevice", "128M"), ("races", "24M")),
)


def device_boots(suites, seed, extra_arguments=""):
    planned = []
    for machine, disk, *chosen in DEVICE_BOOTS:
        for name, size in chosen:
            suite = suites.get(name)
            if suite is None:
                continue
            arguments = ("seed=%d %s %s" % (seed, suite.arguments, extra_arguments)).strip()
            boot = Boot(name="%s@%s[%s+%s]" % (name, size, machine, disk), arguments="test=%s %s" % (name, arguments),
                        memory=size, timeout=boot_timeout(suite, size), disk_mib=disk_size(suite, size),
                        icount=suite.icount, disk=disk, machine=machine)
            planned.append(PlannedBoot(boot, "suite", suite))
    return planned
