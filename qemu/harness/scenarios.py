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


# The monitor (kernel/Monitor/, docs/monitor.md), driven over the serial line the way a person
# at the console would use it (harness/serialconsole.py), with gdb's view of the same tables.

MONITOR_USAGES = ["help", "zones", "buddy", "map [kmem|pageable|pager]", "page ADDR", "threads", "reserves",
                  "stress SECONDS", "trace on|off", "exit"]

# Looked at with gdb while the monitor waits at its prompt, right after printing the same
# tables: nothing has run in between that could change them (the monitor's parser allocates
# nothing; the kernel is otherwise idle).
MONITOR_GDB = ["echo ==kzones==\\n", "kzones", "echo ==kbuddy==\\n", "kbuddy", "echo ==kmap==\\n", "kmap",
               "echo ==kmapkmem==\\n", "kmap kmem", "echo ==kthreads==\\n", "kthreads"]


def monitor_session(session):
    """Types the commands of the monitor scenario and keeps what came back; check_monitor judges."""
    from .serialconsole import sections
    notes = {}
    session.wait_for(r"^monitor> ", timeout=90)
    notes["help"] = session.command("help")
    notes["buddy"] = session.command("buddy")
    # Typed with a mistake and a Backspace (DEL, as terminals send it).
    notes["zones"] = session.command("zones", keys="zonx\x7fes\r")
    notes["map"] = session.command("map")
    notes["map kmem"] = session.command("map kmem")
    notes["threads"] = session.command("threads")
    # A wired kmem page (the top page of the last wired entry: a thread stack's top is
    # mapped), for `page`: gdb translates it, and shows the page as kpage does.
    wired = [line.split() for line in notes["map kmem"][1] if " wired " in line]
    virtual = int(wired[-1][2], 16) - 0x1000 if wired else 0
    gdb = session.gdb(MONITOR_GDB + ["echo ==kpage==\\n", "kpage -v %#x" % virtual])
    notes["gdb"] = sections(gdb)
    translated = re.search(r"-> physical (0x[0-9a-f]+) \(4 KiB page\)", gdb)
    physical = int(translated.group(1), 16) & ~0xFFF if translated else 0x1000
    notes["physical"] = physical
    notes["page"] = session.command("page %#x" % physical)
    notes["page unaligned"] = session.command("page 0x1001")
    notes["page unmanaged"] = session.command("page 0xfffffffff000")
    notes["unknown"] = session.command("frobnicate 3")
    notes["escape"] = session.command("escape", keys="\x1b[2J\r")
    notes["stress abc"] = session.command("stress abc")
    notes["stress 0"] = session.command("stress 0")
    # ^U kills what was typed so far.
    notes["reserves"] = session.command("reserves", keys="garbage\x15reserves\r")
    notes["too long"] = session.command("a long line", keys="a" * 200 + "\r")
    # Type-ahead: three lines in one write, each answered in turn.
    before = session.prompts()
    session.type("help\rbuddy\rthreads\r")
    session.wait_until(lambda output: session.prompts(output) >= before + 3, "three prompts after typing ahead")
    notes["typed ahead"] = session.output().split(session.prompt)[before:before + 3]
    notes["trace on"] = session.command("trace on")
    start = len(session.output())
    session.wait_for(r"^T \d+ \d+ ", start=start, timeout=30)
    notes["trace off"] = session.command("trace off")
    notes["stress 1"] = session.command("stress 1")
    # The prompt is usable while the workload runs: its threads are there.
    notes["threads during stress"] = session.command("threads")
    # A burst far bigger than the input ring while the workload competes for the CPU: the
    # UART and QEMU hold what the ring cannot (flow control), nothing is lost, and the
    # whole line is refused as too long - not cut into a command.
    notes["burst"] = session.command("a 3000-byte line", keys="b" * 3000 + "\r", timeout=120)
    session.wait_for(r"^stress finished after ", timeout=120)
    # exit during a run stops it (its workers free and check what they hold) before exiting.
    notes["stress 5"] = session.command("stress 5")
    session.type("exit\r")
    session.wait_for(r"^I monitor: exit: status ", timeout=120)
    notes["typed bytes"] = session.typed
    return notes


