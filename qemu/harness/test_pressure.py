"""Host tests of the memory-pressure trace reader (harness/pressure.py) and chart (qemu/trace.py).

Over a log recorded with `make trace SEED=1` (stress=objects at 32M, the kernel of the commit
that added it): the parser reads every sample and the header, the check passes it, and the
chart is written. Then the same log corrupted one way at a time, each caught by the check.
The chart is drawn by the interpreter `make trace` uses (TRACE_PYTHON, the Debian python3 with
python3-matplotlib), so that this test runs under any python3.
Run by `make test-host` (python3 -m unittest discover -s qemu/harness -p 'test_*.py').
"""
import os
import subprocess
import tempfile
import unittest

from harness import pressure

HERE = os.path.dirname(os.path.abspath(__file__))
RECORDED = os.path.join(HERE, "testdata", "trace-stress-32M-seed1.log")
TRACE_SCRIPT = os.path.join(os.path.dirname(HERE), "trace.py")
TRACE_PYTHON = os.environ.get("TRACE_PYTHON", "/usr/bin/python3")


def recorded():
    with open(RECORDED) as log:
        return log.read()


def replace_sample(text, index, change):
    """The log with its index-th sample line rewritten by change(list of words)."""
    lines = text.split("\n")
    samples = [number for number, line in enumerate(lines) if line.startswith("T ")]
    words = lines[samples[index]].split()
    lines[samples[index]] = " ".join(change(words))
    return "\n".join(lines)


class RecordedTrace(unittest.TestCase):
    def test_parser_reads_the_header_zones_and_every_sample(self):
        trace = pressure.parse(recorded())
        self.assertEqual(trace.errors, [])
        self.assertEqual(trace.header["hz"], 100)
        self.assertEqual(trace.header["managed"], 7368)
        self.assertEqual(trace.header["free_min"], 60)
        self.assertEqual([name for name, _ in trace.zones], ["pv_entry", "map_entry", "swblock"])
        self.assertEqual(trace.protections, "zones, pages, nowait")
        self.assertEqual(len(trace.samples), recorded().count("\nT "))
        self.assertGreater(max(s.paged_out for s in trace.samples), 0)

    def test_a_sound_recording_passes_the_check(self):
        self.assertEqual(pressure.check(pressure.parse(recorded())), [])

    def test_the_chart_is_written(self):
        with tempfile.TemporaryDirectory() as directory:
            for extension, magic in ((".png", b"\x89PNG"), (".svg", b"<?xml")):
                out = os.path.join(directory, "chart" + extension)
                run = subprocess.run([TRACE_PYTHON, TRACE_SCRIPT, "chart", RECORDED, out], capture_output=True, text=True)
                self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
                with open(out, "rb") as chart:
                    self.assertEqual(chart.read(len(magic)), magic)

    def test_a_corrupted_log_writes_no_chart_and_fails(self):
        with tempfile.TemporaryDirectory() as directory:
            log = os.path.join(directory, "bad.log")
            with open(log, "w") as bad:
                bad.write(replace_sample(recorded(), 5, lambda w: [w[0], w[1], "999999"] + w[3:]))
            out = os.path.join(directory, "chart.png")
            run = subprocess.run([TRACE_PYTHON, TRACE_SCRIPT, "chart", log, out], capture_output=True, text=True)
            self.assertEqual(run.returncode, 1, run.stdout + run.stderr)
            self.assertIn("outside 0..7368 managed", run.stdout)
            self.assertFalse(os.path.exists(out))


class CorruptedTrace(unittest.TestCase):
    """Each check, shown failing on the recorded log broken in exactly one way."""

    def problems(self, text):
        return pressure.check(pressure.parse(text))

    def test_free_pages_above_the_managed_pages(self):
        text = replace_sample(recorded(), 3, lambda w: [w[0], w[1], "7369"] + w[3:])
        self.assertEqual(len(self.problems(text)), 1)
        self.assertIn("7369 free pages, outside 0..7368 managed", self.problems(text)[0])

    def test_free_pages_below_zero(self):
        # The kernel prints unsigned numbers: a negative one is no sample at all.
        text = replace_sample(recorded(), 3, lambda w: [w[0], w[1], "-1"] + w[3:])
        self.assertIn("not a sample", self.problems(text)[0])

    def test_samples_out_of_order(self):
        text = recorded()
        lines = text.split("\n")
        samples = [number for number, line in enumerate(lines) if line.startswith("T ")]
        lines[samples[4]], lines[samples[5]] = lines[samples[5]], lines[samples[4]]
        problems = self.problems("\n".join(lines))
        self.assertTrue(any("out of order" in problem for problem in problems), problems)

    def test_a_lost_sample(self):
        lines = recorded().split("\n")
        samples = [number for number, line in enumerate(lines) if line.startswith("T ")]
        del lines[samples[10]]
        problems = self.problems("\n".join(lines))
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("2 ticks after the one before, not every 1", problems[0])

    def test_a_counter_going_backwards(self):
        trace = pressure.parse(recorded())
        last = len(trace.samples) - 1
        text = replace_sample(recorded(), last, lambda w: w[:3] + [str(trace.samples[last - 1].paged_out - 1)] + w[4:])
        self.assertTrue(any("went backwards" in problem for problem in self.problems(text)))

    def test_more_swap_in_use_than_the_disk_has(self):
        text = replace_sample(recorded(), 20, lambda w: w[:5] + ["16385"] + w[6:])
        self.assertIn("16385 swap blocks in use of 16384", self.problems(text)[0])

    def test_a_truncated_sample_line(self):
        text = replace_sample(recorded(), 7, lambda w: w[:-1])
        self.assertIn("not a sample of 9 numbers", self.problems(text)[0])

    def test_no_header(self):
        text = "\n".join(line for line in recorded().split("\n") if not line.startswith("I trace: header"))
        self.assertIn("no trace header", self.problems(text)[-1])

    def test_fields_that_do_not_match_the_zones(self):
        text = recorded().replace("fields T tick free out in swap waiting", "fields T tick free in out swap waiting")
        self.assertIn("expected T tick free out in swap waiting", self.problems(text)[0])


if __name__ == "__main__":
    unittest.main()
