// Disk.swift - the swap disk, whichever driver runs it: virtio-blk, AHCI or ATA PIO.
//
// Three drivers can hold the swap disk (docs/io.md): virtio-blk (kernel/Drivers/VirtioBlock.swift)
// and AHCI (kernel/Drivers/AHCIDisk.swift) move data by DMA and complete by interrupt; the ATA
// driver (kernel/Drivers/ATADisk.swift) moves it by programmed I/O, polling - the fallback for a
// machine with neither. `probe` takes the one the `swapdev=` option names, or with `auto` the
// first present of virtio, AHCI, ATA, and says which; every transfer then goes through `read`
// and `write` here, which check the range, apply the injected faults (`diskfault=`, Portable/
// DiskFaultPlan.swift) and dispatch on `kind`. A driver returns its errors as a DiskError; this
// layer logs nothing about them - the swap layer does, with the block number.
//
// Waiting for a DMA transfer (`DiskCompletion`): the thread that issued it sleeps on the
// request's channel and the device's interrupt wakes it; it sleeps in a loop that re-checks the
// completion flag, so a wakeup for some other reason sends it back to sleep. A caller that may
// not sleep (interrupts or preemption off) polls the device instead. While a thread waits for a
// transfer the idle thread spins rather than halts (Scheduler.transfersAwaited says why).

extension LogTag {
    static let disk = LogTag("disk")
}

/// What went wrong with a transfer: a phrase, and the device's status bits when it gave any.
struct DiskError {
    let what: StaticString
    let status: UInt32
}

/// The drivers that can hold the swap disk.
enum DiskKind: Int {
    case virtio
    case ahci
    case ata

    /// Whether a transfer ends in an interrupt while the thread that issued it sleeps (DMA
    /// drivers), rather than with the issuing thread polling, keeping the CPU (ATA PIO).
    var completesByInterrupt: Bool { self != .ata }

    var name: StaticString {
        switch self {
        case .virtio: return "virtio-blk"
        case .ahci: return "ahci"
        case .ata: return "ata"
        }
    }
}

/// The `swapdev=` option: a driver, or `auto` (the first present of virtio, AHCI, ATA).
enum SwapDeviceChoice: Int {
    case auto
    case virtio
    case ahci
    case ata

    var name: StaticString {
        switch self {
        case .auto: return "auto"
        case .virtio: return "virtio"
        case .ahci: return "ahci"
        case .ata: return "ata"
        }
    }
}

enum Disk {
    static let sectorBytes = 512
    static var kind: DiskKind? = nil
    static var sectors: UInt64 = 0
    static var choice = SwapDeviceChoice.auto
    /// diskfault=: the operations that fail on purpose. Counted with interrupts off.
    static var faults = DiskFaultPlan()
    static var injectedFaults: UInt64 = 0

    static var isPresent: Bool { kind != nil }

    /// Finds the disk `choice` asks for. With `auto`, the first present of virtio, AHCI and
    /// ATA; with a named driver, that one only. Nil when there is none; `refusal` then says
    /// why, for a boot that asked for a particular driver.
    static func probe() -> DiskKind? {
        let order: [DiskKind]
        switch choice {
        case .auto: order = [.virtio, .ahci, .ata]
        case .virtio: order = [.virtio]
        case .ahci: order = [.ahci]
        case .ata: order = [.ata]
        }
        for candidate in order where probe(candidate) {
            kind = candidate
            return candidate
        }
        return nil
    }

    private static func probe(_ candidate: DiskKind) -> Bool {
        switch candidate {
        case .virtio:
            guard VirtioBlock.probe() else { return false }
            sectors = VirtioBlock.sectors
        case .ahci:
            guard AHCIDisk.probe() else { return false }
            sectors = AHCIDisk.sectors
        case .ata:
            guard ATADisk.probe() else { return false }
            sectors = ATADisk.sectors
        }
        return true
    }