def check_monitor(result):
    notes = result.notes
    problems = list(notes.get("problems", []))
    problems += expect_status(result, EXIT_SUCCESS)
    output = result.output
    gdb = notes.get("gdb", {})

    def answer(name):
        return notes.get(name, ("", []))[1]

    for usage in MONITOR_USAGES:
        if not any(re.match(r"^  %s +\S" % re.escape(usage), line) for line in answer("help")):
            problems.append("help does not list '%s'" % usage)
    echo = notes.get("zones", ("", []))[0]
    if echo != "zonx\b \bes":
        problems.append("the backspace-edited 'zones' was echoed as %r, not 'zonx' erased back to 'zon' and 'es'" % echo)
    # The monitor's tables against gdb's helpers, read from the same memory a moment later.
    for command, section in (("zones", "kzones"), ("buddy", "kbuddy"), ("map", "kmap"), ("map kmem", "kmapkmem")):
        mine, theirs = answer(command), gdb.get(section)
        if not mine:
            problems.append("'%s' printed nothing" % command)
        elif mine != theirs:
            problems.append("'%s' and gdb's %s differ:" % (command, section))
            problems += ["    monitor: %s" % line for line in mine if line not in (theirs or [])][:5]
            problems += ["    gdb:     %s" % line for line in (theirs or []) if line not in mine][:5]
    names = [re.sub(r": .*", "", line[2:]) for line in answer("threads")]
    gdb_names = [re.sub(r": .*", "", line[2:]) for line in gdb.get("kthreads", [])]
    if not names or names != gdb_names:
        problems.append("'threads' lists %s, gdb's kthreads %s" % (names, gdb_names))
    if "* thread 1 main: running" not in answer("threads"):
        problems.append("'threads' does not show itself (main) as the running thread: %s" % answer("threads"))
    # Waiting at the prompt, the monitor sleeps until a key arrives: it does not poll.
    if not any(re.match(r"^  thread 1 main: sleeping in serial input on channel 0x[0-9a-f]+ for \d+ ticks$", line)
               for line in gdb.get("kthreads", [])):
        problems.append("under gdb, main is not asleep in 'serial input': %s" % gdb.get("kthreads"))
    kpage = gdb.get("kpage", [])
    if kpage[1:] != answer("page") or len(kpage) < 5:
        problems.append("'page %#x' and gdb's kpage differ: %s vs %s" % (notes.get("physical", 0), answer("page"), kpage))
    errors = {
        "page unaligned": r"^error: page: '0x1001' is not page-aligned \(a multiple of 4096 bytes\); usage: page ADDR$",
        "page unmanaged": r"^error: page: 0xfffffffff000 is not a page of managed memory, which is:$",
        "unknown": r"^error: unknown command 'frobnicate'; 'help' lists the commands$",
        "escape": r"^error: unknown command '\\x1b\[2J'; 'help' lists the commands$",
        "stress abc": r"^error: stress: 'abc' is not a number \(decimal, or hexadecimal with 0x\); usage: stress SECONDS$",
        "stress 0": r"^error: stress: '0' is out of range: from 1 to 600; usage: stress SECONDS$",
    }
    for name, pattern in errors.items():
        if not answer(name) or not re.match(pattern, answer(name)[0]):
            problems.append("'%s' answered %s, expected /%s/" % (name, answer(name)[:2], pattern))
    if notes.get("escape", ("", []))[0] != "\\x1b[2J":
        problems.append("ESC [2J was echoed as %r, not escaped" % notes.get("escape", ("",))[0])
    if "\x1b" in output:
        problems.append("the log has a raw ESC")
    # reserves, after ^U: its reserve column is the zones table's.
    echo = notes.get("reserves", ("", []))[0]
    if echo != "garbage" + "\b \b" * 7 + "reserves":
        problems.append("^U did not erase 'garbage': echo %r" % echo)
    zones = {line.split()[0]: line.split() for line in answer("zones")[1:]}
    rows = [line.split() for line in answer("reserves") if re.match(r"^(pv_entry|map_entry|swblock) ", line)]
    if len(rows) != 3:
        problems.append("'reserves' does not show the three reserve zones: %s" % answer("reserves"))
    for row in rows:
        if row[0] in zones and zones[row[0]][7] != row[1]:
            problems.append("'reserves' gives %s a reserve of %s, 'zones' %s" % (row[0], row[1], zones[row[0]][7]))
    if not any(line.startswith("protections: zones, pages, nowait") for line in answer("reserves")):
        problems.append("'reserves' does not name the protections")
    if not any(re.match(r"^writes in flight: \d+ of 4 slots \(\d+ pages", line) for line in answer("reserves")):
        problems.append("'reserves' does not show the page-out writes in flight (4 slots on virtio-blk)")
    if answer("too long") != ["error: a line holds at most 128 bytes; nothing was run"] \
            or notes.get("too long", ("",))[0] != "a" * 128:
        problems.append("a 200-byte line was not echoed to 128 bytes and refused: %s" % (notes.get("too long"),))
    typed = notes.get("typed ahead", [])
    wanted = [("help", "commands:"), ("buddy", "order  0:"), ("threads", "  thread ")]
    if len(typed) != 3 or any(not part.startswith(command + "\n" + first) for part, (command, first) in zip(typed, wanted)):
        problems.append("three lines typed ahead were not answered in turn: %r" % [part[:40] for part in typed])
    # The workload's own lines may land among the answer: only the monitor's error counts.
    if [line for line in answer("burst") if line.startswith("error: ")] != ["error: a line holds at most 128 bytes; nothing was run"]:
        problems.append("a 3000-byte burst during the stress run was answered %s" % answer("burst")[:3])
    read = re.search(r"^I monitor: serial input: (\d+) bytes read; the ring was full (\d+) times", output, re.MULTILINE)
    if not read or int(read.group(1)) != notes.get("typed bytes"):
        problems.append("the harness typed %s bytes, the monitor read: %s"
                        % (notes.get("typed bytes"), read.group(0) if read else "no count"))
    # trace on, samples, trace off, and no sample after it.
    problems += expect_lines(output, [r"^I trace: header interval_ticks=1 hz=100 managed=\d+", r"^T \d+ \d+ ",
                                      r"^I trace: stopped at tick \d+$"])
    stopped = output.rfind("I trace: stopped at tick")
    if stopped >= 0 and re.search(r"^T \d+ ", output[stopped:], re.MULTILINE):
        problems.append("trace samples after 'trace off'")
    # stress 1: in the background, the prompt back at once, threads visible, nothing lost.
    if not answer("stress 1") or not answer("stress 1")[0].startswith("stress: the objects workload runs for 1 s in the background"):
        problems.append("'stress 1' answered %s" % answer("stress 1"))
    if not any(" stress-runner: " in line for line in answer("threads during stress")):
        problems.append("'threads' during the stress run does not show its runner: %s" % answer("threads during stress"))
    finished = re.findall(r"^stress finished after (\d+) ms: .* (\d+) lost, 0 workers stopped, (\d+) pages written to swap so far: nothing lost$",
                          output, re.MULTILINE)
    if len(finished) != 2 or finished[0][1] != "0" or int(finished[0][2]) == 0:
        problems.append("the two stress runs did not end with nothing lost, the first after paging to swap: %s"
                        % [line for line in output.splitlines() if line.startswith("stress finished")])
    elif int(finished[1][0]) >= 5000:
        problems.append("'exit' did not stop the 5 s stress run early: it ran %s ms" % finished[1][0])
    problems += expect_lines(output, [r"^exit: stopping the stress run first$"])
    problems += expect_lines(output, [r"^I monitor: exit: status success$"])
    problems += expect_no_lines(output, [r"^P panic: ", r"^P watchdog"])
    return problems


