"""Checks that drive the kernel through QEMU's gdb stub with gdb in batch mode.

Each check starts QEMU halted (-S) with its gdb stub on a free local port, runs gdb with a
list of commands, and asserts on what gdb printed and on the serial log.
"""
import os
import re
import socket
import subprocess
import time

from .qemu import Boot, EXIT_BOOT_FAILURE, EXIT_SUCCESS, make_disk, qemu_command, status_name


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_with_gdb(image, elf, boot, commands, log_dir, timeout=120):
    """Returns (gdb output, serial output, QEMU status or None)."""
    port = free_port()
    serial_path = os.path.join(log_dir, boot.name + ".serial.log")
    disk = make_disk(os.path.join(log_dir, boot.name + ".disk"), boot.disk_mib) if boot.disk_mib else None
    command = qemu_command(image, boot, disk_path=disk, gdb_port=port, halted=True)
    command[command.index("stdio")] = "file:" + serial_path
    qemu = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.3)
    helpers = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gdb", "kernel_helpers.py")
    gdb = ["gdb", "-batch", "-nx", "-ex", "set architecture i386:x86-64", "-ex", "set pagination off",
           "-ex", "source " + helpers, "-ex", "file " + elf, "-ex", "target remote 127.0.0.1:%d" % port]
    for line in commands:
        gdb += ["-ex", line]
    try:
        gdb_output = subprocess.run(gdb, capture_output=True, text=True, timeout=timeout).stdout
    except subprocess.TimeoutExpired:
        gdb_output = "(gdb timed out)"
    try:
        status = qemu.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        qemu.kill()
        qemu.wait()
        status = None
    if disk:
        os.unlink(disk)
    with open(serial_path, "rb") as serial:
        serial_output = serial.read().decode("utf-8", "replace").replace("\r\n", "\n")
    with open(os.path.join(log_dir, boot.name + ".gdb.log"), "w") as log:
        log.write(gdb_output)
    return gdb_output, serial_output, status


SEED_SYMBOL = "$e6Kernel0A7OptionsO4seeds6UInt64VvpZ"   # KernelOptions.seed


def check_breakpoint_and_global(image, elf, log_dir):
    """Stops at a named function in 64-bit mode, prints a global and a backtrace."""
    boot = Boot("gdb.breakpoint", "seed=31337")
    output, serial, status = run_with_gdb(image, elf, boot, [
        "hbreak kernel_init_complete",
        "continue",
        "info symbol $pc",
        "printf \"cs=%#x\\n\", $cs",
        "printf \"seed=%lu\\n\", *(unsigned long *)&'" + SEED_SYMBOL + "'",
        "bt",
        "continue",
    ], log_dir)
    problems = []
    if not re.search(r"^Breakpoint 1, 0x[0-9a-f]+ in kernel_init_complete \(\)$", output, re.MULTILINE):
        problems.append("gdb did not stop at kernel_init_complete")
    if not re.search(r"^kernel_init_complete( \+ \d+)? in section \.text$", output, re.MULTILINE):
        problems.append("$pc is not in kernel_init_complete")
    if "cs=0x8" not in output:
        problems.append("not stopped in the 64-bit code segment (cs 0x8)")
    if "seed=31337" not in output:
        problems.append("gdb did not read KernelOptions.seed = 31337")
    if "seed 31337" not in serial:
        problems.append("the kernel did not log seed 31337")
    if not re.search(r"#\d+ +0x[0-9a-f]+ in kernel_main \(\)", output) or "long_mode_entry" not in output:
        problems.append("the backtrace does not go through kernel_main down to long_mode_entry")
    if status != EXIT_SUCCESS:
        problems.append("kernel outcome after continuing: %s" % status_name(status))
    if problems:
        problems += ["gdb said:"] + ["    " + line for line in output.splitlines()[-25:]]
    return problems


