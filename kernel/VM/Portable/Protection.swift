// Protection.swift - what a mapping allows: read, write, execute.
//
// Portable: a map entry stores it (one byte), and the pmap turns it into page-table bits
// (the x86-64 conversion is `entryFlags`, in kernel/Arch/x86_64/PageTableEntry.swift). The raw
// bits are also what the gdb helpers decode (qemu/gdb/kernel_helpers.py: r = 1, w = 2, x = 4).

/// What a mapping allows.
public struct Protection: OptionSet, Equatable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let read = Protection(rawValue: 1 << 0)
    public static let write = Protection(rawValue: 1 << 1)
    public static let execute = Protection(rawValue: 1 << 2)
    public static let readWrite: Protection = [.read, .write]
}
