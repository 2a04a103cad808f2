"""stepcount.py - where the guest instructions of one kernel operation go, by single-stepping.

Run it against a kernel halted at its first instruction with QEMU's gdb stub (`-gdb tcp::PORT
-S`). It runs to the function AFTER (the benchmark or test that drives the operation), then
to the START of an operation (the symbol whose every call begins one), lets SKIP of them pass
(warm-up), and single-steps one whole operation: from one call of START to the next. It prints
the instructions stepped - under `-icount` the same number `make bench` reports for that
operation, loop included - and how many fell in each function and each source line.

    MEMORY=128M QEMU_EXTRA="-gdb tcp:127.0.0.1:1299 -S" qemu/run.sh build/kernel.mb bench=all &
    STEPCOUNT_AFTER='$e6Kernel10BenchmarksO13pageAllocatoryyFZTf4d_n' \\
    STEPCOUNT_START='$e6Kernel14PhysicalMemoryO8allocate5order_AA9PageIndexVSgSi_AA17AllocationContextVtFZ' \\
        gdb -batch -x qemu/gdb/stepcount.py build/kernel.elf

Environment: STEPCOUNT_PORT (1299), STEPCOUNT_AFTER and STEPCOUNT_START (mangled names, from
`nm build/kernel.elf`), STEPCOUNT_SKIP (50), STEPCOUNT_LIMIT (100000 steps at most),
STEPCOUNT_ROWS (30). docs/benchmarks.md shows what it found for the page allocator pair.
"""
import collections
import os
import subprocess

import gdb

port = os.environ.get("STEPCOUNT_PORT", "1299")
after = os.environ["STEPCOUNT_AFTER"]
start = os.environ["STEPCOUNT_START"]
skip = int(os.environ.get("STEPCOUNT_SKIP", "50"))
limit = int(os.environ.get("STEPCOUNT_LIMIT", "100000"))
rows = int(os.environ.get("STEPCOUNT_ROWS", "30"))
elf = gdb.current_progspace().filename


def address(symbol):
    return int(gdb.parse_and_eval("(long)&'%s'" % symbol))


gdb.execute("set pagination off")
gdb.execute("target remote 127.0.0.1:%s" % port)
gdb.execute("break *%d" % address(after))
gdb.execute("continue", to_string=True)
gdb.execute("delete")
first = address(start)
gdb.execute("break *%d" % first)
for _ in range(skip + 1):
    gdb.execute("continue", to_string=True)
gdb.execute("delete")

at = collections.Counter()
steps = 0
while steps < limit:
    gdb.execute("stepi", to_string=True)
    steps += 1
    pc = int(gdb.parse_and_eval("$pc"))
    if pc == first:
        break
    at[pc] += 1
print("instructions in one operation: %d%s" % (steps, " (the step limit: not one whole operation)" if steps >= limit else ""))

functions = collections.Counter()
lines = collections.Counter()
addresses = sorted(at)
resolved = subprocess.run(["addr2line", "-f", "-e", elf] + [hex(a) for a in addresses],
                          capture_output=True, text=True).stdout.splitlines()
for index, pc in enumerate(addresses):
    function, line = resolved[2 * index], resolved[2 * index + 1]
    functions[function] += at[pc]
    lines[line.split("/kernel/", 1)[-1]] += at[pc]
print("by function:")
for name, count in functions.most_common(rows):
    print("%7d  %s" % (count, name))
print("by source line (kernel/...; ? where the compiler made it up):")
for line, count in lines.most_common(rows):
    print("%7d  %s" % (count, line))
gdb.execute("kill")