def check_bad_magic(image, elf, log_dir):
    """A wrong multiboot magic halts with a message on the serial port, not a reboot loop."""
    boot = Boot("gdb.bad-magic", "")
    output, serial, status = run_with_gdb(image, elf, boot, [
        "hbreak _start",
        "continue",
        "set $eax = 0x1badf00d",
        "continue",
    ], log_dir)
    problems = []
    if "boot: bad multiboot magic, not started by a multiboot loader: eax=0x1badf00d" not in serial:
        problems.append("no bad-magic message on the serial port; serial was: %r" % serial[-300:])
    if status != EXIT_BOOT_FAILURE:
        problems.append("kernel outcome: %s, expected %s" % (status_name(status), status_name(EXIT_BOOT_FAILURE)))
    if "swift-kernel" in serial:
        problems.append("the Swift kernel started despite the bad magic")
    return problems


def view_lines(serial, kind):
    prefix = "I test: view %s " % kind
    return [line[len(prefix):].split() for line in serial.splitlines() if line.startswith(prefix)]


def check_helpers(image, elf, log_dir):
    """kzones, kbuddy, kmap, kpage, kthreads and klog show what the kernel printed of itself
    just before stopping at kernel_debug_checkpoint (kernel/Test/DebugHelperTests.swift)."""
    boot = Boot("gdb.helpers", "test=gdbhelpers seed=7", cpus=2)
    # kpage needs the page's address, which only the serial log knows: read it when gdb stops.
    output, serial, status = run_with_gdb(image, elf, boot, [
        "hbreak kernel_debug_checkpoint",
        "continue",
        "echo ==kzones==\\n", "kzones",
        "echo ==kbuddy==\\n", "kbuddy",
        "echo ==kmap==\\n", "kmap kmem",
        "echo ==kmapall==\\n", "kmap",
        "echo ==kthreads==\\n", "kthreads",
        "echo ==kcpus==\\n", "kcpus",
        "echo ==klog==\\n", "klog 8192",
        # "I test: view page <physical> mapped <virtual> <virtual>"
        "python view = [l for l in open('%s').read().splitlines() if ' view page ' in l][0].split()"
        % os.path.join(log_dir, boot.name + ".serial.log"),
        "echo ==kpage==\\n", "python gdb.execute('kpage ' + view[4])",
        "echo ==kpagev==\\n", "python gdb.execute('kpage -v ' + view[7])",
        # 16 MiB + 0x123 through the direct map: a 2 MiB page at 128 MiB of RAM.
        "echo ==kpagedirect==\\n", "python gdb.execute('kpage -v %#x' % (DebugTable()['directMapBase'] + 0x1000123))",
        # "I test: view use <virtual> <use>", three pages of different uses.
        "python uses = [l.split() for l in open('%s').read().splitlines() if ' view use ' in l]"
        % os.path.join(log_dir, boot.name + ".serial.log"),
        "echo ==kpageuse0==\\n", "python gdb.execute('kpage -v ' + uses[0][4])",
        "echo ==kpageuse1==\\n", "python gdb.execute('kpage -v ' + uses[1][4])",
        "echo ==kpageuse2==\\n", "python gdb.execute('kpage -v ' + uses[2][4])",
        "echo ==kpageuse3==\\n", "python gdb.execute('kpage -v ' + uses[3][4])",
        "continue",
    ], log_dir)
    problems = []
    sections = {}
    current = None
    for line in output.splitlines():
        marker = re.match(r"^==(\w+)==$", line)
        if marker:
            current = marker.group(1)
            sections[current] = []
        elif current:
            sections[current].append(line)
    panic = [line for line in serial.splitlines() if line.startswith("P panic: ")]
    if panic:
        problems.append("the kernel panicked:")
        problems.extend("    " + line for line in panic[:4])
    for name in ("kzones", "kbuddy", "kmap", "kmapall", "kthreads", "kcpus", "klog", "kpage", "kpagev", "kpagedirect",
                 "kpageuse0", "kpageuse1", "kpageuse2", "kpageuse3"):
        if name not in sections or not sections[name]:
            problems.append("gdb printed nothing for %s" % name)
    for kind in ("zone", "buddy", "pool", "thresholds", "map", "page", "use", "pageable", "cpu", "thread", "marker"):
        if not view_lines(serial, kind):
            problems.append("the kernel printed no 'view %s' line to compare with" % kind)
    if problems:
        return problems + ["gdb said:"] + ["    " + line for line in output.splitlines()[-30:]]
    zones = {fields[0]: fields for fields in (line.split() for line in sections["kzones"][1:]) if fields}
    for name, _, inuse, _, free, _, static, _, dynamic in view_lines(serial, "zone"):
        row = zones.get(name)
        if row is None:
            problems.append("kzones does not list zone %s" % name)
        elif (row[3], row[4], row[5], row[6]) != (inuse, free, static, dynamic):
            problems.append("kzones shows %s in-use/free/static/dynamic %s, the kernel said %s"
                            % (name, row[3:7], [inuse, free, static, dynamic]))
    for _, order, blocks in view_lines(serial, "buddy"):
        if not any(re.match(r"^order +%s: +%s free blocks" % (order, blocks), line) for line in sections["kbuddy"]):
            problems.append("kbuddy does not show %s free blocks of order %s" % (blocks, order))
    for static, dynamic, inuse, free in view_lines(serial, "pool"):
        wanted = "buddy descriptors: %s static + %s dynamic pages, %s in use, %s free, " % (static, dynamic, inuse, free)
        if not any(line.startswith(wanted) for line in sections["kbuddy"]):
            problems.append("kbuddy does not show the descriptor pool as '%s'" % wanted)
        pages = [line for line in sections["kbuddy"] if re.match(r"^  (static |dynamic) page 0x", line)]
        if len(pages) != int(static) + int(dynamic):
            problems.append("kbuddy lists %d pages of descriptors, the kernel has %s + %s" % (len(pages), static, dynamic))
    for fields in view_lines(serial, "thresholds"):
        wanted = "thresholds: free_min %s, free_reserved %s, paging_start %s, paging_target %s pages" % tuple(fields)
        if wanted not in sections["kbuddy"]:
            problems.append("kbuddy does not show '%s'" % wanted)
    for _, start, end in view_lines(serial, "map"):
        if not any(re.match(r"^  0x0*%s - 0x0*%s " % (start[2:], end[2:]), line) for line in sections["kmap"]):
            problems.append("kmap kmem does not show the entry %s - %s" % (start, end))
    if not any("-> submap kmem" in line for line in sections["kmapall"]):
        problems.append("kmap (kernel_map) does not show the kmem submap")
    for page, _, first, second in view_lines(serial, "page"):
        for address in (first, second):
            if not any(line.strip() == "0x%016x" % int(address, 16) for line in sections["kpage"]):
                problems.append("kpage %s does not list the mapping at %s" % (page, address))
        # The page-table walk must land on the page the kernel mapped, and show the same PVs.
        wanted = "virtual %#x -> physical %#x (4 KiB page)" % (int(second, 16), int(page, 16))
        if sections["kpagev"][:1] != [wanted] or sections["kpagev"][1:] != sections["kpage"]:
            problems.append("kpage -v %s does not show '%s' and then what kpage %s shows" % (second, wanted, page))
    uses = view_lines(serial, "use")
    if sorted(use for _, use in uses) != ["allocated", "anonymous", "slab", "wired"]:
        problems.append("the kernel's view of the four pages is not allocated, wired, slab and anonymous: %s" % uses)
    # The pageable page: kpage follows its word to its own descriptor (PageablePage).
    for address, descriptor, queue, offset in view_lines(serial, "pageable"):
        number = [use for _, use in uses].index("anonymous") if any(use == "anonymous" for _, use in uses) else None
        shown = [line for line in sections.get("kpageuse%d" % number, []) if line.startswith("  pageable descriptor ")] if number is not None else []
        wanted = "  pageable descriptor %#x: " % int(descriptor, 16)
        if not shown or not shown[0].startswith(wanted) or ("queue %s," % queue) not in shown[0] or not shown[0].endswith("offset %s" % offset):
            problems.append("kpage -v %s does not show its pageable descriptor %s (queue %s, offset %s): %s" % (address, descriptor, queue, offset, shown[:1]))
    for number, (address, use) in enumerate(uses):
        shown = [line for line in sections["kpageuse%d" % number] if line.startswith("  use ")]
        if not shown or not shown[0].startswith("  use %s, " % use):
            problems.append("kpage -v %s does not show use %s: %s" % (address, use, shown[:1]))
    direct = sections["kpagedirect"]
    if direct[:1] != ["virtual 0x400001000123 -> physical 0x1000123 (2 MiB page)"] \
            or not direct[1:2] or not direct[1].startswith("page 0x1000000: "):
        problems.append("kpage -v through the direct map does not find the 2 MiB page at 0x1000000: %s" % direct[:2])
    cpus = view_lines(serial, "cpu")
    if len(cpus) != 2 or len([line for line in sections["kcpus"] if line.startswith("cpu ")]) != len(cpus):
        problems.append("kcpus lists %d CPUs, the kernel %d (the boot has -smp 2)"
                        % (len([line for line in sections["kcpus"] if line.startswith("cpu ")]), len(cpus)))
    for fields in cpus:
        index, apic, running = fields[0], fields[1], fields[-1]
        state = " ".join(fields[2:-1])
        pattern = r"^cpu %s: APIC id %s, %s; running %s;" % (index, apic, re.escape(state),
                                                             "none" if running == "none" else r"thread %s \S+" % running)
        if not any(re.match(pattern, line) for line in sections["kcpus"]):
            problems.append("kcpus does not show cpu %s (APIC id %s, %s, running %s)" % (index, apic, state, running))
    for thread, name, state, cpu in view_lines(serial, "thread"):
        # The test runs in the running thread on cpu 0, which kthreads marks as current; an
        # AP's running thread (its idle thread, with -smp 2) is shown on its CPU, unmarked.
        mark = r"\*" if state == "running" and cpu == "0" else " "
        where = " on cpu %s$" % cpu if state == "running" else ""
        if not any(re.match(r"^%s thread %s %s: %s%s" % (mark, thread, re.escape(name), state, where), line) for line in sections["kthreads"]):
            problems.append("kthreads does not show thread %s %s %s (current: %s)" % (thread, name, state, mark == r"\*"))
    if not any(re.match(r"^  thread \d+ gdb-sleeper: sleeping in gdb test on channel 0x[0-9a-f]+ for \d+ ticks$", line)
               for line in sections["kthreads"]):
        problems.append("kthreads does not say exactly what gdb-sleeper waits for (a channel, nothing else)")
    markers = [" ".join(fields) for fields in view_lines(serial, "marker")]
    if not markers or not any(markers[0] in line for line in sections["klog"]):
        problems.append("klog does not contain the kernel's marker %s" % markers)
    if status != EXIT_SUCCESS:
        problems.append("kernel outcome after continuing: %s" % status_name(status))
    if problems:
        problems += ["gdb said:"] + ["    " + line for line in output.splitlines()[-40:]]
    return problems


