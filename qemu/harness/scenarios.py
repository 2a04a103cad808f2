"""Boots whose checks live on the host: what the log of a plain boot must show.

These cover what an in-kernel test cannot see about itself: the banner, the memory map and
the command line in the boot log, and how malformed command lines are reported.
"""
import re

from . import ktap, kunitcheck
from .qemu import Boot, EXIT_BOOT_FAILURE, EXIT_DEADLOCK, EXIT_SUCCESS, EXIT_TEST_FAILURE, NOT_STARTED, status_name


def expect_lines(output, patterns):
    problems = []
    for pattern in patterns:
        if not re.search(pattern, output, re.MULTILINE):
            problems.append("log has no line matching /%s/" % pattern)
    return problems


def expect_no_lines(output, patterns):
    return ["log has a line matching /%s/, which it must not" % pattern
            for pattern in patterns if re.search(pattern, output, re.MULTILINE)]


def expect_status(result, wanted):
    if result.status != wanted:
        return ["kernel outcome: %s, expected %s" % (status_name(result.status), status_name(wanted))]
    return []


def check_boot_log(result):
    return expect_status(result, EXIT_SUCCESS) + expect_lines(result.output, [
        r"^I boot: swift-kernel \S+: an x86-64 kernel in Embedded Swift$",
        r"^I boot: multiboot memory map \(\d+ entries\):$",
        r"^I boot:   0x0000000000100000 - 0x\w+ usable",
        r"^I boot: boot loader: 'qemu'$",
        r"^I cmdline: command line: '\S*kernel\.mb seed=4242 loglevel=debug'$",
        r"^I boot: initialisation complete \(seed 4242\)$",
    ])


def check_malformed_options(result):
    """Every problem is named, then the boot stops: a typo must not pass as a run of the defaults."""
    return expect_status(result, EXIT_BOOT_FAILURE) + expect_lines(result.output, [
        r"^E cmdline: unknown option 'bogus'; the option 'help' lists the known ones$",
        r"^E cmdline: seed=abc: expected an unsigned number \(decimal, or hexadecimal with 0x\)$",
        r"^E cmdline: loglevel=loud: expected one of error\|warn\|info\|debug$",
        r"^E cmdline: test=: expected a comma-separated list of non-empty names$",
        r"^E cmdline: option 'seed' needs a value: seed=<number>$",
        r"^E cmdline: option 'seed' given more than once$",
        r"^E cmdline: option 'test' given more than once$",
        r"^E cmdline: 7 problem\(s\) on the command line: the boot stops here",
    ]) + expect_no_lines(result.output, [r"^I boot: initialisation complete", r"^KTAP version"])


def check_one_bad_value(result):
    """One bad value alone is enough to stop the boot, before any test runs."""
    return expect_status(result, EXIT_BOOT_FAILURE) + expect_lines(result.output, [
        r"^E cmdline: seed=abc: expected an unsigned number",
        r"^E cmdline: 1 problem\(s\) on the command line: the boot stops here",
    ]) + expect_no_lines(result.output, [r"^KTAP version"])


def check_help_with_errors(result):
    """`help` still lists every option when the boot stops for a bad one."""
    import os
    source = os.path.join(os.path.dirname(__file__), "..", "..", "kernel", "Kern", "KernelOptions.swift")
    with open(source) as text:
        names = re.findall(r'return OptionSpec\("(\w+)"', text.read())
    problems = expect_status(result, EXIT_BOOT_FAILURE) + expect_lines(result.output, [
        r"^E cmdline: unknown option 'bogus'",
        r"^E cmdline: 1 problem\(s\) on the command line: the boot stops here",
    ])
    if len(names) < 10:
        problems.append("found only %d options in KernelOptions.swift" % len(names))
    problems += expect_lines(result.output, [r"^I cmdline:   %s[=  ]" % name for name in names])
    return problems


def check_control_bytes_escaped(result):
    """Control bytes on the command line are echoed escaped, never raw to the terminal."""
    problems = expect_status(result, EXIT_BOOT_FAILURE) + expect_lines(result.output, [
        r"^I cmdline: command line: '\S*kernel\.mb \\x1b\[2J=1 test=x\\x07'$",
        r"^E cmdline: unknown option '\\x1b\[2J'",
    ])
    if "\x1b" in result.output or "\x07" in result.output:
        problems.append("the log has a raw control byte")
    return problems


def check_unknown_suite(result):
    return expect_status(result, EXIT_TEST_FAILURE) + ktap.parse(result.output).errors + expect_lines(result.output, [
        r"^# no suite or case named 'nosuchsuite'; test=list shows them$",
        r"^not ok 1 selection # ERROR unknown test names$",
        r"^0 passed, 1 failed, 0 skipped$",
    ])


def check_help(result):
    return expect_status(result, EXIT_SUCCESS) + expect_lines(result.output, [
        r"^I cmdline:   test=<name,\.\.\.>  run test suites",
        r"^I cmdline:   seed=<number>  seed for every randomised test",
    ])


