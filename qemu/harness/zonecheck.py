"""Checking the `zones` tables the kernel prints at the end of each suite.

Each row must add up by itself: objects in use plus free objects equal slabs times objects
per slab; allocations minus frees equal objects in use. And the deepest draw into each reserve
stays within the bound derived for it (the "reserve bounds" line the kernel logs at boot, from
ReserveBounds.swift) - not merely within the reserve itself, which is twice the bound and which
a draw cannot exceed by construction. A table that does not add up means the statistics - or
the zone - lie; a draw beyond its bound means the derivation in docs/reserves.md is wrong.
"""
import re

ROW = re.compile(r"^I zone: zones:  (?P<name>\S+)\s+(?P<size>\d+)\s+(?P<slab>\d+)K/\s*(?P<per>\d+)\s+(?P<inuse>\d+)\s+"
                 r"(?P<free>\d+)\s+(?P<static>\d+)\+\s*(?P<dynamic>\d+)\s+(?P<reserve>\d+)\s+(?P<lowest>\d+)\s+"
                 r"(?P<deepest>\d+)\s+(?P<refills>\d+)\s+(?P<failed>\d+)\s+(?P<allocs>\d+)\s+(?P<frees>\d+)\s+")


def rows(output):
    for line in output.splitlines():
        match = ROW.match(line)
        if match:
            yield match.group("name"), {key: int(value) for key, value in match.groupdict().items() if key != "name"}


BOUNDS = re.compile(r"^I zone: reserve bounds: swblock (?P<swblock>\d+) map_entry (?P<map_entry>\d+) pv_entry (?P<pv_entry>\d+) ")


def bounds(output):
    """The derived bound of each reserved zone, as the kernel logged it; {} if not logged."""
    for line in output.splitlines():
        match = BOUNDS.match(line)
        if match:
            return {name: int(value) for name, value in match.groupdict().items()}
    return {}


def check(output, check_bounds=True):
    problems = []
    seen = 0
    derived = bounds(output)
    for name, row in rows(output):
        seen += 1
        if row["inuse"] + row["free"] != (row["static"] + row["dynamic"]) * row["per"]:
            problems.append("zones table: %s has %d in use + %d free, but %d slabs of %d objects"
                            % (name, row["inuse"], row["free"], row["static"] + row["dynamic"], row["per"]))
        if row["allocs"] - row["frees"] != row["inuse"]:
            problems.append("zones table: %s has %d allocations - %d frees != %d in use"
                            % (name, row["allocs"], row["frees"], row["inuse"]))
        if check_bounds and name in derived and row["deepest"] > derived[name]:
            problems.append("zones table: %s's deepest reserve draw is %d objects, beyond its derived bound of %d"
                            % (name, row["deepest"], derived[name]))
    if seen == 0:
        problems.append("zones table: none printed")
    elif not derived:
        problems.append("zones table: no 'reserve bounds' line to check the deepest draws against")
    return problems
