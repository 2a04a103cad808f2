"""Deciding whether a boot passed, and explaining why not.

Each judge returns a list of problems (strings); an empty list is a pass.
"""
import re

from . import ktap, kunitcheck, memcheck, waitgraph, zonecheck
from .qemu import EXIT_SUCCESS, status_name
from .symbolize import symbolize_panic


def panic_lines(output):
    return [line for line in output.splitlines() if line.startswith("P panic: ")]


PANIC_CPU_LINE = re.compile(r"^P panic: on cpu (?P<cpu>\d+) \(APIC id \d+\) of (?P<online>\d+) online; (?P<stopped>\d+) other CPU\(s\) stopped$")


STOPPED_CPU_LINE = re.compile(r"^P panic: cpu (?P<cpu>\d+) \(APIC id \d+\) was stopped at rip 0x[0-9a-f]+ ")
OTHER_CPU_FRAME = re.compile(r"^P panic:   cpu \d+ #\d+ ")
STOPPED_CPU_APIC_LINE = re.compile(r"^P panic: cpu (?P<cpu>\d+) local APIC: highest vector in service -?\d+, highest requested -?\d+ ")


def panic_cpu_problems(output):
    """A panic report says which CPU panicked and how many of the others it stopped: all of
    them, or a CPU kept running while the report was printed (kernel/Kern/Panic.swift). Each
    CPU it stopped has its registers and backtrace in the report: one 'was stopped at' line
    per stopped CPU, none for the panicking one, and its local APIC's state (what it had in
    service and waiting: a CPU that takes no heartbeat although it runs shows why there)."""
    problems = []
    lines = panic_lines(output)
    if lines and not any(PANIC_CPU_LINE.match(line) for line in lines) and any("---- kernel panic ----" in line for line in lines):
        problems.append("the panic report does not say which CPU panicked ('P panic: on cpu N ...')")
    for line in lines:
        match = PANIC_CPU_LINE.match(line)
        if match and int(match.group("stopped")) != int(match.group("online")) - 1:
            problems.append("the panic on cpu %s stopped %s of the %d other online CPUs"
                            % (match.group("cpu"), match.group("stopped"), int(match.group("online")) - 1))
        if match:
            shown = sorted(int(other.group("cpu")) for other in map(STOPPED_CPU_LINE.match, lines) if other)
            if len(shown) != int(match.group("stopped")) or int(match.group("cpu")) in shown:
                problems.append("the panic on cpu %s stopped %s other CPUs but shows the registers of cpus %s"
                                % (match.group("cpu"), match.group("stopped"), shown))
            apics = sorted(int(other.group("cpu")) for other in map(STOPPED_CPU_APIC_LINE.match, lines) if other)
            if not problems and apics != shown:
                problems.append("the panic on cpu %s shows the local APIC state of cpus %s, not of every stopped CPU %s"
                                % (match.group("cpu"), apics, shown))
    return problems


def panicking_cpu_lines(lines):
    """The symbolised report without the other CPUs' registers and backtraces (and the names
    the symboliser put under them): an expected frame must be the panicking CPU's."""
    kept = []
    skipping = False
    for line in lines:
        if line.startswith("P panic:       -> "):
            if not skipping:
                kept.append(line)
            continue
        skipping = bool(OTHER_CPU_FRAME.match(line) or STOPPED_CPU_LINE.match(line))
        if not skipping:
            kept.append(line)
    return kept


def failed_case_problems(report):
    """A problem line per failed case, with its diagnostics indented below it."""
    problems = []
    for case in report.failed_cases:
        problems.append("not ok %s.%s%s" % (case.suite, case.name, (" # " + case.directive) if case.directive else ""))
        problems.extend("    " + line for line in case.diagnostics)
    return problems


def judge_suite(result, suite, elf):
    problems = []
    report = ktap.parse(result.output)
    if result.status != EXIT_SUCCESS:
        problems.append("kernel outcome: %s" % status_name(result.status))
    if not report.seen_header:
        problems.append("no KTAP report in the log")
    problems.extend(report.errors)
    problems.extend(kunitcheck.check(result.output, report))
    if report.summary is None:
        problems.append("no 'N passed, N failed, N skipped' summary line: the run did not finish")
    problems.extend(failed_case_problems(report))
    reported = {case.name for case in report.cases if case.suite == suite.name}
    missing = [name for name in suite.cases if name not in reported]
    if missing and report.summary is not None:
        problems.append("cases never reported: " + ", ".join(missing))
    if report.summary is not None:
        problems.extend(memcheck.check(result.output, result.boot.memory))
        problems.extend(zonecheck.check(result.output, elf, result.log_path))
    problems.extend(waitgraph.check(result.output))
    if panic_lines(result.output):
        problems.extend(panic_cpu_problems(result.output))
        problems.extend(symbolize_panic(elf, result.output))
    return problems


def judge_expected_panic(result, suite, case, elf):
    """The kernel says whether the panic message matched; the frames are checked here. A case
    that only may panic on this boot (a race decides: plan.SuiteInfo.interrupt_disk_panic_cases)
    may instead pass, and is then judged like a suite boot of that one case."""
    problems = []
    report = ktap.parse(result.output)
    if case in suite.interrupt_disk_panic_cases and not panic_lines(result.output):
        if result.status != EXIT_SUCCESS or report.summary != (1, 0):
            problems.append("kernel outcome: %s, summary %s" % (status_name(result.status), report.summary))
        problems.extend(report.errors)
        problems.extend(kunitcheck.check(result.output, report))
        problems.extend(failed_case_problems(report))
        problems.extend(waitgraph.check(result.output))
        return problems
    symbolized = symbolize_panic(elf, result.output)
    if not panic_lines(result.output):
        problems.append("no panic report in the log")
    problems.extend(panic_cpu_problems(result.output))
    problems.extend(report.errors)
    problems.extend(kunitcheck.check(result.output, report))
    if result.status != EXIT_SUCCESS or report.summary != (1, 0):
        problems.append("kernel outcome: %s, summary %s" % (status_name(result.status), report.summary))
        for failed in report.failed_cases:
            problems.extend("    " + line for line in failed.diagnostics)
    text = "\n".join(panicking_cpu_lines(symbolized))
    for frame in report.expect_frames:
        if frame not in text:
            problems.append("the symbolised panic report does not mention '%s'" % frame)
    # A watchdog panic's wait-for graph must be the one its threads' edges make.
    problems.extend(waitgraph.check(result.output))
    if problems:
        problems.extend(symbolized)
    return problems
