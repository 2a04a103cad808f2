// QEMUExit.swift - ending the run: QEMU's isa-debug-exit device.
//
// QEMU is started with `-device isa-debug-exit,iobase=0xf4,iosize=0x04`; writing a value v to
// that port makes QEMU exit with status (v << 1) | 1. Status 0 and 1 are QEMU's own, so every
// kernel outcome has its own odd status above them. The host runner (qemu/runner.py) knows
// these numbers; keep the two in step.

enum ExitStatus: UInt8 {
    /// Everything that ran passed. QEMU exits with 33.
    case success = 0x10
    /// At least one test failed. QEMU exits with 35.
    case testFailure = 0x11
    /// The kernel panicked. QEMU exits with 37.
    case panic = 0x12
    /// The boot could not go on: the boot stub failed (boot/multiboot.S: bad magic, no long
    /// mode, too little memory) or the command line had errors (KernelOptions). QEMU exits with 39.
    case bootFailure = 0x13
    /// The deadlock watchdog fired. QEMU exits with 41.
    case deadlock = 0x14
}

enum QEMU {
    static let debugExitPort = IOPort(0xF4)

    /// Asks QEMU to exit with `status`; halts if the device is missing (a real machine).
    static func exit(_ status: ExitStatus) -> Never {
        debugExitPort.write32(UInt32(status.rawValue))
        CPU.haltForever()
    }
}
