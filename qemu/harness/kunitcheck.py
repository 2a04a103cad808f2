"""A second reader of every KTAP report: Linux's own KUnit parser, when a copy is at hand.

Linux reads KTAP with tools/testing/kunit/kunit_parser.py (which imports kunit_printer.py
from the same folder). It is GPL-2.0 and not part of this repository: set KUNIT_PARSER_DIR to
a folder holding both files (for example a Linux checkout's tools/testing/kunit) and every
boot the runner judges is also read by it. The boot then fails unless Linux's parser agrees
with ours (harness/ktap.py): no parse errors ("missing expected subtest!", a wrong test
number, ...), and the same counts of passed, failed and skipped cases - KUnit counts a case
that panicked (`not ok ... # ERROR`) as failed, and crashed only where lines are missing.
Without the variable nothing is checked and nothing is said.

    KUNIT_PARSER_DIR=/path/to/linux/tools/testing/kunit python3 qemu/harness/kunitcheck.py LOG...

prints Linux's verdict for each log and exits non-zero if any disagrees.
"""
import importlib
import io
import os
import sys

ENVIRONMENT = "KUNIT_PARSER_DIR"


def _parser():
    folder = os.environ.get(ENVIRONMENT)
    if not folder:
        return None
    if folder not in sys.path:
        sys.path.insert(0, folder)
    parser = importlib.import_module("kunit_parser")
    importlib.import_module("kunit_printer").stdout._output = io.StringIO()   # keep the runner's output clean
    return parser


def verdict(output):
    """Linux's reading of `output`: (status name, passed, failed, crashed, skipped, errors),
    or None when no copy of the parser is configured."""
    parser = _parser()
    if parser is None:
        return None
    test = parser.parse_run_tests(output.splitlines())
    counts = test.counts
    return test.status.name, counts.passed, counts.failed, counts.crashed, counts.skipped, counts.errors


def check(output, report):
    """Problems where Linux's parser reads `output` differently from `report` (ktap.parse)."""
    found = verdict(output)
    if found is None or not report.seen_header:
        return []
    status, passed, failed, crashed, skipped, errors = found
    problems = []
    if errors:
        problems.append("Linux's kunit_parser found %d error(s) in the KTAP report" % errors)
    if crashed:
        problems.append("Linux's kunit_parser counts %d crashed (missing) case(s)" % crashed)
    theirs = (passed, failed, skipped)
    if theirs != tuple(report.leaves):
        problems.append("Linux's kunit_parser counts %d passed, %d failed, %d skipped; ours %d, %d, %d"
                        % (theirs + tuple(report.leaves)))
    return problems


def main(paths):
    from harness import ktap
    if os.environ.get(ENVIRONMENT) is None:
        print("set %s to a folder holding kunit_parser.py and kunit_printer.py" % ENVIRONMENT)
        return 2
    disagreements = 0
    for path in paths:
        with open(path, errors="replace") as log:
            output = log.read()
        report = ktap.parse(output)
        status, passed, failed, crashed, skipped, errors = verdict(output)
        problems = check(output, report)
        disagreements += bool(problems)
        print("%s: kunit_parser %s, passed %d, failed %d, crashed %d, skipped %d, errors %d; ours %s%s"
              % (path, status, passed, failed, crashed, skipped, errors, report.leaves,
                 "" if not problems else " - DISAGREE: " + "; ".join(problems)))
    return 1 if disagreements else 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    sys.exit(main(sys.argv[1:]))
