// BenchZoneEnvironment.swift - the zone code of kernel/Mem/Portable, run on the host as fast as the kernel runs it.
//
// The kernel's default configuration: no debug checks, reserves enabled but a reserve target
// of 0, one-page slabs for objects up to 256 bytes, 16-byte alignment (kmalloc's geometry,
// kernel/Mem/Kmalloc.swift). Locking is a no-op (the benchmark has one thread; the kernel's
// lock is "interrupts off", which has no cost worth modelling here) and slabs come from
// posix_memalign. Nothing is logged or counted here: this environment exists to be timed.
// It is a separate type from the unit tests' HostZoneEnvironment, which records every slab
// request and injects failures, and would be measured instead of the zone code.
import Glibc

enum BenchZoneEnvironment: ZoneEnvironment {
    /// The zone code asks for a per-thread growth counter; there is one thread.
    static var growthDepthCounter = 0

    @inline(__always) static func lock() {}
    @inline(__always) static func unlock(_ token: Void) {}

    static func allocateSlab(for zone: StaticString, bytes: Int, source: SlabSource, _ context: AllocationContext) -> UnsafeMutableRawPointer? {
        var memory: UnsafeMutableRawPointer? = nil
        guard posix_memalign(&memory, bytes, bytes) == 0 else { return nil }
        return memory
    }

    static func freeSlab(_ memory: UnsafeMutableRawPointer, bytes: Int, source: SlabSource) {
        free(memory)
    }

    static var canGrow: Bool { true }
    static var reservesEnabled: Bool { true }
    static var currentThread: UInt64 { 1 }

    static func growthDepth() -> UnsafeMutablePointer<Int> {
        withUnsafeMutablePointer(to: &growthDepthCounter) { $0 }
    }

    static func log(_ message: LogMessage) {
        print("# zone log: " + String(decoding: message.bytes, as: UTF8.self))
    }

    static func fail(_ message: LogMessage) -> Never {
        fatalError(String(decoding: message.bytes, as: UTF8.self))
    }
}

typealias BenchZone = ZoneRef<BenchZoneEnvironment>

extension BenchZone {
    /// A zone of `objectSize`-byte objects in the kernel's default configuration.
    static func makeDefault(objectSize: Int) -> BenchZone {
        let state = UnsafeMutablePointer<ZoneState>.allocate(capacity: 1)
        state.initialize(to: ZoneState(name: "bench", objectSize: objectSize, alignment: 16,
                                       slabPages: objectSize <= 256 ? 1 : 4, reserveTarget: 0,
                                       keepEmptySlabs: 1, source: .directMap, debug: []))
        return BenchZone(state)
    }
}