def exit_only_session(session):
    session.wait_for(r"^monitor> ", timeout=90)
    session.type("exit\r")
    session.wait_for(r"^I monitor: exit: status ", timeout=60)
    return {}


def check_monitor_after_a_failed_run(result):
    """After a test run the prompt comes after the KTAP summary, and `exit` keeps the run's
    outcome: a failed run still fails."""
    return list(result.notes.get("problems", [])) + expect_status(result, EXIT_TEST_FAILURE) + expect_lines(result.output, [
        r"^0 passed, 1 failed, 0 skipped\n(.*\n)*monitor> exit$",
        r"^I monitor: the kernel's monitor: .* \(status test failure so far\)$",
        r"^I monitor: exit: status test failure$",
    ])


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
    # The monitor over the serial line: every command, edited lines, errors, gdb's view of
    # the same tables, a stress run in the background, exit (docs/monitor.md). 24M with a
    # disk like the stress suite's, and -icount like it: one second of guest time is then the
    # same billion instructions on a busy host as on an idle one, and goes through swap
    # (about 10,000 pages at seed 1); without it, a loaded host got through 55 objects and
    # never paged.
    (Boot("scenario.monitor", "monitor seed=1", memory="24M", disk_mib=48, icount=True, timeout=240,
          console=monitor_session),
     check_monitor),
    (Boot("scenario.monitor-after-a-failed-run", "test=nosuchsuite monitor", console=exit_only_session),
     check_monitor_after_a_failed_run),
    # swapdev= names a driver whose disk is absent: an AHCI disk asked for on pc with a virtio
    # disk, and a virtio disk asked for with no disk at all.
    (Boot("scenario.swapdev-absent", "test=boot swapdev=ahci", disk_mib=16, disk="virtio"), check_absent_swap_device("ahci")),
    (Boot("scenario.swapdev-without-disk", "test=boot swapdev=virtio"), check_absent_swap_device("virtio")),
    (Boot("scenario.swapdev-auto", "test=boot swapdev=auto", disk_mib=16, disk="virtio"), check_swap_device_named),
]
