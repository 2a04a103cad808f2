"""Host tests of the strict KTAP parser (harness/ktap.py): each rule it enforces, shown failing.

Run by `make test-host` (python3 -m unittest discover -s qemu/harness -p 'test_*.py').
"""
import unittest

from harness import ktap

GOOD = """I boot: initialisation complete (seed 1)
KTAP version 1
1..2
# seed: 1
  KTAP version 1
  # Subtest: boot
  1..3
  ok 1 formatter
  # FAIL BootTests.swift:12: expected 1, got 2
  not ok 2 parser
  ok 3 panics # SKIP expects a panic; runs alone as test=boot.panics
I vm: map kernel_map: 3 entries
not ok 1 boot
  KTAP version 1
  # Subtest: zones
  1..1
  ok 1 reserves # rcode=0
ok 2 zones
2 passed, 1 failed, 1 skipped
"""


def errors(text):
    return ktap.parse(text).errors


def replaced(old, new, text=GOOD):
    assert old in text, old
    return text.replace(old, new, 1)


class StrictKTAPTests(unittest.TestCase):
    def test_a_well_formed_report_reads_without_errors(self):
        report = ktap.parse(GOOD)
        self.assertEqual(report.errors, [])
        self.assertEqual(report.suites, {"boot": False, "zones": True})
        self.assertEqual([(c.suite, c.name, c.ok) for c in report.cases],
                         [("boot", "formatter", True), ("boot", "parser", False), ("boot", "panics", True),
                          ("zones", "reserves", True)])
        self.assertEqual(report.cases[1].diagnostics, ["# FAIL BootTests.swift:12: expected 1, got 2"])
        self.assertTrue(report.cases[2].skipped)
        self.assertEqual(report.summary, (2, 1))
        self.assertEqual(report.skipped, 1)

    def test_four_space_indentation_is_refused(self):
        four = "\n".join(("  " + line) if line.startswith("  ") else line for line in GOOD.splitlines())
        self.assertTrue(any("indented 4 spaces" in e for e in errors(four)), errors(four))

    def test_odd_indentation_is_refused(self):
        self.assertTrue(any("indented 3 spaces" in e for e in errors(replaced("  ok 1 formatter", "   ok 1 formatter"))))

    def test_the_version_must_be_ktap_1(self):
        self.assertTrue(errors(replaced("KTAP version 1\n1..2", "TAP version 13\n1..2")))
        self.assertTrue(errors(replaced("  KTAP version 1\n  # Subtest: zones", "  KTAP version 2\n  # Subtest: zones")))

    def test_results_are_numbered_from_one(self):
        self.assertTrue(any("result number 3, expected 2" in e for e in errors(replaced("not ok 2 parser", "not ok 3 parser"))))
        self.assertTrue(any("expected 2" in e for e in errors(replaced("ok 2 zones", "ok 1 zones"))))

    def test_the_plan_must_match_the_results(self):
        self.assertTrue(any("planned 4 results but has 3" in e for e in errors(replaced("  1..3", "  1..4"))))
        self.assertTrue(any("planned 3 results but has 2" in e for e in errors(replaced("1..2\n# seed", "1..3\n# seed"))))
        truncated = GOOD[:GOOD.index("ok 2 zones")]
        self.assertTrue(any("never ended" in e for e in errors(truncated)), errors(truncated))

    def test_the_plan_follows_the_version_line(self):
        self.assertTrue(errors(replaced("  1..1\n", "")))
        self.assertTrue(errors(replaced("  # Subtest: zones\n  1..1", "  1..1\n  # Subtest: zones")))

    def test_directives_are_the_specs(self):
        self.assertTrue(any("TODO" in e for e in errors(replaced("ok 1 reserves # rcode=0", "ok 1 reserves # TODO later"))))
        self.assertTrue(any("not a KTAP directive" in e
                            for e in errors(replaced("ok 1 reserves # rcode=0", "ok 1 reserves # PANICKED"))))
        self.assertTrue(any("'not ok' only" in e
                            for e in errors(replaced("ok 1 reserves # rcode=0", "ok 1 reserves # ERROR disk"))))
        self.assertEqual(errors(replaced("ok 1 reserves # rcode=0", "not ok 1 reserves # ERROR disk").replace(
            "ok 2 zones", "not ok 2 zones").replace("2 passed, 1 failed", "1 passed, 2 failed")), [])
        self.assertTrue(any("separator" in e for e in errors(replaced("ok 1 reserves # rcode=0", "ok 1 res#erves"))))

    def test_a_parent_fails_with_its_subtest(self):
        self.assertTrue(any("although one of its subtests failed" in e for e in errors(replaced("not ok 1 boot", "ok 1 boot"))))

    def test_the_result_names_the_announced_subtest(self):
        self.assertTrue(any("said 'zones'" in e for e in errors(replaced("ok 2 zones", "ok 2 zone"))))

    def test_a_line_at_the_wrong_level_is_refused(self):
        self.assertTrue(errors(replaced("  ok 1 reserves # rcode=0", "ok 1 reserves # rcode=0")))
        self.assertTrue(errors(replaced("  ok 3 panics", "    ok 3 panics")))
        self.assertTrue(errors(replaced("  1..3\n", "  1..3\n# top-level note inside the subtest\n")))

    def test_unknown_lines_are_allowed_anywhere(self):
        self.assertEqual(errors(replaced("  ok 1 formatter", "I pmm: 3 pages\n    odd text\n  ok 1 formatter")), [])

    def test_the_summary_must_count_the_results(self):
        self.assertTrue(any("the results say 2, 1, 1" in e
                            for e in errors(replaced("2 passed, 1 failed, 1 skipped", "2 passed, 1 failed, 0 skipped"))))
        self.assertTrue(any("the results say 2, 1, 1" in e
                            for e in errors(replaced("2 passed, 1 failed, 1 skipped", "3 passed, 1 failed, 1 skipped"))))
        self.assertIsNone(ktap.parse(replaced("2 passed, 1 failed, 1 skipped", "2 passed, 1 failed")).summary)

    def test_a_report_completed_after_a_panic_reads_whole(self):
        panicked = """KTAP version 1
1..2
  KTAP version 1
  # Subtest: zones
  1..3
  ok 1 first
P panic: ---- kernel panic ----
  not ok 2 second # ERROR panic
  not ok 3 third # SKIP not run: the kernel panicked in zones.second
not ok 1 zones
  KTAP version 1
  # Subtest: boot
  1..1
  not ok 1 formatter # SKIP not run: the kernel panicked in zones.second
not ok 2 boot # SKIP not run: the kernel panicked in zones.second
1 passed, 1 failed, 2 skipped
"""
        self.assertEqual(errors(panicked), [])
        self.assertTrue(errors(panicked.replace("  not ok 3 third # SKIP not run: the kernel panicked in zones.second\n", "")))

    def test_a_second_report_is_refused(self):
        self.assertTrue(errors(GOOD + "KTAP version 1\n1..0\n"))


if __name__ == "__main__":
    unittest.main()
