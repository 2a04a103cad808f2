"""Reading the kernel's memory-pressure samples (trace=on) out of a serial log, and drawing them.

With `trace=on` the kernel logs a header and then, from the timer interrupt, one line per
sample (kernel/Kern/Trace.swift, docs/trace.md):

    I trace: header interval_ticks=1 hz=100 managed=7690 free_min=62 ... swap_blocks=16384
    I trace: zones pv_entry:18 map_entry:6 swblock:12
    I trace: protections zones, pages, nowait
    I trace: fields T tick free out in swap waiting pv_entry map_entry swblock
    T 41 7012 0 0 0 0 240 51 0

`parse` returns a Trace (the header's numbers and the samples); `check` lists every way the
samples break what the kernel promises - a line that does not parse, ticks out of order or
not equally spaced (a lost or doubled sample), free pages below 0 or above the managed
pages, counters that go backwards, more swap in use than the disk has. `chart` draws them
with matplotlib (imported only there, so that parsing and checking need nothing but the
standard library).
"""
import re
import textwrap
from dataclasses import dataclass, field

HEADER = re.compile(r"^I trace: header (?P<pairs>.*)$")
ZONES = re.compile(r"^I trace: zones (?P<zones>.*)$")
PROTECTIONS = re.compile(r"^I trace: protections (?P<text>.*)$")
FIELDS = re.compile(r"^I trace: fields (?P<fields>.*)$")
SAMPLE = re.compile(r"^T (?P<numbers>.*)$")
DEADLOCK = re.compile(r"^P watchdog: chain: (?P<text>.*)$")
PANIC = re.compile(r"^P panic: (?P<text>(?!----).*)$")

HEADER_KEYS = ("interval_ticks", "hz", "managed", "free_min", "free_reserved", "paging_start",
               "paging_target", "swap_blocks")
# The fields before the zones, in the kernel's order; the zones follow, named by the header.
FIXED_FIELDS = ("tick", "free", "out", "in", "swap", "waiting")


@dataclass
class Sample:
    tick: int
    free: int
    paged_out: int        # pages written to swap since boot
    paged_in: int         # pages read back from swap since boot
    swap: int             # swap blocks in use
    waiting: int          # threads asleep in vm_wait
    zones: list           # free objects of each reserve zone, in Trace.zones order


@dataclass
class Trace:
    header: dict = field(default_factory=dict)
    zones: list = field(default_factory=list)         # [(name, reserve)]
    protections: str = ""
    samples: list = field(default_factory=list)
    errors: list = field(default_factory=list)        # lines that do not parse
    deadlock: str = ""                                # the watchdog's chain line, if any
    panic: str = ""

    def seconds(self, sample):
        """Guest time of `sample`, in seconds since boot."""
        return sample.tick / self.header["hz"]


def parse(text):
    trace = Trace()
    fields = None
    for number, line in enumerate(text.replace("\r\n", "\n").split("\n"), 1):
        if match := HEADER.match(line):
            for pair in match["pairs"].split():
                key, _, value = pair.partition("=")
                if not value.isdigit():
                    trace.errors.append("line %d: header value %r is not a number" % (number, pair))
                    continue
                trace.header[key] = int(value)
            missing = [key for key in HEADER_KEYS if key not in trace.header]
            if missing:
                trace.errors.append("line %d: header without %s" % (number, ", ".join(missing)))
        elif match := ZONES.match(line):
            for word in match["zones"].split():
                name, _, reserve = word.partition(":")
                if not reserve.isdigit():
                    trace.errors.append("line %d: zone %r has no reserve" % (number, word))
                    continue
                trace.zones.append((name, int(reserve)))
        elif match := PROTECTIONS.match(line):
            trace.protections = match["text"]
        elif match := FIELDS.match(line):
            fields = match["fields"].split()
            expected = ["T"] + list(FIXED_FIELDS) + [name for name, _ in trace.zones]
            if fields != expected:
                trace.errors.append("line %d: fields %s, expected %s" % (number, " ".join(fields), " ".join(expected)))
        elif match := SAMPLE.match(line):
            words = match["numbers"].split()
            if fields is None:
                trace.errors.append("line %d: a sample before the header" % number)
                continue
            if len(words) != len(fields) - 1 or not all(word.isdigit() for word in words):
                trace.errors.append("line %d: not a sample of %d numbers: %r" % (number, len(fields) - 1, line))
                continue
            values = [int(word) for word in words]
            trace.samples.append(Sample(*values[:len(FIXED_FIELDS)], zones=values[len(FIXED_FIELDS):]))
        elif match := DEADLOCK.match(line):
            trace.deadlock = match["text"]
        elif match := PANIC.match(line):
            trace.panic = trace.panic or match["text"]
    return trace


def check(trace):
    """Every way the trace breaks the kernel's promises, as messages; empty when it is sound."""
    problems = list(trace.errors)
    if not trace.header:
        return problems + ["no trace header: was the kernel booted with trace=on?"]
    if len(trace.samples) < 2:
        return problems + ["%d samples: too few to draw" % len(trace.samples)]
    h = trace.header
    interval = h["interval_ticks"]
    previous = None
    for sample in trace.samples:
        where = "sample at tick %d" % sample.tick
        if not 0 <= sample.free <= h["managed"]:
            problems.append("%s: %d free pages, outside 0..%d managed" % (where, sample.free, h["managed"]))
        if sample.swap > h["swap_blocks"]:
            problems.append("%s: %d swap blocks in use of %d" % (where, sample.swap, h["swap_blocks"]))
        if previous is not None:
            if sample.tick <= previous.tick:
                problems.append("%s: out of order (after tick %d)" % (where, previous.tick))
            elif sample.tick - previous.tick != interval:
                problems.append("%s: %d ticks after the one before, not every %d (a sample lost?)"
                                % (where, sample.tick - previous.tick, interval))
            if sample.paged_out < previous.paged_out or sample.paged_in < previous.paged_in:
                problems.append("%s: the page-out or page-in count went backwards" % where)
        previous = sample
    return problems


