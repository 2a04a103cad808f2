"""Checking the `zones` tables the kernel prints at the end of each suite.

Each row must add up by itself: objects in use plus free objects (the centre's) plus objects in
the CPUs' magazines equal slabs times objects
per slab; allocations minus frees equal objects in use. A table that does not add up means the
statistics - or the zone - lie.

After the table the kernel prints each reserve's deepest draw, the bound it checked it
against and the call chain that made it ("deepest draw: pv_entry 4 of bound 9; chain 0x..").
The kernel panics the moment a draw goes beyond its bound (kernel/Mem/Portable/ReserveDraw.swift),
so a suite that finished has none; what is checked here is that the kernel checked the right
thing: every reserve of the "reserve bounds" line (ReserveBounds.swift) has its line, and the
bound it checked against is the one it logged at boot. The chains are symbolised into
`<log>.draws` beside the boot's log, so the deepest draws can be read as call chains.
"""
import re

from .symbolize import symbolize_addresses

ROW = re.compile(r"^I zone: zones:  (?P<name>\S+)\s+(?P<size>\d+)\s+(?P<slab>\d+)K/\s*(?P<per>\d+)\s+(?P<inuse>\d+)\s+"
                 r"(?P<free>\d+)\s+(?P<cached>\d+)\s+(?P<static>\d+)\+\s*(?P<dynamic>\d+)\s+(?P<reserve>\d+)\s+(?P<lowest>\d+)\s+"
                 r"(?P<deepest>\d+)\s+(?P<refills>\d+)\s+(?P<failed>\d+)\s+(?P<allocs>\d+)\s+(?P<frees>\d+)\s+")


def rows(output):
    for line in output.splitlines():
        match = ROW.match(line)
        if match:
            yield match.group("name"), {key: int(value) for key, value in match.groupdict().items() if key != "name"}


BOUNDS = re.compile(r"^I zone: reserve bounds: swblock (?P<swblock>\d+) map_entry (?P<map_entry>\d+) pv_entry (?P<pv_entry>\d+) "
                    r"pages (?P<pages>\d+) zone chain \d+; without zone reserves pages (?P<pages_without>\d+); "
                    r"without the page tier swblock (?P<swblock_without>\d+);")
DRAW = re.compile(r"^I zone: deepest draw: (?P<name>\S+) (?P<depth>\d+) of bound (?P<bound>\d+); chain(?P<chain>( 0x[0-9a-f]+)*)$")


def draws(output):
    """{reserve: (depth, bound, [addresses])} from the last deepest-draw lines printed."""
    found = {}
    for line in output.splitlines():
        match = DRAW.match(line)
        if match:
            found[match.group("name")] = (int(match.group("depth")), int(match.group("bound")), match.group("chain").split())
    return found


def describe_draws(output, elf):
    """The deepest draws with their chains symbolised, one frame a line."""
    found = draws(output)
    addresses = [address for _, _, chain in found.values() for address in chain]
    names = symbolize_addresses(elf, addresses) if elf else {}
    lines = []
    for name, (depth, bound, chain) in sorted(found.items()):
        lines.append("%s: deepest draw %d of bound %d" % (name, depth, bound))
        for address in chain:
            frames = names.get(address) or [address]
            lines.append("    %s  %s" % (address, frames[0]))
            lines.extend("        (inlined into) %s" % frame for frame in frames[1:])
    return lines


def bounds(output):
    """The derived bound of each reserved zone, as the kernel logged it; {} if not logged."""
    for line in output.splitlines():
        match = BOUNDS.match(line)
        if match:
            return {name: int(value) for name, value in match.groupdict().items()}
    return {}


def check(output, elf=None, log_path=None):
    problems = []
    seen = 0
    derived = bounds(output)
    for name, row in rows(output):
        seen += 1
        if row["inuse"] + row["free"] + row["cached"] != (row["static"] + row["dynamic"]) * row["per"]:
            problems.append("zones table: %s has %d in use + %d free + %d in CPU magazines, but %d slabs of %d objects"
                            % (name, row["inuse"], row["free"], row["cached"], row["static"] + row["dynamic"], row["per"]))
        if row["allocs"] - row["frees"] != row["inuse"]:
            problems.append("zones table: %s has %d allocations - %d frees != %d in use"
                            % (name, row["allocs"], row["frees"], row["inuse"]))
    if seen == 0:
        problems.append("zones table: none printed")
        return problems
    if not derived:
        problems.append("zones table: no 'reserve bounds' line to check the deepest draws against")
        return problems
    found = draws(output)
    for name in ("swblock", "map_entry", "pv_entry", "pages"):
        if name not in found:
            problems.append("deepest draws: no line for the %s reserve" % name)
            continue
        depth, bound, _ = found[name]
        # The page bound with the zone reserves off is the chain at depth 2 (ReserveBounds).
        # and the swblock bound with the page tiers off is the whole reserve.
        allowed = {"pages": (derived["pages"], derived["pages_without"]),
                   "swblock": (derived["swblock"], derived["swblock_without"])}.get(name, (derived[name],))
        if bound not in allowed:
            problems.append("deepest draws: the kernel checked %s against %d, but logged the derived bound %s"
                            % (name, bound, " or ".join(map(str, allowed))))
        if depth > bound:
            problems.append("deepest draws: %s drawn %d deep, beyond its bound %d, and the kernel did not panic" % (name, depth, bound))
    if log_path and found:
        with open(log_path + ".draws", "w") as out:
            out.write("\n".join(describe_draws(output, elf)) + "\n")
    if problems and found:
        problems.extend("    " + line for line in describe_draws(output, elf))
    return problems
