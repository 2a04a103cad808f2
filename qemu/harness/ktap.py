"""Reading the kernel's KTAP report out of a serial log, strictly.

The format is KTAP version 1 as Linux's Documentation/dev-tools/ktap.rst defines it: a
version line, a plan `1..N` right after it, result lines `ok N description [# directive ...]`
numbered from 1, `# ...` diagnostic lines, and nested tests written as a whole KTAP block
indented two spaces deeper, closed by the parent's result line. Anything else is an "unknown
line" (the kernel's own log lines, `I pmm: ...`), which the spec allows anywhere.

`parse` returns what was reported - the suites (top-level results), their cases (results one
level down, with the diagnostics printed before each), the kernel's plain
`N passed, N failed, N skipped` summary - and `errors`: every place the log breaks the spec. The judge fails a boot on any of
them. What is checked:

- the first version line has no indentation and says `KTAP version 1`, and so does every
  nested one (indented two spaces per level);
- a plan follows each version line, with nothing between but unknown lines and the
  `# Subtest: name` diagnostic; results are numbered 1, 2, ... and their count matches the plan
  when the test ends (the parent's result line, or the end of the log at the top);
- every KTAP line sits at the indentation of the test it belongs to: a nested test is closed
  only by its parent's result line, at the parent's indentation;
- directives are the spec's (SKIP, XFAIL, TIMEOUT, ERROR); TODO, which KTAP does not
  recognise, and any other upper-case keyword are errors, as are TIMEOUT and ERROR on `ok`;
  a description cannot contain `#` except as the ` # ` separator;
- a parent whose subtest failed (`not ok` without SKIP) is not `ok`, and its result line names
  the test its `# Subtest:` line announced;
- the kernel's summary agrees with the results: its counts are those of the leaf results
  (results without subtests), SKIP counted as skipped whether `ok` or `not ok`, any other
  `not ok` as failed. A report completed after a panic lists every case that never ran, so
  this holds for it too.
"""
import re
from dataclasses import dataclass, field

VERSION = re.compile(r"^(?P<indent> *)(?P<text>K?TAP version \S+)$")
PLAN = re.compile(r"^(?P<indent> *)1\.\.(?P<count>\d+)$")
RESULT = re.compile(r"^(?P<indent> *)(?P<ok>ok|not ok) (?P<number>\d+)(?P<tail>( .*)?)$")
DIAGNOSTIC = re.compile(r"^(?P<indent> *)#(?P<text>.*)$")
SUMMARY = re.compile(r"^(?P<passed>\d+) passed, (?P<failed>\d+) failed, (?P<skipped>\d+) skipped$")
SUBTEST = re.compile(r"^# Subtest: (?P<name>\S+)$")

DIRECTIVES = ("SKIP", "XFAIL", "TIMEOUT", "ERROR")
NOT_OK_ONLY = ("TIMEOUT", "ERROR")


@dataclass
class CaseResult:
    suite: str
    name: str
    ok: bool
    directive: str          # the text after " # ": directive and diagnostic data
    diagnostics: list = field(default_factory=list)

    @property
    def skipped(self):
        return self.directive.split(" ")[0] == "SKIP"


@dataclass
class Report:
    seen_header: bool = False
    cases: list = field(default_factory=list)
    suites: dict = field(default_factory=dict)
    summary: tuple = None            # (passed, failed) or None when missing
    skipped: int = None              # the summary's skipped count
    leaves: list = field(default_factory=list)        # [passed, failed, skipped] over leaf results
    diagnostics: list = field(default_factory=list)   # top-level "# ..." lines
    expect_frames: list = field(default_factory=list)
    expect_panics: list = field(default_factory=list)
    errors: list = field(default_factory=list)        # where the log breaks the KTAP spec

    @property
    def failed_cases(self):
        return [case for case in self.cases if not case.ok]


@dataclass
class _Test:
    """One open (nested) test: a version line seen, its result line not yet."""
    depth: int
    line: int
    name: str = None
    plan: int = None
    expecting_plan: bool = True
    results: int = 0
    failed: bool = False


def _split_result(tail):
    """` description # directive data` -> (description, text after ' # ', problem or None)."""
    if "#" not in tail:
        return tail.strip(), "", None
    at = tail.index("#")
    description = tail[:at]
    rest = tail[at + 1:]
    if not description.endswith(" ") or (rest and not rest.startswith(" ")):
        return description.strip(), rest.strip(), "'#' in a result line must be the ' # ' separator"
    return description.strip(), rest.strip(), None


def _check_directive(ok, rest):
    word = rest.split(" ")[0] if rest else ""
    if word == "TODO":
        return "directive TODO: KTAP does not recognise it (ktap.rst)"
    if word in NOT_OK_ONLY and ok:
        return "directive %s on an 'ok' result: the spec has it on 'not ok' only" % word
    if word not in DIRECTIVES and len(word) >= 3 and word.isalpha() and word.isupper():
        return "'%s' is not a KTAP directive (SKIP, XFAIL, TIMEOUT, ERROR)" % word
    return None