    /// What the disk is, for the boot log: "virtio-blk at 0:4.0, irq 11, queue of 256".
    static func describe() -> LogMessage {
        switch kind {
        case .virtio?: return VirtioBlock.description
        case .ahci?: return AHCIDisk.description
        case .ata?: return "ata: primary channel, master, \(ATADisk.supportsLBA48 ? "LBA48" as StaticString : "LBA28"), PIO, polled"
        case nil: return "none"
        }
    }

    static func logStatistics() {
        guard let kind = kind else { return }
        Log.info(.disk, "\(kind.name): \(DiskCompletion.byInterrupt) requests completed by interrupt, \(DiskCompletion.byPolling) by polling; \(injectedFaults) faults injected")
    }

    // MARK: - Transfers

    /// The most pages one request moves: what a page-out cluster may be (FreeBSD clusters up
    /// to 16 pages too). The DMA drivers size their descriptor lists from it; ATA PIO takes up
    /// to 256 sectors (32 pages) a command.
    static let maximumTransferPages = 16

    /// Reads `count` sectors from `firstSector` into `buffer`.
    static func read(_ firstSector: UInt64, _ count: Int, into buffer: UnsafeMutableRawPointer) -> DiskError? {
        transfer(.read, firstSector, count, buffer)
    }

    /// Writes `count` sectors from `buffer` to `firstSector`.
    static func write(_ firstSector: UInt64, _ count: Int, from buffer: UnsafeMutableRawPointer) -> DiskError? {
        transfer(.write, firstSector, count, buffer)
    }

    // MARK: - Writes in flight

    /// Request slots a driver keeps for writes that complete while their issuer goes on
    /// (virtio-blk: each its own descriptor chain, header and status byte; AHCI: a command
    /// slot and table each). 0 for a driver that only waits for each transfer (ATA PIO): the
    /// pageout thread then writes as before, one request at a time (docs/io.md,
    /// "Asynchronous page-out").
    static var writeSlotsInFlight: Int {
        switch kind {
        case .virtio?: return VirtioBlock.broken ? 0 : VirtioBlock.asyncSlots
        case .ahci?: return AHCIDisk.broken ? 0 : AHCIDisk.asyncSlots
        default: return 0
        }
    }

    /// Starts writing `count` whole pages - `pages`, by physical address, no mapping needed -
    /// to the sectors from `firstSector`, in request slot `slot` (1 ... writeSlotsInFlight),
    /// and returns without waiting: the driver reports the end through
    /// `PageoutRequests.deviceFinished(slot:error:)`, from its interrupt handler (or from a
    /// poll). An error returned here means the device was not given the request and nothing
    /// will be reported for it. An injected fault (`diskfault=`) still goes to the device and
    /// fails at its completion, so that the error arrives where a real one would.
    static func startWrite(slot: Int, _ firstSector: UInt64, pages: UnsafePointer<PageIndex>, count: Int) -> DiskError? {
        guard let kind = kind else { return DiskError(what: "no disk", status: 0) }
        let sectorCount = count * SwapDevice.sectorsPerBlock
        guard count >= 1 && count <= maximumTransferPages, firstSector + UInt64(sectorCount) <= sectors else {
            return DiskError(what: "sector range outside the disk", status: 0)
        }
        let injected: Bool = withInterruptsDisabled { faults.isActive && faults.shouldFail(.write) }
        if injected {
            countEvent(&injectedFaults)
            Log.warn(.disk, "diskfault: write number \(faults.writes) (sectors \(firstSector)+\(sectorCount)) will fail at its completion, on purpose")
        }
        switch kind {
        case .virtio: return VirtioBlock.startWrite(slot: slot, firstSector, pages: pages, count: count, failing: injected)
        case .ahci: return AHCIDisk.startWrite(slot: slot, firstSector, pages: pages, count: count, failing: injected)
        case .ata: return DiskError(what: "this driver has no request slots for writes in flight", status: 0)
        }
    }

    /// Collects the ends of writes in flight from the device, for a thread that waits for one
    /// and cannot sleep. Interrupts off.
    static func pollWrites() {
        switch kind {
        case .virtio?: VirtioBlock.collectCompletions()
        case .ahci?: AHCIDisk.collect()
        default: break
        }
    }

