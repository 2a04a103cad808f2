"""Reading the kernel's KTAP report (version 1) out of a serial log.

The log mixes kernel log lines ("I boot: ...") with KTAP lines; only KTAP lines are read.
Top-level test lines are suites; their cases are the lines indented by four spaces before
them. Diagnostics ("# ...") inside a suite are attached to the next case line.
"""
import re
from dataclasses import dataclass, field

RESULT = re.compile(r"^(?P<indent> *)(?P<ok>ok|not ok) (?P<number>\d+) (?P<name>[^#]*?)\s*(?:#\s*(?P<directive>.*))?$")
SUMMARY = re.compile(r"^(?P<passed>\d+) passed, (?P<failed>\d+) failed$")


@dataclass
class CaseResult:
    suite: str
    name: str
    ok: bool
    directive: str
    diagnostics: list = field(default_factory=list)


@dataclass
class Report:
    seen_header: bool = False
    cases: list = field(default_factory=list)
    suites: dict = field(default_factory=dict)
    summary: tuple = None            # (passed, failed) or None when missing
    diagnostics: list = field(default_factory=list)   # top-level "# ..." lines
    expect_frames: list = field(default_factory=list)
    expect_panics: list = field(default_factory=list)

    @property
    def failed_cases(self):
        return [case for case in self.cases if not case.ok]


def parse(output):
    report = Report()
    pending = []
    current_suite = None
    for line in output.splitlines():
        if line.strip() == "KTAP version 1" and not line.startswith(" "):
            report.seen_header = True
            continue
        if not report.seen_header:
            continue
        stripped = line.strip()
        subtest = re.match(r"^ +# Subtest: (\S+)", line)
        if subtest:
            current_suite = subtest.group(1)
            pending = []
            continue
        if stripped.startswith("# expect-frame: "):
            report.expect_frames.append(stripped[len("# expect-frame: "):])
        if stripped.startswith("# expect-panic: "):
            report.expect_panics.append(stripped[len("# expect-panic: "):])
        match = RESULT.match(line)
        if match:
            indent = len(match.group("indent"))
            ok = match.group("ok") == "ok"
            name = match.group("name").strip()
            directive = match.group("directive") or ""
            if indent >= 4:
                report.cases.append(CaseResult(current_suite or "?", name, ok, directive, pending))
                pending = []
            else:
                report.suites[name] = ok
                current_suite = None
            continue
        summary = SUMMARY.match(stripped)
        if summary and not line.startswith(" "):
            report.summary = (int(summary.group("passed")), int(summary.group("failed")))
            continue
        if stripped.startswith("#"):
            if line.startswith("    "):
                pending.append(stripped)
            else:
                report.diagnostics.append(stripped)
    return report