def check_reserve_document(result):
    """docs/reserves.md states the kernel's reserve numbers; they must be the ones it logs."""
    import os
    problems = expect_status(result, EXIT_SUCCESS)
    document = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "reserves.md")
    with open(document) as text:
        stated = [line.strip() for line in text if line.startswith("reserve needs: ") or line.startswith("reserve bounds: ")]
    logged = [line[len("I zone: "):] for line in result.output.splitlines()
              if line.startswith("I zone: reserve needs: ") or line.startswith("I zone: reserve bounds: ")]
    if len(stated) != 2:
        problems.append("docs/reserves.md does not state the two reserve lines")
    if stated != logged:
        problems.append("docs/reserves.md says %r but the kernel logs %r" % (stated, logged))
    return problems


def check_too_little_memory(result):
    """Below what the image and 512 KiB need, the boot stub says so in one line and fails."""
    return expect_status(result, EXIT_BOOT_FAILURE) + expect_lines(result.output, [
        r"boot: too little memory: \d+ KiB from 1 MiB up, the kernel needs \d+ KiB there \(its image and 512 KiB to run on\); give the machine more memory$",
    ])


def check_image_does_not_fit(result):
    """Where the boot stub itself would lie beyond RAM, QEMU is not started at all."""
    return expect_status(result, NOT_STARTED) + expect_lines(result.output, [
        r"^not started: -m 1M ends below the kernel image",
    ])


def check_smallest_machine_boots(result):
    return expect_status(result, EXIT_SUCCESS) + expect_lines(result.output, [r"^\d+ passed, 0 failed, 0 skipped$"])


def strict_ktap(result):
    """The report read strictly (harness/ktap.py), complete, with a summary that counts it."""
    report = ktap.parse(result.output)
    problems = list(report.errors) + kunitcheck.check(result.output, report)
    if not report.seen_header:
        problems.append("no KTAP report in the log")
    if report.summary is None:
        problems.append("no 'N passed, N failed, N skipped' summary line")
    return report, problems


def check_all_in_one_boot(disk):
    """`test=all` in one boot: every suite the machine can run passes, every other is skipped
    with the reason, and nothing fails; `disk` says which of the swap suites can run."""
    def check(result):
        report, problems = strict_ktap(result)
        problems += expect_status(result, EXIT_SUCCESS)
        if report.summary is not None and report.summary[1] != 0:
            problems.append("summary %s: expected no failure" % (report.summary,))
        for case in report.failed_cases:
            if not case.skipped:
                problems.append("not ok %s.%s %s" % (case.suite, case.name, case.directive))
        # Suites that need an option the command line does not give are skipped, by name.
        problems += expect_lines(result.output, [
            r"^ok \d+ pmmfaults # SKIP needs the option pagefail=every:3:ordinary on the command line$",
            r"^ok \d+ zonedebug # SKIP needs the option zonedebug=all on the command line$",
            r"^ok \d+ vmmapcheck # SKIP needs the option mapcheck=on on the command line$",
            r"^ok \d+ deadlock # SKIP needs the option reserves=off on the command line$",
            r"^ok \d+ diskfaults # SKIP needs the option diskfault=write:3,read:10 on the command line$",
            r"^ok \d+ (boot|pmm|zones|vmmap|threads|context|gdbhelpers)$",
        ])
        if disk:
            problems += expect_lines(result.output, [
                r"^ok \d+ (swapdevice|paging|races|stress|reservebound)$",
                r"^ok \d+ swapterabyte # SKIP needs a swap disk of at least 1048576 MiB; this one has 512 MiB$",
                r"^ok \d+ swapfull # SKIP needs a swap disk of at most 64 MiB, which its workload can fill; this one has 512 MiB$",
            ])
            for suite in ("swapdevice", "paging", "races", "stress", "reservebound"):
                if report.suites.get(suite) is not True:
                    problems.append("suite %s did not pass" % suite)
        else:
            problems += expect_lines(result.output, [
                r"^ok \d+ swapdevice # SKIP needs a swap disk of at least 16 MiB; there is none$",
                r"^  ok 1 diskIsFoundWithItsSize # SKIP needs a swap disk of at least 16 MiB; there is none$",
                r"^ok \d+ paging # SKIP needs a swap disk of at least \d+ MiB; there is none$",
            ])
        problems += expect_no_lines(result.output, [r"Division by zero", r"^P panic: "])
        return problems
    return check


def check_unexpected_panic_completes_the_plan(result):
    """A panic nobody expected (the deadlock watchdog, in `stress` with reserves=off) ends
    the run; the kernel still reports every case and suite that never ran, and counts them."""
    report, problems = strict_ktap(result)
    problems += expect_status(result, EXIT_DEADLOCK)
    problems += expect_lines(result.output, [
        r"^  not ok 1 objectsWorkloadLosesNothing # ERROR panic$",
        r"^  not ok 2 kmapWorkloadLosesNothing # SKIP not run: the kernel panicked in stress.objectsWorkloadLosesNothing$",
        r"^not ok 1 stress$",
        r"^  not ok 1 formatterMatchesHostResults # SKIP not run: the kernel panicked in stress.objectsWorkloadLosesNothing$",
        r"^not ok 2 boot # SKIP not run: the kernel panicked in stress.objectsWorkloadLosesNothing$",
        r"^0 passed, 1 failed, \d+ skipped$",
    ])
    if report.summary is not None and report.skipped is not None and report.skipped < 5:
        problems.append("only %d cases counted as skipped" % report.skipped)
    return problems


