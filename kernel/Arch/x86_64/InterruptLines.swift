// InterruptLines.swift - device interrupt lines (IRQs), whichever controller delivers them.
//
// Two controllers can bring a device's interrupt to the CPU:
//   - the two 8259 PICs (PIC.swift): IRQ n arrives on vector 32 + n through the boot CPU's
//     LINT0 (ExtINT) and is acknowledged at the PICs. What the kernel starts with, and what a
//     machine without an I/O APIC - or a boot with irqchip=pic - keeps;
//   - the I/O APIC (IOAPIC.swift): IRQ n is the global interrupt the firmware's overrides name
//     (on PCs the PIT's IRQ 0 arrives on input 2), routed to the same vector 32 + n on the boot
//     CPU, and acknowledged at the local APIC. The APIC system is the one that can deliver to
//     any CPU (issue 19); `switchToIOAPIC` moves every line there once the boot CPU's local
//     APIC is on (SMP.start), masking the PICs.
// Drivers call only `enable` and `endOfInterrupt`; a line enabled before the switch is routed
// by it. Each line says how it signals: ISA lines (the PIT, the UART) are edge-triggered, a PCI
// device's INTx is a level held until the device is served. The firmware's override for the
// IRQ, when it has one, says the polarity and trigger mode; without one an ISA line is edge and
// active high (ACPI's "conforms to the bus"), and a PCI line level and active high - QEMU's
// PCI-to-ISA router (PIIX on pc, ICH9 on q35) drives the ISA input high while the device
// asserts INTx, and on pc the MADT says so for IRQs 5, 9, 10 and 11.
//
// Vectors: 32 + IRQ in both modes, so handlers are registered once. Lines are enabled at boot
// with interrupts off, and switched once; `enabled` is written only then.
//
// Which CPU: every line is routed to the boot CPU first. Once the APs are online,
// `spreadOverCPUs` (irqroute=spread; the default is boot, see `routing`) gives each enabled device line but the PIT's
// its own CPU in turn, the APs first and the PCI lines first (with 2 CPUs: the disk's IRQ 11 to
// cpu 1, the UART's IRQ 4 to cpu 0), so that a disk's completions do not queue behind the boot
// CPU's work. The I/O APIC only: the 8259s
// reach the boot CPU alone. A handler on an AP runs like one on the boot CPU, under the kernel
// lock; an AP parked in its idle halt first becomes active and flushes (Interrupts.swift).

/// The `irqroute=` option: where device lines go once the APs are up.
enum InterruptRouting: Int {
    /// Each enabled device line but the PIT's to its own CPU, the APs first.
    case spread
    /// Every line stays on the boot CPU.
    case boot
}

/// The bus an interrupt line comes from, which says how it signals when the firmware is silent.
enum InterruptLineBus {
    case isa
    case pci
}

enum InterruptControllerKind: Int {
    case pic
    case ioAPIC

    var name: StaticString {
        switch self {
        case .pic: return "8259 PICs"
        case .ioAPIC: return "I/O APIC"
        }
    }
}

/// The `irqchip=` option.
enum InterruptControllerChoice: Int {
    /// The I/O APIC when the firmware lists one and the CPU has a local APIC; else the PICs.
    case auto
    case pic
    case ioAPIC
}

