// InterruptTests.swift - device interrupts arrive through the controller the boot chose.
//
// `interrupts` boots with the default (irqchip=auto: the I/O APIC on every machine QEMU makes),
// `interrupts-pic` with irqchip=pic. Both check the controllers' state itself - the I/O APIC's
// redirection entries, the 8259 masks, the boot CPU's LINT0 - and then that interrupts really
// come that way: timer ticks while the CPU sleeps, and swap disk transfers completed by their
// interrupt (virtio-blk or AHCI; the ATA driver polls). The full runs also boot `interrupts` on
// q35 with AHCI and on pc with IDE (plan.DEVICE_BOOTS).

enum InterruptTests {
    static var suites: [TestSuite] {
        [
            TestSuite("interrupts", memory: "24M", diskMiB: 4, [
                TestCase("everyEnabledLineIsRoutedByTheChosenController", { everyEnabledLineIsRoutedByTheChosenController(.ioAPIC) }),
                TestCase("timerAndDiskInterruptsArrive", timerAndDiskInterruptsArrive),
            ]),
            TestSuite("interrupts-pic", memory: "24M", arguments: "irqchip=pic", diskMiB: 4, [
                TestCase("everyEnabledLineIsRoutedByTheChosenController", { everyEnabledLineIsRoutedByTheChosenController(.pic) }),
                TestCase("timerAndDiskInterruptsArrive", timerAndDiskInterruptsArrive),
            ]),
        ]
    }

    static func everyEnabledLineIsRoutedByTheChosenController(_ expected: InterruptControllerKind) {
        Test.expect(InterruptLines.controller == expected, "device lines arrive through the \(InterruptLines.controller.name), expected the \(expected.name)")
        Test.expect(InterruptLines.enabled & 1 != 0, "the timer's IRQ 0 is enabled")
        let lint0 = LocalAPIC.read(.lint0)
        let picMasks = PIC.masks
        switch InterruptLines.controller {
        case .ioAPIC:
            Test.expectEqual(picMasks, 0xFFFF, "8259 mask registers (every line masked)")
            Test.expect(lint0 & LocalAPIC.masked != 0, "LINT0, the 8259s' way in, is masked: \(hex: lint0)")
            for irq in 0..<InterruptLines.lineCount where InterruptLines.enabled & (1 << UInt16(irq)) != 0 {
                let wire = InterruptLines.wiring(of: irq)
                guard let unit = IOAPIC.unit(for: wire.gsi) else {
                    Test.expect(false, "IRQ \(irq): no I/O APIC has global interrupt \(wire.gsi)")
                    continue
                }
                let entry = unit.entry(wire.gsi - unit.interruptBase)
                Test.expectEqual(Int(entry.low & 0xFF), PIC.vectorBase + irq, "IRQ \(irq)'s vector")
                Test.expect(entry.low & IOAPIC.maskBit == 0, "IRQ \(irq) is unmasked at the I/O APIC: \(hex: entry.low)")
                // A PCI line (a DMA disk's) is a level; the ISA ones here (PIT, UART) are edges -
                // on every machine QEMU makes, whose MADT says the same for IRQs 5, 9, 10, 11.
                let level = entry.low & (1 << 15) != 0
                let pci = InterruptLines.pciLines & (1 << UInt16(irq)) != 0
                Test.expect(level == pci, "IRQ \(irq) is \(level ? "level" as StaticString : "edge")-triggered at the I/O APIC, but it is \(pci ? "a PCI" as StaticString : "an ISA") line")
                Test.expectEqual(entry.high >> 24, PerCPU.this.pointee.apicID, "IRQ \(irq)'s destination APIC id")
            }
        case .pic:
            Test.expectEqual(lint0 & 0x700, 0x700, "LINT0 delivers the 8259s' interrupts (ExtINT)")
            for irq in 0..<InterruptLines.lineCount where InterruptLines.enabled & (1 << UInt16(irq)) != 0 {
                Test.expect(picMasks & (1 << UInt16(irq)) == 0, "IRQ \(irq) is unmasked at the 8259: masks \(hex: picMasks)")
            }
        }
    }

    static func timerAndDiskInterruptsArrive() {
        // The suite runs with preemption off; sleeping needs it on.
        Preemption.enable()
        defer { Preemption.disable() }
        let start = Timer.currentTicks
        Scheduler.sleep(ticks: 5)
        Test.expect(Timer.currentTicks >= start + 5, "timer ticks arrive: \(Timer.currentTicks - start) in a 5-tick sleep")
        guard let kind = Disk.kind, kind.completesByInterrupt else {
            Test.diagnostic("no swap disk that completes by interrupt (\(Disk.kind?.name ?? "none")): the disk half is skipped")
            return
        }
        guard let block = SwapDevice.allocateBlock() else {
            Test.expect(false, "a free swap block")
            return
        }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: Int(pageSize), alignment: Int(pageSize))
        let pattern = PagePattern.key(KernelOptions.seed, 0x1A7E, 0)
        PagePattern.fill(VirtualAddress(buffer), pattern)
        let before = DiskCompletion.byInterrupt
        let wrote = SwapDevice.write(block: block, from: buffer)
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: Int(pageSize))
        let read = SwapDevice.read(block: block, into: buffer)
        Test.expect(wrote && read, "a swap block written and read back on \(kind.name)")
        Test.expect(PagePattern.firstMismatch(VirtualAddress(buffer), pattern) == nil, "the page read back is the page written")
        Test.expectEqual(DiskCompletion.byInterrupt - before, 2, "\(kind.name) transfers completed by their interrupt")
        buffer.deallocate()
        SwapDevice.freeBlock(block)
    }
}
