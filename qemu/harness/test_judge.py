"""Tests of the judge's panic-report checks (harness/judge.py) on reports written out here."""
import unittest

from harness import judge

REPORT = """P panic: ---- kernel panic ----
P panic: deliberate panic on cpu 1 (smp test)
P panic: on cpu 1 (APIC id 1) of 3 online; 2 other CPU(s) stopped
P panic: backtrace:
P panic:   #0 0x0000000000251acb
P panic:       -> panicOnThisCPU
P panic: cpu 0 (APIC id 0) was stopped at rip 0x00000000001e5199  rsp 0x10f860  rbp 0x10fb90  rflags 0x206
P panic: cpu 0 local APIC: highest vector in service -1, highest requested 245 (the stop NMI is neither), task priority 0x0; heartbeats taken 0, ticks 0, device interrupts 3
P panic: cpu 0 backtrace:
P panic:   cpu 0 #0 0x00000000001e5199
P panic:       -> Scheduler.idle
P panic: cpu 2 (APIC id 2) was stopped at rip 0x000000000011b752  rsp 0x1efc0  rbp 0x1efe0  rflags 0x246
P panic: cpu 2 local APIC: highest vector in service 43, highest requested -1 (the stop NMI is neither), task priority 0x0; heartbeats taken 10, ticks 84, device interrupts 22195
P panic: ---- end of panic report ----"""


class PanicReportTests(unittest.TestCase):
    def test_every_stopped_cpu_shows_its_registers(self):
        self.assertEqual(judge.panic_cpu_problems(REPORT), [])

    def test_a_stopped_cpu_without_its_registers_is_caught(self):
        missing = "\n".join(line for line in REPORT.splitlines() if "cpu 2 (APIC id 2) was stopped" not in line)
        problems = judge.panic_cpu_problems(missing)
        self.assertEqual(len(problems), 1)
        self.assertIn("shows the registers of cpus [0]", problems[0])

    def test_a_stopped_cpu_without_its_local_apic_state_is_caught(self):
        missing = "\n".join(line for line in REPORT.splitlines() if "cpu 2 local APIC" not in line)
        problems = judge.panic_cpu_problems(missing)
        self.assertEqual(len(problems), 1)
        self.assertIn("local APIC state of cpus [0]", problems[0])

    def test_the_panicking_cpus_own_registers_are_not_a_stopped_cpus(self):
        wrong = REPORT.replace("cpu 2 (APIC id 2) was stopped", "cpu 1 (APIC id 1) was stopped")
        self.assertEqual(len(judge.panic_cpu_problems(wrong)), 1)

    def test_expected_frames_are_looked_for_in_the_panicking_cpus_lines_only(self):
        kept = "\n".join(judge.panicking_cpu_lines(REPORT.splitlines()))
        self.assertIn("panicOnThisCPU", kept)
        self.assertNotIn("Scheduler.idle", kept)
        self.assertNotIn("was stopped", kept)


if __name__ == "__main__":
    unittest.main()
