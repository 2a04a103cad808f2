"""An independent check of the kernel's usable-memory computation.

From the boot log it reads the loader's raw memory map and the exclusions the kernel logged,
recomputes the usable page ranges with its own interval arithmetic, and compares them with
the ranges and total the kernel reports. It also ties the raw map to QEMU's -m size, so a map
that lost memory cannot agree with itself by accident.
"""
import re

RAW = re.compile(r"^I boot:   0x([0-9a-f]+) - 0x([0-9a-f]+) (usable|reserved|ACPI reclaimable|ACPI NVS|bad memory) \(")
EXCLUDED = re.compile(r"^I pmm: excluded 0x([0-9a-f]+) - 0x([0-9a-f]+) ")
USABLE = re.compile(r"^I pmm: usable 0x([0-9a-f]+) - 0x([0-9a-f]+) \((\d+) pages\)$")
PAGE = 4096
DIRECT_MAP_LIMIT = 0x4000_0000_0000


def merge(ranges):
    merged = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


def subtract(ranges, holes):
    result = []
    for start, end in ranges:
        pieces = [(start, end)]
        for hole_start, hole_end in holes:
            next_pieces = []
            for a, b in pieces:
                if hole_end <= a or hole_start >= b:
                    next_pieces.append((a, b))
                    continue
                if a < hole_start:
                    next_pieces.append((a, hole_start))
                if hole_end < b:
                    next_pieces.append((hole_end, b))
            pieces = next_pieces
        result.extend(pieces)
    return result


def memory_bytes(size):
    number, unit = int(size[:-1]), size[-1].upper()
    return number << {"K": 10, "M": 20, "G": 30}[unit]


def check(output, memory):
    lines = output.splitlines()
    raw = [(int(m.group(1), 16), int(m.group(2), 16), m.group(3)) for m in map(RAW.match, lines) if m]
    excluded = [(int(m.group(1), 16), int(m.group(2), 16)) for m in map(EXCLUDED.match, lines) if m]
    reported = [(int(m.group(1), 16), int(m.group(2), 16)) for m in map(USABLE.match, lines) if m]
    if not raw or not reported:
        return ["memory check: the log lacks the raw memory map or the usable ranges"]
    usable = merge([(a, b) for a, b, kind in raw if kind == "usable"])
    reserved = merge([(a, b) for a, b, kind in raw if kind != "usable"])
    ranges = subtract(usable, [tuple(r) for r in reserved])
    ranges = subtract(ranges, [tuple(r) for r in merge(excluded)])
    ranges = subtract(ranges, [(DIRECT_MAP_LIMIT, 1 << 64)])
    aligned = []
    for start, end in ranges:
        start, end = (start + PAGE - 1) // PAGE * PAGE, end // PAGE * PAGE
        if start < end:
            aligned.append((start, end))
    expected = [tuple(r) for r in merge(aligned)]
    problems = []
    if expected != reported:
        problems.append("memory check: the kernel's usable ranges %s differ from the recomputed %s"
                        % ([(hex(a), hex(b)) for a, b in reported], [(hex(a), hex(b)) for a, b in expected]))
    raw_usable = sum(b - a for a, b in usable)
    requested = memory_bytes(memory)
    if not requested - (2 << 20) <= raw_usable <= requested:
        problems.append("memory check: the loader reports %d KiB usable for -m %s" % (raw_usable >> 10, memory))
    return problems