enum InterruptLines {
    static let lineCount = 16
    static var controller = InterruptControllerKind.pic
    static var choice = InterruptControllerChoice.auto
    /// The lines enabled so far, and their buses (bit n: IRQ n).
    static var enabled: UInt16 = 0
    static var pciLines: UInt16 = 0
    /// `boot` by default: with device lines on an AP, 2-CPU icount boots of the stress suites
    /// at 77M under host load reported the AP as taking no interrupt for 2 s (a hard lockup),
    /// which the same boots with irqroute=boot never did (docs/smp.md); not yet understood.
    static var routing = InterruptRouting.boot
    /// Each line's destination CPU, by its per-CPU index (0: the boot CPU), in APIC mode.
    private static var destinations = (UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0),
                                       UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0))

    /// The per-CPU index of the CPU IRQ `irq` is routed to (always 0 on the 8259s).
    static func destination(of irq: Int) -> Int {
        guard controller == .ioAPIC else { return 0 }
        return assignedCPU(of: irq)
    }

    /// The CPU recorded for IRQ `irq`, whichever controller delivers it now: `route` programs
    /// the I/O APIC with it before the switch to APIC mode, when `destination(of:)` says 0.
    private static func assignedCPU(of irq: Int) -> Int {
        withUnsafeBytes(of: &destinations) { Int($0[irq]) }
    }

    /// Gives each enabled line but IRQ 0 a CPU of its own, the APs first (see the top of the
    /// file). Boot CPU, after SMP.start has brought the APs online; nothing to do with one CPU,
    /// on the 8259s or with irqroute=boot.
    static func spreadOverCPUs() {
        guard controller == .ioAPIC && SMP.onlineCount > 1 else { return }
        guard routing == .spread else {
            Log.info(.cpu, "interrupts: device lines stay on the boot CPU (irqroute=boot)")
            return
        }
        var online: [Int] = []
        SMP.forEachOnlineAP { online.append($0.pointee.index) }
        online.append(0)
        var next = 0
        withInterruptsDisabled {
            for pass in 0..<2 {
                for irq in 1..<lineCount where enabled & (1 << UInt16(irq)) != 0 && (pciLines & (1 << UInt16(irq)) != 0) == (pass == 0) {
                    let cpu = online[next % online.count]
                    next += 1
                    withUnsafeMutableBytes(of: &destinations) { $0[irq] = UInt8(cpu) }
                    _ = route(irq, masked: false)
                }
            }
        }
        for irq in 1..<lineCount where enabled & (1 << UInt16(irq)) != 0 {
            let cpu = PerCPU.area(destination(of: irq))
            Log.info(.cpu, "interrupts: IRQ \(irq) -> cpu \(cpu.pointee.index) (APIC id \(cpu.pointee.apicID))")
        }
    }

    /// Routes IRQ `irq` to `handler` on vector 32 + irq and unmasks it at the current controller.
    static func enable(irq: Int, _ bus: InterruptLineBus, _ handler: @escaping InterruptHandler) {
        kassert(irq >= 0 && irq < lineCount, "interrupt line \(irq) is not an IRQ 0-15")
        Interrupts.register(vector: PIC.vectorBase + irq, handler)
        withInterruptsDisabled {
            enabled |= 1 << UInt16(irq)
            if bus == .pci { pciLines |= 1 << UInt16(irq) }
            switch controller {
            case .pic: PIC.unmask(irq: irq)
            case .ioAPIC: _ = route(irq, masked: false)
            }
        }
    }

    /// Masks IRQ `irq` at the current controller and forgets it (its handler stays registered):
    /// the PIT's line once the boot CPU's tick moved to its APIC timer.
    static func disable(irq: Int) {
        kassert(irq >= 0 && irq < lineCount, "interrupt line \(irq) is not an IRQ 0-15")
        withInterruptsDisabled {
            enabled &= ~(1 << UInt16(irq))
            switch controller {
            case .pic: PIC.mask(irq: irq)
            case .ioAPIC: _ = route(irq, masked: true)
            }
        }
    }

    /// Acknowledges IRQ `irq` at the controller that delivered it. In the handler, interrupts off.
    @inline(__always)
    static func endOfInterrupt(irq: Int) {
        switch controller {
        case .pic: PIC.endOfInterrupt(irq: irq)
        case .ioAPIC: LocalAPIC.endOfInterrupt()
        }
    }

    /// The global interrupt, trigger mode and polarity of IRQ `irq` in APIC mode.
    static func wiring(of irq: Int) -> (gsi: UInt32, trigger: TriggerMode, polarity: Polarity) {
        let isPCI = pciLines & (1 << UInt16(irq)) != 0
        var gsi = UInt32(irq)
        var trigger: TriggerMode = isPCI ? .level : .edge
        var polarity = Polarity.activeHigh
        if let override = Machine.topology?.overrides.first(where: { Int($0.source) == irq }) {
            gsi = override.globalInterrupt
            // MPS INTI flags: bits 0-1 polarity (01 high, 11 low), bits 2-3 trigger (01 edge,
            // 11 level); 00 conforms to the bus, which keeps the defaults above.
            switch override.flags & 0x3 {
            case 1: polarity = .activeHigh
            case 3: polarity = .activeLow
            default: break
            }
            switch (override.flags >> 2) & 0x3 {
            case 1: trigger = .edge
            case 3: trigger = .level
            default: break
            }
        }
        return (gsi, trigger, polarity)
    }

    /// Programs IRQ `irq`'s I/O APIC entry for its destination CPU (the boot CPU until
    /// `spreadOverCPUs`). False when no I/O APIC has its input.
    private static func route(_ irq: Int, masked: Bool) -> Bool {
        let wire = wiring(of: irq)
        guard let unit = IOAPIC.unit(for: wire.gsi) else {
            Log.error(.cpu, "interrupts: IRQ \(irq) arrives on global interrupt \(wire.gsi), which no I/O APIC has")
            return false
        }
        unit.route(wire.gsi - unit.interruptBase, vector: PIC.vectorBase + irq, wire.trigger, wire.polarity,
                   destination: PerCPU.area(assignedCPU(of: irq)).pointee.apicID, masked: masked)
        return true
    }

    /// Moves every line to the I/O APIC, if `irqchip=` and the machine allow: each enabled
    /// line routed and unmasked there, then the PICs masked and the boot CPU's LINT0 (their
    /// ExtINT path) closed. Boot CPU, its local APIC enabled; interrupts are off meanwhile, so
    /// no interrupt is lost between the two - an edge that came in the gap is still pending at
    /// the PIC, which nothing reads again, and the device will raise the next one as usual.
    static func switchToIOAPIC() {
        let wanted: Bool
        switch choice {
        case .pic: wanted = false
        case .auto, .ioAPIC: wanted = true
        }
        guard wanted else {
            Log.info(.cpu, "interrupts: device lines stay on the 8259 PICs (irqchip=pic)")
            return
        }
        guard let topology = Machine.topology, LocalAPIC.isMapped, IOAPIC.initialize(topology.ioAPICs) else {
            Log.warn(.cpu, "interrupts: device lines stay on the 8259 PICs: no usable I/O APIC")
            return
        }
        withInterruptsDisabled {
            var routed = true
            for irq in 0..<lineCount where enabled & (1 << UInt16(irq)) != 0 {
                routed = routed && route(irq, masked: true)
            }
            guard routed else { return }
            PIC.maskAll()
            LocalAPIC.closeLegacyLine()
            controller = .ioAPIC
            for irq in 0..<lineCount where enabled & (1 << UInt16(irq)) != 0 { _ = route(irq, masked: false) }
        }
        guard controller == .ioAPIC else {
            Log.warn(.cpu, "interrupts: device lines stay on the 8259 PICs: a line has no I/O APIC input")
            return
        }
        for irq in 0..<lineCount where enabled & (1 << UInt16(irq)) != 0 {
            let wire = wiring(of: irq)
            Log.info(.cpu, "interrupts: IRQ \(irq) -> global interrupt \(wire.gsi), \(wire.trigger == .level ? "level" as StaticString : "edge"), active \(wire.polarity == .activeLow ? "low" as StaticString : "high"), vector \(PIC.vectorBase + irq), CPU \(PerCPU.this.pointee.apicID)")
        }
        Log.info(.cpu, "interrupts: device lines now arrive through the I/O APIC; the 8259 PICs are masked")
    }
}
