// CallChain.swift - a few return addresses of the running call chain, without printing.
//
// The reserve-draw record (kernel/Mem/Portable/ReserveDraw.swift) keeps the chain that made
// each reserve's deepest draw; the zones table prints it at the end of a suite and the runner
// symbolises it (qemu/harness/zonecheck.py). The walk is the panic's (Panic.swift): each frame
// is [saved rbp][return address], and a frame pointer outside every known stack ends it.

extension Backtrace {
    /// The return addresses of the caller's callers, innermost first, each minus one (inside
    /// the call instruction, which is the line a symboliser should name).
    @inline(never)
    static func callChain() -> DrawChain {
        var chain = DrawChain()
        var framePointer = CPU.framePointer
        var index = 0
        while framePointer != 0 && index < DrawChain.depth {
            guard framePointer % 8 == 0, isOnKnownStack(framePointer) else { break }
            let slots = UnsafePointer<UInt64>(bitPattern: UInt(framePointer))!
            let returnAddress = slots[1]
            framePointer = slots[0]
            if returnAddress == 0 { break }
            chain[index] = returnAddress &- 1
            index += 1
        }
        return chain
    }
}
