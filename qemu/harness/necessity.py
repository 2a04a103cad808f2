"""The necessity matrix: which protection removed deadlocks which workload.

The `necessity` suites (kernel/Test/NecessityTests.swift) run the same workloads with
`reserves=` keeping every protection (suite `necessity`) or all but some (`necessity-nowait`,
`necessity-zones`, `necessity-pages`, `necessity-zones+pages`). A case whose protection is
missing expects the watchdog's deadlock report: it is declared as an expected panic and booted
alone, and judged like the `deadlock` suite (a pass where the report is expected fails, and a
deadlock where none is expected fails). This module only collects those verdicts into one
table per memory size - workload by protection removed - with the watchdog's report line for
each deadlock, so that the matrix of docs/reserves.md ("Necessity") can be read off a run.
"""
import re

FAMILY = "necessity"
PROTECTIONS = ("zones", "pages", "nowait")
COLUMNS = ("none", "nowait", "zones", "pages", "zones+pages")
REPORT = re.compile(r"^P watchdog: chain: (?P<text>.*)$", re.MULTILINE)
CASE = re.compile(r"^ +(?P<ok>ok|not ok) \d+ (?P<name>\S+)(?P<panic> # panic)?", re.MULTILINE)


def is_necessity(name):
    return name == FAMILY or name.startswith(FAMILY + "-")


def removed(arguments):
    """The protections a boot's command line leaves out (its last `reserves=` counts, as in
    the kernel), written as the matrix's column."""
    values = re.findall(r"reserves=(\S+)", arguments)
    value = values[-1] if values else "on"
    kept = set(PROTECTIONS) if value == "on" else set() if value == "off" else set(value.split(","))
    gone = [name for name in PROTECTIONS if name not in kept]
    return "+".join(gone) if gone else "none"


def cells(planned, result, problems):
    """(size, workload, column, outcome, verdict, report) for each case one boot ran."""
    column = removed(planned.boot.arguments)
    # A boot on another disk than the default gets a table of its own: some cells depend on
    # whether the disk completes by interrupt (NecessityTests.swift).
    size = "%s on %s" % (planned.boot.memory, planned.boot.disk_interface)
    report = REPORT.search(result.output) if result is not None else None
    line = report.group("text") if report else ""
    verdict = "as expected" if not problems else "WRONG"
    if planned.kind == "panic":
        outcome = "deadlock" if report else "no deadlock"
        if planned.case in planned.suite.interrupt_disk_panic_cases:
            # A race decides this cell on this disk; either outcome is accepted.
            outcome = ("deadlock" if report else "passes") + " (race)"
        return [(size, planned.case, column, outcome, verdict, line)]
    # A suite boot runs its cases in turn: each passed or failed, the one the watchdog stopped
    # says "not ok N name # panic", and those after it never ran.
    seen = {}
    for match in CASE.finditer(result.output if result else ""):
        if match.group("ok") == "ok":
            seen[match.group("name")] = "passes"
        else:
            seen[match.group("name")] = "deadlock" if report and match.group("panic") else "fails"
    found = []
    for case in planned.suite.cases:
        if case in planned.suite.panic_cases_on(planned.boot.disk):
            continue
        outcome = seen.get(case, "not run")
        found.append((size, case, column, outcome, verdict if outcome != "passes" else "as expected",
                      line if outcome == "deadlock" else ""))
    return found


def print_matrix(entries, write=print):
    """Prints one table per memory size: a row per workload, a column per protection removed."""
    table = {}
    reports = []
    for size, case, column, outcome, verdict, line in entries:
        mark = "" if verdict == "as expected" else " (WRONG)"
        table.setdefault(size, {}).setdefault(case, {})[column] = outcome + mark
        if line:
            reports.append("%s, %s removed, %s: %s" % (size, column, case, line))
    if not table:
        return
    write("necessity matrix: protection removed -> outcome (each cell judged against the suite's expectation)")
    width = max(len(case) for rows in table.values() for case in rows)
    for size in sorted(table, key=lambda s: int(re.match(r"\d+", s).group(0)) * (1024 if s.endswith("G") else 1)):
        write("  %-*s  %s" % (width, "at " + size, "  ".join("%-18s" % column for column in COLUMNS)))
        for case in sorted(table[size]):
            row = table[size][case]
            write("  %-*s  %s" % (width, case, "  ".join("%-18s" % row.get(column, "-") for column in COLUMNS)))
    for line in reports:
        write("  watchdog: " + line)
