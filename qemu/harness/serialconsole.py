"""Talking to a running kernel over its serial line, as a person at the console would.

A boot with a `console` function (harness/qemu.py, Boot.console) runs QEMU with `-serial
stdio` as usual, but with its standard input a pipe: what the session types there arrives in
the guest's COM1 receive register. The guest's output still goes to the boot's log file, which
the session reads back as it grows. QEMU takes input from the pipe only as fast as the UART's
FIFO has room, so nothing typed is lost however fast it is written.

The session also starts QEMU's gdb stub (on a free local port), so that a check can stop the
kernel at any moment and read its tables with the gdb helpers (qemu/gdb/kernel_helpers.py),
then let it go on: `gdb(...)` attaches (QEMU stops the guest), runs the commands and detaches
(the guest resumes).

`command(...)` types a line at the monitor's prompt and returns what came back before the next
prompt: the echo line and the answer's lines. Every wait has a deadline, so a kernel that
stops answering fails the boot instead of hanging the run.
"""
import os
import re
import socket
import subprocess
import time


class SessionError(Exception):
    """The kernel did not answer as a session step needs (timeout, QEMU gone)."""


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SerialConsole:
    def __init__(self, process, log_path, elf, gdb_port, deadline, prompt):
        self.process = process
        self.log_path = log_path
        self.elf = elf
        self.gdb_port = gdb_port
        self.deadline = deadline
        self.prompt = prompt
        self.transcript = []        # (what was typed, echo, answer lines), for the log
        self.typed = 0              # bytes written to the serial line, all told

    def output(self):
        """Everything the kernel has written so far, with CR LF as LF (as BootResult has it)."""
        with open(self.log_path, "rb") as log:
            return log.read().decode("utf-8", "replace").replace("\r\n", "\n")

    def wait_until(self, predicate, what, timeout=None):
        """Polls the output until predicate(output) is true; returns its value."""
        limit = self.deadline if timeout is None else min(self.deadline, time.monotonic() + timeout)
        while True:
            output = self.output()
            value = predicate(output)
            if value:
                return value
            if self.process.poll() is not None:
                raise SessionError("QEMU exited (status %s) while waiting for %s" % (self.process.returncode, what))
            if time.monotonic() > limit:
                raise SessionError("timed out waiting for %s; the log ends with %r" % (what, output[-300:]))
            time.sleep(0.05)

    def wait_for(self, pattern, timeout=None, start=0):
        """The first match of the regular expression `pattern` in the output from `start` on."""
        regex = re.compile(pattern, re.MULTILINE)
        return self.wait_until(lambda output: regex.search(output, start), "/%s/" % pattern, timeout)

    def prompts(self, output=None):
        return (self.output() if output is None else output).count(self.prompt)

    def type(self, data):
        data = data.encode("latin-1") if isinstance(data, str) else data
        self.typed += len(data)
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def command(self, line, keys=None, timeout=60):
        """Types `keys` (default: `line` and Enter, as CR like a terminal sends it) at the
        prompt and waits for the next prompt. Returns (echo, answer lines): the echo is what
        the kernel wrote back on the prompt's line, backspaces and all; the answer is every
        line up to the next prompt."""
        before = self.prompts()
        if before == 0:
            raise SessionError("no prompt to type %r at" % line)
        self.type(keys if keys is not None else line + "\r")
        output = self.wait_until(lambda text: text if self.prompts(text) > before else None,
                                 "the prompt after %r" % line, timeout)
        starts = [match.start() for match in re.finditer(re.escape(self.prompt), output)]
        text = output[starts[before - 1] + len(self.prompt):starts[before]]
        echo, _, answer = text.partition("\n")
        lines = answer.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        self.transcript.append((line, echo, lines))
        return echo, lines

    def gdb(self, commands, timeout=60):
        """Stops the kernel under gdb, runs `commands` with the kernel helpers loaded, lets it
        go on, and returns gdb's output."""
        helpers = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gdb", "kernel_helpers.py")
        command = ["gdb", "-batch", "-nx", "-ex", "set architecture i386:x86-64", "-ex", "set pagination off",
                   "-ex", "source " + helpers, "-ex", "file " + self.elf,
                   "-ex", "target remote 127.0.0.1:%d" % self.gdb_port]
        for line in commands:
            command += ["-ex", line]
        command += ["-ex", "detach"]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SessionError("gdb timed out running %s" % commands)
        self.transcript.append(("gdb: " + "; ".join(commands), "", result.stdout.splitlines()))
        return result.stdout

    def write_transcript(self, path):
        with open(path, "w") as out:
            for typed, echo, lines in self.transcript:
                out.write(">>> %s\n" % typed)
                if echo:
                    out.write("echo: %r\n" % echo)
                for line in lines:
                    out.write(line + "\n")


def sections(gdb_output):
    """gdb output cut at `==name==` marker lines (echoed by the commands) into {name: lines}."""
    found, current = {}, None
    for line in gdb_output.splitlines():
        marker = re.match(r"^==(\S+)==$", line)
        if marker:
            current = marker.group(1)
            found[current] = []
        elif current and not line.startswith("[Inferior "):    # gdb's own note on detaching
            found[current].append(line)
    return found