def check_expected_panic_completes_the_plan(result):
    """An expected panic passes its case; the suites after it are reported as not run."""
    report, problems = strict_ktap(result)
    problems += expect_status(result, EXIT_SUCCESS)
    problems += expect_lines(result.output, [
        r"^  ok 1 pageFaultAtKnownAddress # panicked as expected$",
        r"^ok 1 panic$",
        r"^  not ok 1 formatterMatchesHostResults # SKIP not run: the kernel panicked in panic.pageFaultAtKnownAddress$",
        r"^not ok 2 boot # SKIP not run: the kernel panicked in panic.pageFaultAtKnownAddress$",
        r"^1 passed, 0 failed, \d+ skipped$",
    ])
    return problems


def check_absent_swap_device(wanted):
    """A boot that names a swap driver whose disk is not there stops, saying so: running without
    swap instead would turn every swap test into a skip and hide the mistake."""
    def check(result):
        return expect_status(result, EXIT_BOOT_FAILURE) + expect_lines(result.output, [
            r"^E swap: swapdev=%s: no such disk on this machine; the boot stops here" % wanted,
        ]) + expect_no_lines(result.output, [r"^I boot: initialisation complete", r"^KTAP version"])
    return check


def check_swap_device_named(result):
    """The default (swapdev=auto) with a virtio disk: PCI lists it, swap says which driver took it."""
    return expect_status(result, EXIT_SUCCESS) + expect_lines(result.output, [
        r"^I pci: pci 0:\d+\.0 vendor 0x1af4 device 0x1001 class 0x010000 irq \d+ \(virtio-blk, legacy\)$",
        r"^I swap: virtio-blk 16 MiB \(4096 blocks of 4 KiB\) on virtio-blk \(legacy virtio-pci\)",
    ])


SCENARIOS = [
    (Boot("scenario.image-does-not-fit", "test=boot", memory="1M"), check_image_does_not_fit),
    (Boot("scenario.too-little-memory", "test=boot", memory="3M"), check_too_little_memory),
    # The smallest whole-MiB machine the image fits: from 1 MiB up it needs its image (about
    # 2.5 MiB with the static slabs and the linked-in tests) and 512 KiB to run on, and QEMU
    # keeps 128 KiB at the top of a small machine. At 4M that is 72 KiB short since the
    # issue-15/17 code landed; the boot stub says so (too-little-memory checks the message).
    (Boot("scenario.smallest-machine", "test=boot", memory="5M"), check_smallest_machine_boots),
    (Boot("scenario.boot-log", "seed=4242 loglevel=debug"), check_boot_log),
    (Boot("scenario.malformed-options", "test=boot bogus=1 seed=abc loglevel=loud test= seed"), check_malformed_options),
    (Boot("scenario.one-bad-value", "test=boot seed=abc"), check_one_bad_value),
    (Boot("scenario.help-with-errors", "help bogus"), check_help_with_errors),
    (Boot("scenario.control-bytes", "\x1b[2J=1 test=x\x07"), check_control_bytes_escaped),
    (Boot("scenario.unknown-suite", "test=nosuchsuite"), check_unknown_suite),
    (Boot("scenario.help", "help"), check_help),
    (Boot("scenario.reserve-document", ""), check_reserve_document),
    # test=all in one boot, at 128M, with a disk that fits every swap suite but the two that
    # need a huge disk (swapterabyte) or a small one (swapfull), and without a disk.
    # stressrounds keeps the stress suite, sized for 24M, to minutes at 128M.
    (Boot("scenario.all-with-disk", "test=all seed=1 stressrounds=300", memory="128M", disk_mib=512, timeout=1800),
     check_all_in_one_boot(disk=True)),
    (Boot("scenario.all-without-disk", "test=all seed=1", memory="128M", timeout=1200),
     check_all_in_one_boot(disk=False)),
    (Boot("scenario.unexpected-panic", "test=stress,boot reserves=off seed=1", memory="24M", disk_mib=48, icount=True,
          timeout=600), check_unexpected_panic_completes_the_plan),
    (Boot("scenario.expected-panic-then-more", "test=panic.pageFaultAtKnownAddress,boot seed=1"),
     check_expected_panic_completes_the_plan),
    # swapdev= names a driver whose disk is absent: an AHCI disk asked for on pc with a virtio
    # disk, and a virtio disk asked for with no disk at all.
    (Boot("scenario.swapdev-absent", "test=boot swapdev=ahci", disk_mib=16, disk="virtio"), check_absent_swap_device("ahci")),
    (Boot("scenario.swapdev-without-disk", "test=boot swapdev=virtio"), check_absent_swap_device("virtio")),
    (Boot("scenario.swapdev-auto", "test=boot swapdev=auto", disk_mib=16, disk="virtio"), check_swap_device_named),
]
