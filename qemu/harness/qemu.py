"""Starting QEMU for one boot of the kernel and collecting what it printed.

Every boot uses TCG (deterministic, always available), the isa-debug-exit device through
which the kernel reports its outcome, -no-reboot so a triple fault ends the run, and a
timeout that turns a hang into a failure. The exit statuses mirror
kernel/Arch/x86_64/QEMUExit.swift.
"""
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field

from . import image

EXIT_SUCCESS = 33
EXIT_TEST_FAILURE = 35
EXIT_PANIC = 37
EXIT_BOOT_FAILURE = 39
EXIT_DEADLOCK = 41
# Not a QEMU status: the runner did not start QEMU, because the machine's memory cannot hold
# the boot stub (harness/image.py).
NOT_STARTED = -1
# Not a QEMU status either: a boot through GRUB whose ISO could not be built (harness/grub.py).
ISO_NOT_BUILT = -2

STATUS_NAMES = {
    EXIT_SUCCESS: "success",
    EXIT_TEST_FAILURE: "test failure",
    EXIT_PANIC: "panic",
    EXIT_BOOT_FAILURE: "boot failure (boot stub, or command-line errors)",
    EXIT_DEADLOCK: "deadlock watchdog",
    NOT_STARTED: "not started: the machine's memory cannot hold the kernel image",
    ISO_NOT_BUILT: "not started: the GRUB ISO could not be built",
    0: "QEMU exited without a status from the kernel (triple fault?)",
}


def status_name(status):
    if status is None:
        return "timeout (hang)"
    return STATUS_NAMES.get(status, "QEMU status %d" % status)


@dataclass
class Boot:
    """One QEMU run: what to boot and with what."""
    name: str
    arguments: str
    memory: str = "128M"
    timeout: float = 120.0
    disk_mib: int = 0
    icount: bool = False
    cpus: int = 1           # QEMU -smp
    extra_qemu: list = field(default_factory=list)
    # A GRUB ISO to boot instead of QEMU's -kernel loader; its menu holds the command line
    # (`arguments` is then only what the ISO was built with, for the record).
    iso: str = ""


@dataclass
class BootResult:
    boot: Boot
    status: object          # int, or None on timeout
    output: str
    seconds: float
    log_path: str


def qemu_command(image, boot, disk_path=None, gdb_port=None, halted=False):
    command = [
        "qemu-system-x86_64", "-accel", "tcg", "-cpu", "qemu64", "-m", boot.memory,
        "-display", "none", "-no-reboot", "-serial", "stdio", "-monitor", "none",
        "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
    ]
    if boot.iso:
        command += ["-cdrom", boot.iso, "-boot", "d"]
    else:
        command += ["-kernel", image, "-append", boot.arguments]
    if boot.icount:
        command += ["-icount", "shift=0,sleep=off"]
    if boot.cpus > 1:
        command += ["-smp", str(boot.cpus)]
    if disk_path:
        command += ["-drive", "file=%s,format=raw,if=ide,index=0,media=disk,cache=unsafe" % disk_path]
    if gdb_port is not None:
        command += ["-gdb", "tcp:127.0.0.1:%d" % gdb_port]
    if halted:
        command += ["-S"]
    return command + list(boot.extra_qemu)


def make_disk(path, mib):
    """A fresh, sparse, zero-filled raw disk image of `mib` MiB."""
    with open(path, "wb") as disk:
        disk.truncate(mib * 1024 * 1024)
    return path


def run_boot(image_path, boot, log_dir, gdb_port=None):
    """Boots once and returns the result; never raises for kernel misbehaviour.

    With gdb_port, QEMU also listens for gdb there (the CPU runs; attach whenever) and the
    timeout is off, so a hang waits for the person debugging it instead of being killed."""
    os.makedirs(log_dir, exist_ok=True)
    safe = boot.name.replace("/", "_").replace(" ", "_")
    log_path = os.path.join(log_dir, safe + ".log")
    refusal = image.refusal(image_path, boot.memory)
    if refusal:
        with open(log_path, "w") as log:
            log.write(refusal + "\n")
        return BootResult(boot, NOT_STARTED, refusal + "\n", 0.0, log_path)
    disk_path = None
    if boot.disk_mib:
        disk_path = make_disk(os.path.join(log_dir, safe + ".disk"), boot.disk_mib)
    command = qemu_command(image_path, boot, disk_path, gdb_port=gdb_port)
    started = time.monotonic()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if gdb_port is not None:
            print("      %s: serial in %s; attach with `make attach GDB_PORT=%d`" % (boot.name, log_path, gdb_port),
                  flush=True)
        try:
            status = process.wait(timeout=None if gdb_port is not None else boot.timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            status = None
    seconds = time.monotonic() - started
    if disk_path:
        os.unlink(disk_path)
    with open(log_path, "rb") as log:
        output = log.read().decode("utf-8", "replace").replace("\r\n", "\n")
    return BootResult(boot, status, output, seconds, log_path)


def require_qemu():
    for program in ("qemu-system-x86_64", "gdb"):
        if shutil.which(program) is None:
            raise SystemExit("%s not found: run `make qemu` (or sh qemu/ensure-packages.sh qemu-system-x86_64:qemu-system-x86 gdb:gdb)" % program)
