#!/usr/bin/env python3
"""check.py - model-checks the reserve protocol (verify/reserves.pml) with SPIN.

Runs the model once per row of the matrix - all protections on, each removed, and two
mutations - and prints "protection removed -> outcome" with SPIN's state counts. Every row has
an expected outcome (docs/reserves.md, "The model"): all on must show no deadlock and no
reserve drawn past its bound; a removal or mutation that deadlocks must keep deadlocking
(these are the negative tests: they show the check can fail); a removal that does not deadlock
is a finding, and if that changes the docs are out of date. Any row that differs fails.

    check.py --instance small   a few seconds: all on and the two removals that deadlock (make test)
    check.py --instance full    every row exhaustively, and the deepest draw of each reserve (make verify)

Each run is an exhaustive search (pan compiled with -DSAFETY: assertions and invalid end
states, no cycle detection; -DCOLLAPSE: exact state storage, compressed). A search that hits
the depth or memory limit is inconclusive and fails the check.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "reserves.pml")

# The instances: how many processes, resident pages and swap slots (reserves.pml), and how many
# pages the ordinary processes may use above free_reserved. The model's memory is that plus
# free_reserved, which follows free_min at its floor (ReserveBounds.pageoutPages): when the
# bounds grow, the instance keeps the same room for ordinary work instead of shrinking it.
INSTANCES = {
    "small": {"PROCS": 2, "ORDINARY_PAGES": 10, "WORKSET": 3, "SWAP": 14},
    "full": {"PROCS": 3, "ORDINARY_PAGES": 12, "WORKSET": 3, "SWAP": 14},
}


def sized(instance, c):
    """The instance's #defines, its memory sized from the generated thresholds."""
    defines = {key: value for key, value in instance.items() if key != "ORDINARY_PAGES"}
    defines["MEMORY"] = c["FREE_RESERVED"] + instance["ORDINARY_PAGES"]
    return defines

NO_DEADLOCK = "no deadlock"
DEADLOCK = "deadlock"

# (what is removed or changed, defines, expected outcome, instances it runs in, note)
ROWS = [
    ("none (all on)", {"BOUNDS": 1}, NO_DEADLOCK, ("small", "full"),
     "and no reserve drawn past ReserveBounds.bound"),
    ("zones", {"ZONES": 0}, NO_DEADLOCK, ("full",),
     "finding: the pages below free_min cover the pageout path alone"),
    ("pages", {"PAGES": 0}, NO_DEADLOCK, ("full",),
     "finding: the zone reserves cover the pageout path alone"),
    ("nowait", {"NOWAIT": 0}, DEADLOCK, ("small", "full"),
     "the pageout thread waits in vm_wait for memory only it can free"),
    ("zones+pages", {"ZONES": 0, "PAGES": 0}, DEADLOCK, ("small", "full"),
     "Dillon's problem B: a zone empty, no page the pageout thread may take"),
    ("mutation: ordinary reserve check off by one", {"MUTATION": 1, "BOUNDS": 1}, NO_DEADLOCK, ("full",),
     "not caught: the reserves are twice the deepest draw"),
    ("mutation: pager window's PV entry as ordinary", {"MUTATION": 2}, DEADLOCK, ("full",),
     "caught: the context must be carried down"),
]

# The small instance's searches take less time than compiling pan with optimisation.
PAN_CFLAGS = ["-w", "-DSAFETY", "-DCOLLAPSE", "-DMEMLIM=8192"]
OPTIMISE = {"small": "-O0", "full": "-O2"}
PAN_DEPTH = 5_000_000


def sh(command, cwd, stdout=subprocess.PIPE):
    return subprocess.run(command, cwd=cwd, stdout=stdout, stderr=subprocess.STDOUT, text=True)


def constants(header):
    """The generated #defines, as a dict of ints."""
    values = {}
    with open(header) as lines:
        for line in lines:
            match = re.match(r"#define\s+(\w+)\s+(\d+)", line)
            if match:
                values[match.group(1)] = int(match.group(2))
    return values


