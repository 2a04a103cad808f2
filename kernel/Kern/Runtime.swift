// Runtime.swift - the C symbols Embedded Swift expects from its environment.
//
// The Swift runtime allocates with posix_memalign and releases with free, prints fatal-error
// messages with putchar, and seeds hashing with arc4random_buf. (memset, memcpy, memmove and
// memcmp are in kernel/Arch/x86_64/CRuntime.S.) Allocation goes to `KernelHeap`, which starts
// as the early heap and goes to kmalloc once the zones are up (Kmalloc.isReady).

import ArchSupport

/// Where the Swift runtime's allocations go.
enum KernelHeap {
    static var early: EarlyHeap? = nil

    static func allocate(byteCount: Int, alignment: Int) -> UnsafeMutableRawPointer? {
        if Kmalloc.isReady { return Kmalloc.allocate(byteCount, alignment: alignment) }
        FreePath.checkAllocation(.earlyHeap)
        if early == nil {
            early = EarlyHeap(base: arch_early_heap_start()!, size: Int(arch_early_heap_size()))
        }
        return early!.allocate(byteCount: byteCount, alignment: alignment)
    }

    static func free(_ pointer: UnsafeMutableRawPointer) {
        if let heap = early, heap.contains(pointer) {
            if let error = early!.free(pointer) {
                switch error {
                case .doubleFree: panic("early heap: double free of \(address: UInt64(UInt(bitPattern: pointer)))")
                case .corruptHeader: panic("early heap: corrupt block header at \(address: UInt64(UInt(bitPattern: pointer)))")
                case .notFromThisHeap: panic("early heap: free of \(address: UInt64(UInt(bitPattern: pointer))), not a block start")
                }
            }
            return
        }
        guard Kmalloc.isReady else {
            panic("free of \(address: UInt64(UInt(bitPattern: pointer))), which no kernel heap handed out")
        }
        Kmalloc.free(pointer)
    }
}

@_cdecl("posix_memalign")
func runtimePosixMemalign(_ result: UnsafeMutablePointer<UnsafeMutableRawPointer?>, _ alignment: Int, _ size: Int) -> Int32 {
    guard let memory = KernelHeap.allocate(byteCount: size, alignment: max(alignment, 16)) else {
        panic("kernel heap exhausted: the Swift runtime asked for \(size) bytes aligned to \(alignment)")
    }
    result.pointee = memory
    return 0
}

/// `free` itself is a jump to here (kernel/Arch/x86_64/CRuntime.S): Swift reserves the name.
@_cdecl("kernel_runtime_free")
func runtimeFree(_ pointer: UnsafeMutableRawPointer?) {
    guard let pointer = pointer else { return }
    KernelHeap.free(pointer)
}

/// The Swift runtime prints a fatal error's message ("file:line: Fatal error: ...") through
/// putchar just before it traps; the last such line is kept so the panic can repeat it.
enum RuntimeMessages {
    static var current = LogMessage()
    static var last = LogMessage()
}

@_cdecl("putchar")
func runtimePutchar(_ character: Int32) -> Int32 {
    let byte = UInt8(truncatingIfNeeded: character)
    Console.write(byte)
    if byte == UInt8(ascii: "\n") {
        RuntimeMessages.last = RuntimeMessages.current
        RuntimeMessages.current = LogMessage()
    } else {
        RuntimeMessages.current.append(byte)
    }
    return character
}

/// Hash seeding for Set and Dictionary. Determinism matters more than secrecy here: the same
/// seed gives the same iteration order on every run.
@_cdecl("arc4random_buf")
func runtimeArc4randomBuf(_ buffer: UnsafeMutableRawPointer, _ count: Int) {
    var random = SeededRandom(seed: 0x5EED_0F_4A54)
    for index in 0..<count {
        buffer.storeBytes(of: UInt8(truncatingIfNeeded: random.next()), toByteOffset: index, as: UInt8.self)
    }
}