def rates(trace, window):
    """Pages out and in per second of guest time, over `window` samples ending at each sample."""
    out, back = [], []
    for index, sample in enumerate(trace.samples):
        first = trace.samples[max(0, index - window)]
        seconds = trace.seconds(sample) - trace.seconds(first)
        out.append((sample.paged_out - first.paged_out) / seconds if seconds else 0.0)
        back.append((sample.paged_in - first.paged_in) / seconds if seconds else 0.0)
    return out, back


def chart(trace, path, title):
    """Writes the time-series chart of `trace` to `path` (PNG or SVG, by its extension)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = trace.header
    seconds = [trace.seconds(s) for s in trace.samples]
    figure, (free_axes, zone_axes, rate_axes, swap_axes) = plt.subplots(
        4, 1, sharex=True, figsize=(10, 9), gridspec_kw={"height_ratios": [3, 2, 2, 2]})
    figure.suptitle(title, fontsize=11)

    # Free pages against the thresholds, drawn as bands: who may still allocate there.
    top = 2 * h["paging_target"]
    bands = [
        (0, h["free_min"], "#f4a3a3", "below free_min: pageout only"),
        (h["free_min"], h["free_reserved"], "#f7c99b", "free_min..free_reserved: system and pageout"),
        (h["free_reserved"], h["paging_start"], "#f6eaa0", "free_reserved..paging_start: everyone; pageout wakes below"),
        (h["paging_start"], h["paging_target"], "#cfe8c4", "paging_start..paging_target: pageout works up to here"),
    ]
    for low, high, colour, label in bands:
        free_axes.axhspan(low, high, color=colour, label=label, linewidth=0)
    free_axes.plot(seconds, [s.free for s in trace.samples], color="black", linewidth=0.8, label="free pages")
    free_axes.set_ylim(0, top)
    free_axes.set_ylabel("free pages\n(clipped at 2 x paging_target)")
    free_axes.legend(loc="upper right", fontsize=7)

    # Each reserve zone's free objects, as a multiple of its reserve: below 1, the reserve is in use.
    for index, (name, reserve) in enumerate(trace.zones):
        ratio = [s.zones[index] / reserve if reserve else 0 for s in trace.samples]
        zone_axes.plot(seconds, ratio, linewidth=0.8, label="%s (reserve %d)" % (name, reserve))
    zone_axes.axhline(1.0, color="red", linewidth=0.8, linestyle="--", label="the reserve")
    zone_axes.set_ylim(0, 4)
    zone_axes.set_ylabel("zone free objects\n/ reserve (clipped at 4)")
    zone_axes.legend(loc="upper right", fontsize=7)

    window = max(1, h["hz"] // (10 * h["interval_ticks"]))       # 0.1 s of guest time
    out, back = rates(trace, window)
    rate_axes.plot(seconds, out, linewidth=0.8, label="paged out")
    rate_axes.plot(seconds, back, linewidth=0.8, label="paged in")
    rate_axes.set_ylim(bottom=0)
    rate_axes.set_ylabel("pages / s\n(over 0.1 s)")
    rate_axes.legend(loc="upper right", fontsize=7)

    swap_axes.plot(seconds, [s.swap for s in trace.samples], color="tab:purple", linewidth=0.8, label="swap blocks in use")
    swap_axes.set_ylabel("swap blocks in use\n(of %d)" % h["swap_blocks"] if h["swap_blocks"] else "no swap disk")
    swap_axes.set_ylim(0, max(1, h["swap_blocks"]))
    waiting_axes = swap_axes.twinx()
    waiting_axes.step(seconds, [s.waiting for s in trace.samples], color="tab:red", linewidth=0.8, where="post",
                      label="threads in vm_wait")
    waiting_axes.set_ylabel("threads waiting\nfor memory")
    waiting_axes.set_ylim(0, max(4, max(s.waiting for s in trace.samples) + 1))
    lines = swap_axes.get_legend_handles_labels()
    more = waiting_axes.get_legend_handles_labels()
    swap_axes.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=7)
    swap_axes.set_xlabel("guest time (s; QEMU -icount, one sample every %d ms)"
                         % (1000 * h["interval_ticks"] // h["hz"]))

    ending = trace.deadlock or trace.panic
    if ending:
        for axes in (free_axes, zone_axes, rate_axes, swap_axes):
            axes.axvline(seconds[-1], color="red", linewidth=1.2)
        words = textwrap.fill(("watchdog: " if trace.deadlock else "panic: ") + ending, 70)
        free_axes.annotate(words, xy=(seconds[-1], top * 0.45), xytext=(-6, 0), textcoords="offset points",
                           ha="right", va="center", fontsize=7, color="darkred",
                           bbox={"facecolor": "white", "edgecolor": "darkred", "linewidth": 0.5})
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