def run(header, folder, defines, optimise="-O2"):
    """Generates, compiles and runs pan for one configuration in `folder`, with the
    generated constants `header`; returns what it found."""
    os.makedirs(folder, exist_ok=True)
    for stale in ("run.pml.trail", "pan"):
        if os.path.exists(os.path.join(folder, stale)):
            os.remove(os.path.join(folder, stale))
    shutil.copy(MODEL, folder)
    shutil.copy(header, folder)
    with open(os.path.join(folder, "run.pml"), "w") as wrapper:
        for key, value in defines.items():
            wrapper.write(f"#define {key} {value}\n")
        wrapper.write('#include "reserves.pml"\n')
    for command in (["spin", "-a", "run.pml"], ["cc", optimise, *PAN_CFLAGS, "-o", "pan", "pan.c"]):
        result = sh(command, folder)
        if result.returncode != 0:
            sys.exit(f"check.py: `{' '.join(command)}` failed in {folder}:\n{result.stdout}")
    start = time.monotonic()
    result = sh(["./pan", f"-m{PAN_DEPTH}", "-n"], folder)
    seconds = time.monotonic() - start
    out = result.stdout
    with open(os.path.join(folder, "pan.out"), "w") as log:
        log.write(out)

    def number(pattern):
        match = re.search(pattern, out)
        return int(float(match.group(1))) if match else None

    found = {
        "states": number(r"([\d.e+]+) states, stored"),
        "transitions": number(r"([\d.e+]+) transitions \(="),
        "depth": number(r"depth reached (\d+)"),
        "errors": number(r"errors: (\d+)"),
        "seconds": seconds,
        "folder": folder,
    }
    if "max search depth too small" in out or "reached -DMEMLIM bound" in out or found["errors"] is None:
        found["outcome"] = "inconclusive"
    elif found["errors"] == 0:
        found["outcome"] = NO_DEADLOCK
    elif re.search(r"^pan:\d+: invalid end state", out, re.M):
        found["outcome"] = DEADLOCK
    elif re.search(r"^pan:\d+: assertion violated", out, re.M):
        found["outcome"] = "assertion: " + re.search(r"assertion violated\s+(.*?) \(at depth", out).group(1)
    else:
        found["outcome"] = "error"
    return found


def final_state(folder):
    """Replays the trail: the last value of each global and where each process stopped."""
    replay = sh(["spin", "-t", "-g", "run.pml"], folder).stdout
    values = {}
    for match in re.finditer(r"^\s+([\w\[\]]+) = (\d+)$", replay, re.M):
        values[match.group(1)] = int(match.group(2))
    with open(os.path.join(folder, "reserves.pml")) as model:
        source = model.read().splitlines()
    where = []
    for match in re.finditer(r"proc\s+\d+ \((\w+):\d+\) reserves.pml:(\d+) \(state \d+\)( <valid end state>)?", replay):
        process, line, valid = match.group(1), int(match.group(2)), match.group(3)
        if process in ("init", "Bounds", "Reach") or valid:
            continue
        where.append(f"{process} blocked at reserves.pml:{line}, {context(source, line)}")
    return values, where


def context(source, line):
    """Where a line is: the inline or proctype around it, and the comment nearest above."""
    comment, enclosing = "", "?"
    for index in range(line - 1, -1, -1):
        text = source[index].strip()
        if not comment and text.startswith("/*"):
            comment = text.strip("/* ").rstrip(":")
        match = re.match(r"(?:active )?(?:inline|proctype) (\w+)\(", text)
        if match:
            enclosing = match.group(1)
            # An inline's own comment stands above it: its first line.
            above = index - 1
            while not comment and above >= 0 and source[above].strip() and not source[above].strip().startswith("/*"):
                above -= 1
            if not comment and above >= 0 and source[above].strip().startswith("/*"):
                comment = source[above].strip().strip("/* ")
            break
    return f"in {enclosing}: {comment[:80]}"


def describe(values):
    keys = ["free", "obj[0]", "obj[1]", "obj[2]", "resident", "mapped", "swapped"]
    names = ["free", "swblock", "map_entry", "pv_entry", "resident", "mapped", "swapped"]
    return ", ".join(f"{n} {values[k]}" for k, n in zip(keys, names) if k in values)


