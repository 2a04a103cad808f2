"""The boot through GRUB 2: a suite booted from a GRUB rescue ISO instead of QEMU's -kernel.

QEMU's loader puts the image path before the options, GRUB 2 does not; the kernel tells them
apart by the loader's name (kernel/Lib/BootLoader.swift). This boot proves the GRUB side: the
ISO (qemu/make-iso.sh) passes `test=boot seed=N`, with the suite selection first, so a kernel
that skipped the first word would run no test and fail here. When the ISO cannot be built (the
GRUB tools are missing) the boot fails with make-iso.sh's message, which names the package to
install: it is never skipped.
"""
import os
import subprocess

from . import judge
from .qemu import BootResult, Boot, ISO_NOT_BUILT, run_boot
from .scenarios import expect_lines

SUITE = "boot"
MAKE_ISO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "make-iso.sh")


def build_iso(image, arguments, iso):
    """Builds the ISO; returns None, or what make-iso.sh said when it failed."""
    done = subprocess.run(["sh", MAKE_ISO, image, arguments, iso], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        return done.stdout.decode("utf-8", "replace") or "make-iso.sh failed with status %d" % done.returncode
    return None


def job(image, elf, logs, seed, suite):
    """(name, run, judge, planned boot) for the runner (no planned boot: it is not a necessity cell): boots `suite` through GRUB at 128M, as `make run-iso` does."""
    memory = "128M"
    arguments = "test=%s seed=%d" % (suite.name, seed)
    boot = Boot("grub.%s@%s" % (suite.name, memory), arguments, memory=memory, timeout=suite.timeout,
                iso=os.path.join(logs, "grub.%s.iso" % suite.name))

    def run():
        problem = build_iso(image, arguments, boot.iso)
        if problem is not None:
            log_path = os.path.join(logs, boot.name + ".log")
            with open(log_path, "w") as log:
                log.write(problem)
            return BootResult(boot, ISO_NOT_BUILT, problem, 0.0, log_path)
        result = run_boot(image, boot, logs)
        os.unlink(boot.iso)
        return result

    def check(result):
        if result.status == ISO_NOT_BUILT:
            return ["the GRUB ISO could not be built:"] + ["    " + line for line in result.output.strip().splitlines()]
        return judge.judge_suite(result, suite, elf) + expect_lines(result.output, [
            r"^I boot: boot loader: 'GRUB ",
            r"^I cmdline: command line: '%s'$" % arguments,
        ])

    return boot.name, run, check, None
