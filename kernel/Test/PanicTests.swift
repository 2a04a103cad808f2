// PanicTests.swift - the panic path, one deliberate crash per case.
//
// Every case here expects a panic, so each runs in its own boot (test=panic.<case>). The
// kernel checks the panic message; the host runner also checks that the symbolised backtrace
// names the function given as `inFrame`, which proves the symbolisation works end to end.

import ArchSupport

enum PanicTests {
    /// Never mapped by any page table the kernel builds (see docs/memory-layout.md).
    static let unmappedAddress: UInt64 = 0x0000_1234_5678_9000

    static var suite: TestSuite {
        TestSuite("panic", [
            TestCase("pageFaultAtKnownAddress", expectsPanic: "page fault at 0x0000123456789000 (write, page not present)",
                     inFrame: "PanicTests.writeToUnmappedAddress", writeToUnmappedAddress),
            TestCase("nilPageReadFaultsWithCR2Zero", expectsPanic: "page fault at 0x0000000000000000 (read, page not present)",
                     inFrame: "PanicTests.readPageZero", readPageZero),
            TestCase("swiftOverflowTrapIsReported", expectsPanic: "Swift runtime trap",
                     inFrame: "Swift runtime failure: arithmetic overflow", overflowArithmetic),
            TestCase("fatalErrorMessageIsPrinted", expectsPanic: "Fatal error: deliberate fatalError from a test",
                     inFrame: "PanicTests.callFatalError", callFatalError),
            TestCase("stackOverflowIsCaughtOnTheDoubleFaultStack", expectsPanic: "double fault: kernel stack overflow",
                     inFrame: "PanicTests.recurseForever", overflowTheStack),
            TestCase("explicitPanicMessage", expectsPanic: "deliberate panic from a test",
                     inFrame: "PanicTests.explicitPanic", explicitPanic),
        ])
    }

    /// Keeps the optimiser from seeing a value (or from proving a fault away).
    @inline(never)
    static func opaque<T>(_ value: T) -> T { value }

    @inline(never)
    static func writeToUnmappedAddress() {
        let pointer = UnsafeMutablePointer<UInt64>(bitPattern: UInt(opaque(unmappedAddress)))!
        pointer.pointee = 0x5AFE
    }

    @inline(never)
    static func readPageZero() {
        let pointer = UnsafePointer<UInt64>(bitPattern: UInt(opaque(UInt64(8))))!
        let zeroPage = pointer - 1
        Test.diagnostic("read \(zeroPage.pointee) from page 0")
    }

    @inline(never)
    static func overflowArithmetic() {
        let big = opaque(Int.max)
        let sum = big + opaque(1)
        Test.diagnostic("no trap: \(sum)")
    }

    @inline(never)
    static func callFatalError() {
        if opaque(true) { fatalError("deliberate fatalError from a test") }
    }

    static var depth = 0

    @inline(never)
    static func recurseForever(_ level: Int) -> Int {
        // A frame with a live buffer, so each level really uses stack and cannot be a loop.
        var scratch: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
        scratch.0 = UInt64(level)
        depth = level
        let below = withUnsafeMutableBytes(of: &scratch) { opaque($0.baseAddress!) }
        return recurseForever(level + 1) + Int(below.load(as: UInt64.self))
    }

    static func overflowTheStack() {
        Test.diagnostic("recursing on the boot stack until it reaches its guard page")
        _ = recurseForever(opaque(0))
    }

    @inline(never)
    static func explicitPanic() {
        panic("deliberate panic from a test, seed \(KernelOptions.seed)")
    }
}