    private static func transfer(_ operation: DiskOperation, _ firstSector: UInt64, _ count: Int, _ buffer: UnsafeMutableRawPointer) -> DiskError? {
        guard let kind = kind else { return DiskError(what: "no disk", status: 0) }
        guard count > 0 && count <= 256, firstSector + UInt64(count) <= sectors else {
            return DiskError(what: "sector range outside the disk", status: 0)
        }
        let injected: Bool = withInterruptsDisabled { faults.isActive && faults.shouldFail(operation) }
        if injected {
            countEvent(&injectedFaults)
            Log.warn(.disk, "diskfault: failing \(operation.name) number \(operation == .write ? faults.writes : faults.reads) (sectors \(firstSector)+\(count)) on purpose")
            return DiskError(what: "injected fault (diskfault=)", status: 0)
        }
        switch kind {
        case .virtio: return VirtioBlock.transfer(operation, firstSector, count, buffer)
        case .ahci: return AHCIDisk.transfer(operation, firstSector, count, buffer)
        case .ata:
            let failure = operation == .write ? ATADisk.write(firstSector, count, from: buffer) : ATADisk.read(firstSector, count, into: buffer)
            return failure.map { DiskError(what: $0.what, status: UInt32($0.status) | UInt32($0.error) << 8) }
        }
    }
}

/// Waiting for one DMA request: sleep until the interrupt handler says it is complete, or poll
/// when the caller cannot sleep. The driver keeps one of these per request slot.
struct DiskCompletion {
    /// Set by the interrupt handler (or the poller), interrupts off; read with interrupts off.
    var complete = false
    /// Requests completed by the interrupt and by polling: the tests and docs/io.md quote them.
    static var byInterrupt: UInt64 = 0
    static var byPolling: UInt64 = 0
    /// Guest time a request may take before the device is given up (and the swap layer told).
    static let timeoutTicks = 30 * Timer.hertz

    /// True when the calling thread may sleep for its I/O.
    static var callerMaySleep: Bool {
        Scheduler.started && CPU.interruptsEnabled && Scheduler.current != Scheduler.idle
            && Scheduler.current.pointee.preemptDisableCount == 0
    }
}

extension UnsafeMutablePointer where Pointee == DiskCompletion {
    /// Issues a request with `submit` and waits until it completes; false when it did not
    /// within the timeout. `submit` runs with interrupts off, after `complete` is cleared, so
    /// that the interrupt cannot come before the waiter looks. `poll` collects completions
    /// from the device (interrupts off): used when the caller cannot sleep.
    func issueAndWait(_ reason: StaticString, submit: () -> Void, poll: () -> Void) -> Bool {
        let sleeping = DiskCompletion.callerMaySleep
        return withInterruptsDisabled {
            pointee.complete = false
            submit()
            let deadline = Timer.ticks + DiskCompletion.timeoutTicks
            if sleeping {
                // Re-validated after every wakeup: a timed sleep's expiry, or a wakeup meant for
                // the same channel, returns here with the request still in flight.
                Scheduler.transfersAwaited += 1
                while !pointee.complete && Timer.ticks < deadline {
                    Scheduler.sleep(on: UnsafeRawPointer(self), reason: reason, untilTick: deadline)
                }
                Scheduler.transfersAwaited -= 1
                if pointee.complete { DiskCompletion.byInterrupt &+= 1 }
                return pointee.complete
            }
            // Interrupts stay off while polling (the caller had them off, or cannot be switched
            // away from), so the timer does not run: bound the polls instead.
            var polls = 0
            while !pointee.complete && polls < 200_000_000 {
                poll()
                CPU.pause()
                polls += 1
            }
            if pointee.complete { DiskCompletion.byPolling &+= 1 }
            return pointee.complete
        }
    }

    /// Marks the request complete and wakes its waiter. Interrupts off.
    func finish() {
        pointee.complete = true
        Scheduler.wakeup(UnsafeRawPointer(self))
    }
}
