"""Checks that drive the kernel through QEMU's gdb stub with gdb in batch mode.

Each check starts QEMU halted (-S) with its gdb stub on a free local port, runs gdb with a
list of commands, and asserts on what gdb printed and on the serial log.
"""
import os
import re
import socket
import subprocess
import time

from .qemu import Boot, EXIT_BOOT_FAILURE, EXIT_SUCCESS, qemu_command, status_name


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_with_gdb(image, elf, boot, commands, log_dir, timeout=120):
    """Returns (gdb output, serial output, QEMU status or None)."""
    port = free_port()
    serial_path = os.path.join(log_dir, boot.name + ".serial.log")
    command = qemu_command(image, boot, gdb_port=port, halted=True)
    command[command.index("stdio")] = "file:" + serial_path
    qemu = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.3)
    gdb = ["gdb", "-batch", "-nx", "-ex", "set architecture i386:x86-64", "-ex", "set pagination off",
           "-ex", "file " + elf, "-ex", "target remote 127.0.0.1:%d" % port]
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


CHECKS = [
    ("gdb.breakpoint-and-global", check_breakpoint_and_global),
    ("gdb.bad-magic", check_bad_magic),
]
