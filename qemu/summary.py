#!/usr/bin/env python3
"""summary.py - the last line of `make test`: every check counted together.

usage: qemu/summary.py STAGE.log ...

Each log is one stage of `make test` (host unit tests, the reserve model, the kernel boots) as
the Makefile captured it, ending with the line `make test: exit status N`. This prints one
line per stage and then the plain line `N passed, N failed` that tools reading test output
look for, counting host tests (Swift Testing, XCTest, the harness's Python tests), model rows
and kernel boots together. A stage that failed without saying how many of its checks failed
(a build error, a crash) counts as one failure, so a broken stage can never pass silently.
Exits 1 when anything failed.
"""
import re
import sys

STATUS = re.compile(r"^make test: exit status (\d+)$", re.MULTILINE)
SWIFT_TESTING_RUN = re.compile(r"Test run with (\d+) tests?\b")
SWIFT_TESTING_FAILED = re.compile(r"^\S+ Test (?!run |case )\S+ failed after", re.MULTILINE)
XCTEST = re.compile(r"Executed (\d+) tests?, with (\d+) failures?")
UNITTEST_RAN = re.compile(r"^Ran (\d+) tests? in", re.MULTILINE)
UNITTEST_FAILED = re.compile(r"^FAILED \((.*)\)$", re.MULTILINE)
MODEL = re.compile(r"^model: (\d+) passed, (\d+) failed$", re.MULTILINE)
KERNEL = re.compile(r"^kernel tests: (\d+) of (\d+) boots passed, (\d+) failed", re.MULTILINE)


def counts(text):
    """(passed, failed) for what this log reports, or None when it reports no count."""
    found = []
    runs = SWIFT_TESTING_RUN.findall(text)
    if runs:
        total = int(runs[-1])
        failed = len(SWIFT_TESTING_FAILED.findall(text))
        found.append((total - failed, failed))
    xctests = XCTEST.findall(text)
    if xctests:
        total, failed = map(int, xctests[-1])     # the last is 'All tests'
        found.append((total - failed, failed))
    ran = UNITTEST_RAN.findall(text)
    if ran:
        total = int(ran[-1])
        failed = sum(int(n) for n in re.findall(r"=(\d+)", " ".join(UNITTEST_FAILED.findall(text))))
        found.append((total - failed, failed))
    for passed, failed in MODEL.findall(text):
        found.append((int(passed), int(failed)))
    for passed, _total, failed in KERNEL.findall(text):
        found.append((int(passed), int(failed)))
    if not found:
        return None
    return sum(p for p, _ in found), sum(f for _, f in found)


def main(paths):
    passed = failed = 0
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as log:
            text = log.read()
        statuses = STATUS.findall(text)
        status = int(statuses[-1]) if statuses else None
        found = counts(text)
        stage = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        if found is None or (status != 0 and found[1] == 0):
            # No count, or a failure the counts do not show: the stage itself failed.
            found = (found[0] if found else 0, (found[1] if found else 0) + 1)
            print("%s: %d passed, %d failed (the stage ended with status %s)" % (stage, found[0], found[1], status))
        else:
            print("%s: %d passed, %d failed" % (stage, found[0], found[1]))
        passed += found[0]
        failed += found[1]
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
