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

from . import image, serialconsole

# The swap disk's interface and the machine, for boots that do not choose (the runner's --disk
# and --machine set these). virtio: a virtio-blk-pci disk (the kernel drives its legacy
# interface); ide: the primary IDE channel (pc only: q35 has no IDE controller); ahci: a SATA
# disk on an AHCI controller (q35's own; on pc one is added). docs/io.md.
DISKS = ("virtio", "ide", "ahci")
MACHINES = ("pc", "q35")
DEFAULTS = {"disk": "virtio", "machine": "pc"}

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
    extra_qemu: list = field(default_factory=list)
    # A GRUB ISO to boot instead of QEMU's -kernel loader; its menu holds the command line
    # (`arguments` is then only what the ISO was built with, for the record).
    iso: str = ""
    # An interactive boot: a function called with a SerialConsole (harness/serialconsole.py)
    # while QEMU runs, which types on the kernel's serial line and reads its answers; it may
    # return a dict of findings, kept in BootResult.notes for the check.
    console: object = None
    # The prompt the console waits for between commands.
    prompt: str = "monitor> "
    # The swap disk's interface and the machine type; "" takes DEFAULTS.
    disk: str = ""
    machine: str = ""

    @property
    def disk_interface(self):
        return self.disk or DEFAULTS["disk"]

    @property
    def machine_type(self):
        return self.machine or DEFAULTS["machine"]


def disk_options(disk, machine, path):
    """QEMU options attaching the raw image `path` as the swap disk over `disk` on `machine`,
    and the kernel option that makes the kernel use exactly that driver (any other would be a
    boot failure, not a silent fallback)."""
    drive = "file=%s,format=raw,cache=unsafe" % path
    if disk == "virtio":
        return ["-drive", drive + ",if=none,id=swap", "-device", "virtio-blk-pci,drive=swap"], "swapdev=virtio"
    if disk == "ide":
        if machine == "q35":
            raise ValueError("q35 has no IDE controller: its if=ide disks go to AHCI; use --disk ahci")
        return ["-drive", drive + ",if=ide,index=0,media=disk"], "swapdev=ata"
    if disk == "ahci":
        if machine == "q35":
            return ["-drive", drive + ",if=ide,index=0,media=disk"], "swapdev=ahci"
        return ["-device", "ahci,id=ahci", "-drive", drive + ",if=none,id=swap", "-device", "ide-hd,drive=swap,bus=ahci.0"], "swapdev=ahci"
    raise ValueError("unknown disk interface %r (known: %s)" % (disk, ", ".join(DISKS)))


@dataclass
class BootResult:
    boot: Boot
    status: object          # int, or None on timeout
    output: str
    seconds: float
    log_path: str
    # What an interactive boot's console function found (Boot.console); "problems" holds
    # what went wrong in the session itself (a timeout, QEMU gone).
    notes: dict = field(default_factory=dict)


def qemu_command(image, boot, disk_path=None, gdb_port=None, halted=False):
    machine = boot.machine_type
    if machine not in MACHINES:
        raise ValueError("unknown machine %r (known: %s)" % (machine, ", ".join(MACHINES)))
    command = [
        "qemu-system-x86_64", "-machine", machine, "-accel", "tcg", "-cpu", "qemu64", "-m", boot.memory,
        "-display", "none", "-no-reboot", "-serial", "stdio", "-monitor", "none",
        "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
    ]
    disk, swapdev = disk_options(boot.disk_interface, machine, disk_path) if disk_path else ([], "")
    arguments = boot.arguments
    if swapdev and "swapdev=" not in arguments:
        arguments = (arguments + " " + swapdev).strip()
    if boot.iso:
        command += ["-cdrom", boot.iso, "-boot", "d"]
    else:
        command += ["-kernel", image, "-append", arguments]
    if boot.icount:
        command += ["-icount", "shift=0,sleep=off"]
    command += disk
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


def run_boot(image_path, boot, log_dir, gdb_port=None, elf=None):
    """Boots once and returns the result; never raises for kernel misbehaviour.

    With gdb_port, QEMU also listens for gdb there (the CPU runs; attach whenever) and the
    timeout is off, so a hang waits for the person debugging it instead of being killed.
    An interactive boot (boot.console) gets its own gdb port, and `elf` for gdb's symbols."""
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
    interactive = boot.console is not None
    if interactive and gdb_port is None:
        gdb_port = serialconsole.free_port()
    command = qemu_command(image_path, boot, disk_path, gdb_port=gdb_port)
    started = time.monotonic()
    notes = {}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.PIPE if interactive else subprocess.DEVNULL)
        if gdb_port is not None and not interactive:
            print("      %s: serial in %s; attach with `make attach GDB_PORT=%d`" % (boot.name, log_path, gdb_port),
                  flush=True)
        if interactive:
            notes = run_console(boot, process, log_path, elf, gdb_port, started)
        try:
            remaining = max(1.0, boot.timeout - (time.monotonic() - started))
            status = process.wait(timeout=None if gdb_port is not None and not interactive else remaining)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            status = None
        if interactive:
            process.stdin.close()
    seconds = time.monotonic() - started
    if disk_path:
        os.unlink(disk_path)
    with open(log_path, "rb") as log:
        output = log.read().decode("utf-8", "replace").replace("\r\n", "\n")
    return BootResult(boot, status, output, seconds, log_path, notes)


def run_console(boot, process, log_path, elf, gdb_port, started):
    """Runs the boot's console function; a session that fails kills QEMU and says why."""
    session = serialconsole.SerialConsole(process, log_path, elf or "build/kernel.elf", gdb_port,
                                          started + boot.timeout, boot.prompt)
    notes = {"problems": []}
    try:
        notes.update(boot.console(session) or {})
    except serialconsole.SessionError as error:
        notes["problems"].append("console session: %s" % error)
        process.kill()
    finally:
        session.write_transcript(os.path.splitext(log_path)[0] + ".session.log")
    return notes


def require_qemu():
    for program in ("qemu-system-x86_64", "gdb"):
        if shutil.which(program) is None:
            raise SystemExit("%s not found: run `make qemu` (or sh qemu/ensure-packages.sh qemu-system-x86_64:qemu-system-x86 gdb:gdb)" % program)