def check_deadlock_threads(image, elf, log_dir):
    """kthreads on a kernel stopped in the reproduced deadlock says what the pageout thread
    waits for - the helpers need nothing from the kernel."""
    boot = Boot("gdb.deadlock", "test=deadlock.reservesOffDeadlocksThePageoutThread reserves=off seed=1",
                memory="24M", disk_mib=40, icount=True)
    output, serial, status = run_with_gdb(image, elf, boot, [
        "hbreak kernel_panic_entered",
        "continue",
        "echo ==kthreads==\\n", "kthreads",
        "echo ==kcpus==\\n", "kcpus",
        "echo ==kzones==\\n", "kzones",
        "continue",
    ], log_dir, timeout=600)
    problems = []
    if "==kthreads==" not in output:
        problems.append("gdb did not stop in the panic")
    if not re.search(r"thread \d+ pageout: sleeping in vm_wait for 1 ordinary-class page\(s\) while growing zone swblock", output):
        problems.append("kthreads does not show the pageout thread waiting in vm_wait to grow zone swblock")
    if "reserves=off: the reserve column is configured but not enforced" not in output:
        problems.append("kzones does not say that reserves are off")
    if "P watchdog: thread" not in serial:
        problems.append("the kernel did not print its own deadlock report")
    if problems:
        problems += ["gdb said:"] + ["    " + line for line in output.splitlines()[-20:]]
    return problems


CHECKS = [
    ("gdb.breakpoint-and-global", check_breakpoint_and_global),
    ("gdb.bad-magic", check_bad_magic),
    ("gdb.helpers", check_helpers),
    ("gdb.deadlock", check_deadlock_threads),
]
