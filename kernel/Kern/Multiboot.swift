// Multiboot.swift - reading what the multiboot (version 1) loader handed over.
//
// The information structure and everything it points to is in low physical memory, which the
// boot page tables identity-map. `BootInfo.read` copies what the kernel keeps - the command
// line and the memory map - into kernel memory right away, so that nothing depends on the
// loader's memory afterwards; it also remembers where the loader's structures were, so the
// physical memory map can keep them out of the free pages while they are still being read.

import ArchSupport

enum Multiboot {
    static let loaderMagic: UInt32 = 0x2BAD_B002

    // Offsets and flag bits in the information structure (multiboot specification 0.6.96, 3.3).
    static let flagMemory: UInt32 = 1 << 0
    static let flagCommandLine: UInt32 = 1 << 2
    static let flagMemoryMap: UInt32 = 1 << 6
    static let flagBootLoaderName: UInt32 = 1 << 9
    static let infoSize: UInt64 = 120
}

/// What the kernel keeps of the multiboot information.
enum BootInfo {
    static var commandLine = ByteString.empty
    /// Which loader started us; it decides whether the command line starts with the image path.
    static var loader = BootLoader.other
    static var memoryMap: [MemoryMapEntry] = []
    static var lowerMemoryKiB: UInt32 = 0
    static var upperMemoryKiB: UInt32 = 0
    /// Physical ranges the loader's structures occupy: [start, end).
    static var loaderRanges: [(UInt64, UInt64)] = []

    static func read(magic: UInt32, infoAddress: UInt32) {
        guard magic == Multiboot.loaderMagic else {
            panic("not started by a multiboot loader: magic \(hex: magic), expected \(hex: Multiboot.loaderMagic)")
        }
        guard infoAddress != 0 else { panic("multiboot: no information structure") }
        let info = UnsafeRawPointer(bitPattern: UInt(infoAddress))!
        loaderRanges.append((UInt64(infoAddress), UInt64(infoAddress) + Multiboot.infoSize))
        let flags = info.load(as: UInt32.self)
        if flags & Multiboot.flagMemory != 0 {
            lowerMemoryKiB = info.load(fromByteOffset: 4, as: UInt32.self)
            upperMemoryKiB = info.load(fromByteOffset: 8, as: UInt32.self)
        }
        // The name is read here and not kept: the loader's memory is not ours for long.
        if flags & Multiboot.flagBootLoaderName != 0, let name = cString(at: info.load(fromByteOffset: 64, as: UInt32.self)) {
            loader = BootLoader.identify(name: name)
            Log.info(.boot, "boot loader: '\(name)'")
        } else {
            Log.info(.boot, "boot loader: no name given")
        }
        if flags & Multiboot.flagCommandLine != 0 {
            copyCommandLine(from: info.load(fromByteOffset: 16, as: UInt32.self))
        }
        if flags & Multiboot.flagMemoryMap != 0 {
            let length = info.load(fromByteOffset: 44, as: UInt32.self)
            let address = info.load(fromByteOffset: 48, as: UInt32.self)
            loaderRanges.append((UInt64(address), UInt64(address) + UInt64(length)))
            readMemoryMap(address: address, length: length)
        } else {
            Log.warn(.boot, "multiboot: the loader gave no memory map (flags \(hex: flags))")
        }
    }

    /// The NUL-terminated string at `address`, at most 256 bytes of it; nil for address 0.
    private static func cString(at address: UInt32) -> ByteString? {
        guard address != 0 else { return nil }
        let base = UnsafePointer<UInt8>(bitPattern: UInt(address))!
        var length = 0
        while length < 256 && base[length] != 0 { length += 1 }
        return ByteString(base: base, count: length)
    }

    /// Copies the NUL-terminated command line into the kernel's own buffer.
    private static func copyCommandLine(from address: UInt32) {
        guard address != 0 else { return }
        let source = UnsafePointer<UInt8>(bitPattern: UInt(address))!
        let buffer = arch_command_line_buffer()!
        let capacity = Int(arch_command_line_capacity())
        var length = 0
        while source[length] != 0 && length < capacity {
            buffer[length] = source[length]
            length += 1
        }
        loaderRanges.append((UInt64(address), UInt64(address) + UInt64(length) + 1))
        if length == capacity && source[length] != 0 {
            Log.error(.cmdline, "the command line is longer than \(capacity) bytes; the rest is ignored")
        }
        commandLine = ByteString(base: UnsafePointer(buffer), count: length)
    }

    /// Each entry is preceded by its own size (which does not count the size field itself).
    private static func readMemoryMap(address: UInt32, length: UInt32) {
        var offset: UInt32 = 0
        while offset + 4 <= length {
            let entry = UnsafeRawPointer(bitPattern: UInt(address + offset))!
            let size = entry.load(as: UInt32.self)
            guard size >= 20 else {
                Log.error(.boot, "multiboot: memory map entry at offset \(offset) has size \(size) (< 20); stopping there")
                return
            }
            let base = entry.loadUnaligned(fromByteOffset: 4, as: UInt64.self)
            let bytes = entry.loadUnaligned(fromByteOffset: 12, as: UInt64.self)
            let type = entry.loadUnaligned(fromByteOffset: 20, as: UInt32.self)
            memoryMap.append(MemoryMapEntry(base: base, length: bytes, kind: .init(multibootType: type)))
            offset += size + 4
        }
    }

    static func logMemoryMap() {
        Log.info(.boot, "multiboot memory map (\(memoryMap.count) entries):")
        for entry in memoryMap {
            Log.info(.boot, "  \(address: entry.base) - \(address: entry.end) \(entry.kind.name) (\(bytes: entry.length))")
        }
    }
}
