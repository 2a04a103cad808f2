"""Checking the watchdog's wait-for graph against the edges it printed.

A deadlock report (kernel/Kern/Watchdog.swift, kernel/Kern/WaitGraph.swift) prints one line
per thread - for a sleeper, what it waits on and the thread that owns it, its one edge - and
then the chains the kernel followed: one from each sleeper nobody waits for, to the thread
that could make progress or into a cycle, and one line per cycle. This recomputes the chains
and cycles from the per-thread edges, independently of the kernel's walk, and compares: a
chain or cycle the kernel left out, or one it made up, is a problem. A report with no graph
at all is one too. Logs without a deadlock report pass untouched.
"""
import re

THREAD = re.compile(r"^P watchdog: thread (\d+) (\S+): (\w+)(.*)$")
# The owner clause of a sleeper's line: "held by thread N", "the end of thread N",
# "freed by thread N" (after "; waits for ").
OWNER = re.compile(r"; waits for .*?(?:held by|the end of|freed by) thread (\d+) ")
CHAIN = re.compile(r"^P watchdog: wait-for (chain|cycle): (.*)$")
CHAIN_ID = re.compile(r"(?:^|\]-> )(\d+) ")


def edges(lines):
    """Thread id -> owner id, for every sleeper whose line names an owner."""
    result = {}
    for line in lines:
        match = THREAD.match(line)
        if match and match.group(3) == "sleeping":
            owner = OWNER.search(match.group(4) + " ")
            if owner:
                result[int(match.group(1))] = int(owner.group(1))
    return result


def expected(graph):
    """The chains (tuples of ids, from each source to its end or first repeat) and the
    cycles (tuples from the lowest id round to it again) the graph holds."""
    waited_for = set(graph.values())
    chains = set()
    for source in graph:
        if source in waited_for:
            continue
        walk = [source]
        while walk[-1] in graph:
            walk.append(graph[walk[-1]])
            if walk[-1] in walk[:-1]:
                break
        chains.add(tuple(walk))
    cycles = set()
    for start in graph:
        walk = [start]
        while walk[-1] in graph and len(walk) <= len(graph):
            walk.append(graph[walk[-1]])
            if walk[-1] == start:
                if start == min(walk):
                    cycles.add(tuple(walk))
                break
    return chains, cycles


def check(output):
    lines = output.splitlines()
    if "P watchdog: ---- deadlock ----" not in lines:
        return []
    graph = edges(lines)
    printed = {"chain": set(), "cycle": set()}
    for line in lines:
        match = CHAIN.match(line)
        if match:
            printed[match.group(1)].add(tuple(int(i) for i in CHAIN_ID.findall(match.group(2))))
    chains, cycles = expected(graph)
    problems = []
    if not graph:
        problems.append("the deadlock report names no owner for any sleeping thread: no wait-for graph")
    for kind, want in (("chain", chains), ("cycle", cycles)):
        for missing in sorted(want - printed[kind]):
            problems.append("the deadlock report misses the wait-for %s %s" % (kind, " -> ".join(map(str, missing))))
        for extra in sorted(printed[kind] - want):
            problems.append("the deadlock report prints a wait-for %s %s that its threads' edges do not make" % (kind, " -> ".join(map(str, extra))))
    return problems


if __name__ == "__main__":
    import sys
    for path in sys.argv[1:]:
        with open(path, errors="replace") as log:
            found = check(log.read())
        print("%s: %s" % (path, "; ".join(found) if found else "wait-for graph consistent"))