def parse(output):
    report = Report()
    stack = []                  # open tests, outermost first
    leaves = [0, 0, 0]          # passed, failed, skipped
    summary_line = None
    pending = []                # diagnostics for the next case
    errors = report.errors

    def error(number, text):
        errors.append("KTAP line %d: %s" % (number, text))

    def close(test, number):
        if test.plan is None:
            error(number, "the test opened at line %d has no plan" % test.line)
        elif test.results != test.plan:
            error(number, "the test opened at line %d planned %d results but has %d" % (test.line, test.plan, test.results))

    for number, line in enumerate(output.splitlines(), start=1):
        version = VERSION.match(line)
        plan = PLAN.match(line)
        result = RESULT.match(line)
        diagnostic = DIAGNOSTIC.match(line)
        found = version or plan or result or diagnostic
        if not report.seen_header:
            if version and version.group("indent") == "":
                report.seen_header = True
                if version.group("text") != "KTAP version 1":
                    error(number, "'%s': expected 'KTAP version 1'" % version.group("text"))
                stack.append(_Test(depth=0, line=number))
            continue
        if not found:
            summary = SUMMARY.match(line)
            if summary:
                if report.summary is not None:
                    error(number, "a second summary line")
                report.summary = (int(summary.group("passed")), int(summary.group("failed")))
                report.skipped = int(summary.group("skipped"))
                summary_line = number
            continue            # an unknown line: allowed anywhere
        indent = len(found.group("indent"))
        if indent % 2:
            error(number, "indented %d spaces: KTAP indents two spaces per level" % indent)
            continue
        depth = indent // 2
        current = stack[-1] if stack else None
        if current is None:
            error(number, "a KTAP line after the report ended: %r" % line.strip())
            continue

        if version:
            if version.group("text") != "KTAP version 1":
                error(number, "'%s': expected 'KTAP version 1'" % version.group("text"))
            if depth != current.depth + 1:
                error(number, "a nested version line indented %d spaces; the open test at line %d nests at %d"
                      % (indent, current.line, 2 * (current.depth + 1)))
                continue
            if current.expecting_plan:
                error(number, "a nested test before the plan of the test at line %d" % current.line)
            stack.append(_Test(depth=depth, line=number))
            pending = []
            continue

        if plan:
            if depth != current.depth or not current.expecting_plan:
                error(number, "a plan that does not follow a version line at its indentation")
                continue
            current.plan = int(plan.group("count"))
            current.expecting_plan = False
            continue

        if diagnostic:
            text = "#" + diagnostic.group("text")
            subtest = SUBTEST.match(text)
            if subtest:
                if depth != current.depth or not current.expecting_plan or current.depth == 0:
                    error(number, "'# Subtest:' belongs between a nested version line and its plan")
                else:
                    current.name = subtest.group("name")
                continue
            if depth > current.depth:
                error(number, "a diagnostic indented deeper than any open test")
                continue
            if depth < current.depth and (current.plan is None or current.results != current.plan):
                error(number, "a diagnostic at the indentation of an outer test inside the unfinished test at line %d"
                      % current.line)
                continue
            if text.startswith("# expect-frame: "):
                report.expect_frames.append(text[len("# expect-frame: "):])
            if text.startswith("# expect-panic: "):
                report.expect_panics.append(text[len("# expect-panic: "):])
            if depth == 0:
                report.diagnostics.append(text)
            else:
                pending.append(text)
            continue

        # A result line: of the open test, or of its parent, which it then closes.
        ok = result.group("ok") == "ok"
        description, rest, problem = _split_result(result.group("tail"))
        if problem:
            error(number, problem)
        problem = _check_directive(ok, rest)
        if problem:
            error(number, problem)
        child = None
        if depth == current.depth - 1:
            child = stack.pop()
            close(child, number)
            current = stack[-1]
        elif depth != current.depth:
            error(number, "a result line indented %d spaces; the open test at line %d has its results at %d"
                  % (indent, current.line, 2 * current.depth))
            continue
        if current.expecting_plan:
            error(number, "a result before the plan of the test at line %d" % current.line)
            current.expecting_plan = False
        current.results += 1
        if int(result.group("number")) != current.results:
            error(number, "result number %s, expected %d" % (result.group("number"), current.results))
        skipped = rest.split(" ")[0] == "SKIP"
        if not ok and not skipped:
            current.failed = True
        if child is None:
            leaves[2 if skipped else 0 if ok else 1] += 1
        if child is not None:
            if child.failed and ok:
                error(number, "'%s' is ok although one of its subtests failed" % description)
            if child.name is not None and child.name != description:
                error(number, "the result names '%s' but its '# Subtest:' line said '%s'" % (description, child.name))
        if depth == 0:
            report.suites[description] = ok
        else:
            suite = stack[1].name if len(stack) > 1 else None
            report.cases.append(CaseResult(suite or "?", description, ok, rest, pending))
        pending = []

    if report.seen_header:
        while len(stack) > 1:
            test = stack.pop()
            error(number, "the test opened at line %d never ended (no result line at its parent's indentation)" % test.line)
        if stack:
            close(stack[0], number)
    report.leaves = leaves
    if report.summary is not None and report.summary + (report.skipped,) != tuple(leaves):
        error(summary_line, "the summary says %d passed, %d failed, %d skipped; the results say %d, %d, %d"
              % (report.summary + (report.skipped,) + tuple(leaves)))
    return report