def deepest_draws(header, folder, instance, limits):
    """The deepest draw on each reserve (and below free_min) that the model can reach with all
    protections on: probes "some draw >= t" and raises t past each draw it finds, until no
    state has one. Each probe that finds a state stops early; the last one is exhaustive."""
    zones = [("swblock", "RESERVE_SW - obj[0]"), ("map_entry", "RESERVE_MAP - obj[1]"),
             ("pv_entry", "RESERVE_PV - obj[2]"), ("pages below free_min", "FREE_MIN - free")]
    threshold = [1, 1, 1, 1]
    while True:
        condition = " || ".join(f"({expression} >= {t})" for (_, expression), t in zip(zones, threshold))
        found = run(header, folder, {**instance, "REACH": f"({condition})"})
        if found["outcome"] == NO_DEADLOCK:
            return [(name, t - 1, limit) for (name, _), t, limit in zip(zones, threshold, limits)], found
        if not found["outcome"].startswith("assertion"):
            sys.exit(f"check.py: the draw probe ended with {found['outcome']} ({found['folder']})")
        values, _ = final_state(found["folder"])
        draws = [limits[4] - values["obj[0]"], limits[5] - values["obj[1]"], limits[6] - values["obj[2]"],
                 limits[7] - values["free"]]
        for index, draw in enumerate(draws):
            if draw >= threshold[index]:
                threshold[index] = draw + 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instance", choices=sorted(INSTANCES), default="small")
    parser.add_argument("--build", default="build/verify", help="where constants.h is and the runs go")
    parser.add_argument("--rows", default="", help="comma-separated row folders to run (e.g. pages,nowait); "
                        "default: every row of the instance, then the deepest-draw probe ('draws')")
    arguments = parser.parse_args()
    chosen = set(filter(None, arguments.rows.split(",")))
    build = os.path.abspath(arguments.build)
    header = os.path.join(build, "constants.h")
    c = constants(header)
    instance = sized(INSTANCES[arguments.instance], c)
    runs = os.path.join(build, arguments.instance)

    print(f"reserve protocol model, instance {arguments.instance}: "
          + " ".join(f"{k}={v}" for k, v in instance.items()))
    print(f"  from ReserveBounds.swift: reserves swblock {c['RESERVE_SW']} map_entry {c['RESERVE_MAP']} "
          f"pv_entry {c['RESERVE_PV']}; step {c['STEP_SWBLOCK']}/{c['STEP_MAP']}/{c['STEP_PV']}; "
          f"growth map {c['GROW_MAP']} pv {c['GROW_PV']} pages {c['GROW_PAGES']}; free_min {c['FREE_MIN']} "
          f"free_reserved {c['FREE_RESERVED']} paging_target {c['PAGING_TARGET']}")
    columns = f"  {'removed or changed':<46} {'outcome':<14} {'states':>11} {'transitions':>12} {'depth':>7} {'time':>7}"
    print(columns)
    failures = []
    details = []
    started = time.monotonic()
    for label, defines, expected, where, note in ROWS:
        if arguments.instance not in where:
            continue
        folder = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
        if chosen and folder not in chosen:
            continue
        found = run(header, os.path.join(runs, folder), {**instance, **defines}, OPTIMISE[arguments.instance])
        verdict = "ok" if found["outcome"] == expected else f"FAILED: expected {expected}"
        print(f"  {label:<46} {found['outcome']:<14} {found['states'] or 0:>11} {found['transitions'] or 0:>12} "
              f"{found['depth'] or 0:>7} {found['seconds']:>6.1f}s  {verdict} - {note}", flush=True)
        if found["outcome"] != expected:
            failures.append(label)
        if found["outcome"] != NO_DEADLOCK and found["outcome"] != "inconclusive":
            values, stuck = final_state(found["folder"])
            details.append(f"  {label}: {found['outcome']} at depth {found['depth']}: {describe(values)}")
            details += [f"      {line}" for line in stuck]
            details.append(f"      trail: cd {found['folder']} && spin -t -p -g run.pml")
    if details:
        print("counterexamples (the state SPIN stopped in):")
        print("\n".join(details))
    if arguments.instance == "full" and (not chosen or "draws" in chosen):
        limits = [c["BOUND_SW"], c["BOUND_MAP"], c["BOUND_PV"], c["BOUND_PAGES"],
                  c["RESERVE_SW"], c["RESERVE_MAP"], c["RESERVE_PV"], c["FREE_MIN"]]
        draws, last = deepest_draws(header, os.path.join(runs, "draws"), instance, limits)
        print("deepest draw reachable with all protections on (ReserveBounds.bound):")
        for name, draw, bound in draws:
            print(f"  {name:<22} {draw} of {bound}")
        print(f"  (the last probe searched {last['states']} states in {last['seconds']:.1f}s)")
    print(f"model check took {time.monotonic() - started:.0f}s")
    ran = [r for r in ROWS if arguments.instance in r[3]
           and (not chosen or re.sub(r"[^a-z0-9]+", "-", r[0].lower()).strip("-") in chosen)]
    print(f"model: {len(ran) - len(failures)} passed, {len(failures)} failed")
    if failures:
        print("rows whose outcome changed: " + ", ".join(failures)
              + ". If the kernel changed, update docs/reserves.md (The model) and ROWS in verify/check.py.")
        sys.exit(1)


if __name__ == "__main__":
    main()
