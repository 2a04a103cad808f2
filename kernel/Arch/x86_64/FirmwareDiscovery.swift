// FirmwareDiscovery.swift - asking the firmware how many CPUs there are, and where the APICs are.
//
// Runs once on the boot CPU, right after the command line is parsed and before the memory
// system starts, because the firmware's tables lie in memory the kernel's own page tables do
// not map (ACPI tables sit in reserved or ACPI memory near the top of RAM): the boot identity
// map, which still covers the first 4 GiB, reaches them. The portable parsers
// (kernel/Arch/x86_64/Portable) do the reading; this file feeds them memory, picks ACPI first and
// the MP tables second, logs what it found or why it found nothing, and chooses which CPUs
// the kernel will start (`cpus=`). With no usable tables the kernel runs on the boot CPU alone.

import ArchSupport

/// Physical memory through the boot identity map: everything below 4 GiB but page 0.
struct BootIdentityMemory: FirmwareMemory {
    func byte(at address: UInt64) -> UInt8? {
        guard address >= pageSize, address < KernelLayout.bootIdentityLimit.rawValue else { return nil }
        kassert(PhysicalWindow.base.rawValue == 0, "firmware tables read after the boot identity map is gone")
        return UnsafePointer<UInt8>(bitPattern: UInt(address))!.pointee
    }
}

enum Machine {
    /// What the firmware described; nil when it described nothing usable.
    static var topology: MachineTopology? = nil
    /// The local APIC's physical address (the architectural default without tables).
    static var localAPICAddress = PhysicalAddress(0xFEE0_0000)
    /// APIC ids of the application processors to start, in table order: the enabled ones other
    /// than the boot CPU, at most `cpus=` - 1 of them, within PerCPU.capacity.
    static var processorsToStart: [UInt32] = []
    /// Enabled processors the firmware lists that the kernel leaves alone (`cpus=`, capacity).
    static var processorsLeftOut = 0
    /// `cpus=`: the most CPUs to run, boot CPU included; 0 means all.
    static var cpuLimit = 0

    /// Whether this CPU has a local APIC at all (CPUID leaf 1, EDX bit 9).
    static var hasLocalAPIC: Bool { CPU.cpuid(1).edx & (1 << 9) != 0 }

    static func discover() {
        guard hasLocalAPIC else {
            Log.warn(.cpu, "this CPU has no local APIC; running on the boot CPU only")
            return
        }
        let memory = BootIdentityMemory()
        let ebda = ebdaSegment()
        if let rsdp = ACPITables.findRSDP(memory, ebdaSegment: ebda) {
            switch ACPITables.discover(memory, rsdp: rsdp) {
            case .found(let found): topology = found
            case .failed(let error): report(error, "ACPI")
            }
        } else {
            report(.noRSDP, "ACPI")
        }
        if topology == nil {
            if let pointer = MPTables.findFloatingPointer(memory, ebdaSegment: ebda, baseMemoryKiB: UInt64(BootInfo.lowerMemoryKiB)) {
                switch MPTables.discover(memory, floatingPointer: pointer) {
                case .found(let found): topology = found
                case .failed(let error): report(error, "MP tables")
                }
            } else {
                report(.noMPFloatingPointer, "MP tables")
            }
        }
        guard let machine = topology else {
            Log.warn(.cpu, "no usable firmware tables; running on the boot CPU only")
            return
        }
        localAPICAddress = PhysicalAddress(machine.localAPICAddress)
        logTopology(machine)
        choose(machine)
    }

    /// The EBDA's segment, from the BIOS data area word at 0x40e - in page 0, which the boot
    /// page tables leave unmapped so that nil dereferences fault: mapped for this one read.
    static func ebdaSegment() -> UInt16? {
        arch_boot_map_page_zero(1)
        let segment = UnsafePointer<UInt16>(bitPattern: 0x40E)!.pointee
        arch_boot_map_page_zero(0)
        return segment == 0 ? nil : segment
    }

    static func report(_ error: FirmwareTableError, _ source: StaticString) {
        var message = LogMessage.Appender(message: LogMessage())
        error.describe(into: &message)
        Log.warn(.cpu, "\(source): \(message: message.message)")
    }

    static func logTopology(_ machine: MachineTopology) {
        let source: StaticString
        switch machine.source {
        case .acpi(let usedXSDT): source = usedXSDT ? "ACPI MADT (through the XSDT)" : "ACPI MADT (through the RSDT)"
        case .mpTable: source = "MP configuration table"
        }
        Log.info(.cpu, "the \(source) lists \(machine.processors.count) processors, \(machine.enabledProcessors) enabled; local APIC at \(address: machine.localAPICAddress); 8259 PICs \(machine.hasLegacyPICs ? "present" as StaticString : "absent")")
        for processor in machine.processors {
            Log.debug(.cpu, "  processor APIC id \(processor.apicID) \(processor.enabled ? "enabled" as StaticString : "disabled")")
        }
        for ioAPIC in machine.ioAPICs {
            Log.info(.cpu, "I/O APIC id \(ioAPIC.id) at \(address: ioAPIC.address), interrupts from \(ioAPIC.interruptBase)")
        }
        for entry in machine.overrides {
            Log.info(.cpu, "ISA IRQ \(entry.source) arrives on global interrupt \(entry.globalInterrupt) (flags \(hex: entry.flags))")
        }
    }

    /// Picks the application processors to start: enabled, not the boot CPU, within `cpus=`
    /// and the per-CPU capacity.
    static func choose(_ machine: MachineTopology) {
        let bootAPICID = CPU.initialAPICID
        let limit = min(cpuLimit == 0 ? Int.max : cpuLimit, PerCPU.capacity)
        for processor in machine.processors where processor.enabled && processor.apicID != bootAPICID {
            if processorsToStart.count + 1 < limit {
                processorsToStart.append(processor.apicID)
            } else {
                processorsLeftOut += 1
            }
        }
        if processorsLeftOut > 0 {
            Log.info(.cpu, "\(processorsLeftOut) enabled processor(s) left parked (cpus=\(cpuLimit == 0 ? UInt64(limit) : UInt64(cpuLimit)), capacity \(PerCPU.capacity))")
        }
    }
}
