"""Checking the `zones` tables the kernel prints at the end of each suite.

Each row must add up by itself: objects in use plus free objects equal slabs times objects
per slab; allocations minus frees equal objects in use; the deepest reserve use never
exceeds the reserve. A table that does not add up means the statistics - or the zone - lie.
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


def check(output):
    problems = []
    seen = 0
    for name, row in rows(output):
        seen += 1
        if row["inuse"] + row["free"] != (row["static"] + row["dynamic"]) * row["per"]:
            problems.append("zones table: %s has %d in use + %d free, but %d slabs of %d objects"
                            % (name, row["inuse"], row["free"], row["static"] + row["dynamic"], row["per"]))
        if row["allocs"] - row["frees"] != row["inuse"]:
            problems.append("zones table: %s has %d allocations - %d frees != %d in use"
                            % (name, row["allocs"], row["frees"], row["inuse"]))
        if row["deepest"] > row["reserve"]:
            problems.append("zones table: %s used %d reserve objects, more than its reserve of %d"
                            % (name, row["deepest"], row["reserve"]))
    if seen == 0:
        problems.append("zones table: none printed")
    return problems
