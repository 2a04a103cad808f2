// RestartableSequences.swift - how the zone fast path runs with interrupts on.
//
// A zone allocation or free on the running CPU's loaded magazine (arch.h: arch_zone_pop,
// arch_zone_push) used to turn interrupts off and on around its few instructions - 12 of the
// 49 a pair cost - because an interrupt handler on the same CPU may use the same magazine,
// and because a preempted thread may resume on another CPU with the old CPU's slot in a
// register. Instead each is a restartable sequence (NetBSD's restartable atomic sequences,
// Linux's rseq): everything up to one commit store can be thrown away, so an interrupt that
// arrives there sends the thread back to the first instruction, which finds its CPU, slot and
// magazine anew. After the commit comes one more instruction, the slot's statistics
// increment; an interrupt arriving just before it does the increment for the thread (the
// slot's address is in rcx: the asm pins it) and resumes it after, so the count lands on the
// slot of the CPU that did the operation even if the thread then moves.
//
// Invariant the sequences keep: before the commit they only read, or write a magazine round
// at or above `count`, which no one reads. So running the prefix twice is harmless, and the
// commit either happened (the sequence's effect is whole) or did not (it has none).
//
// Every inlined copy of the two asm bodies adds an entry to the .zone_ras section (linker.ld).
// `fixUp` runs first on every external interrupt and IPI, before any handler and before the
// scheduler may switch threads (Interrupts.swift). Exceptions do not come here: the sequences
// touch only direct-mapped memory, so a fault inside one is a bug and stays fatal. NMIs do
// not either: their handlers never use a zone and never switch threads.

import ArchSupport

/// One inlined copy of a fast-path sequence, as arch.h writes it into .zone_ras.
struct RestartableSequence {
    /// The first instruction: where an interrupted sequence starts again.
    var begin: UInt64
    /// The commit store; up to and including it (not yet executed), the sequence restarts.
    var commit: UInt64
    /// The statistics increment after the commit, and the address after it.
    var counter: UInt64
    var end: UInt64
    /// The counter's offset in the CPU slot whose address is in rcx.
    var counterOffset: UInt64
}

enum RestartableSequences {
    static var table: UnsafeBufferPointer<RestartableSequence> {
        let start = UnsafePointer<RestartableSequence>(bitPattern: UInt(arch_zone_ras_start()))
        let bytes = Int(arch_zone_ras_end() - arch_zone_ras_start())
        return UnsafeBufferPointer(start: start, count: bytes / MemoryLayout<RestartableSequence>.stride)
    }

    /// The lowest and highest instruction address of any sequence: the one compare most
    /// interrupts need (set by `check`, before interrupts are first enabled).
    static var lowest: UInt64 = 0
    static var highest: UInt64 = 0

    /// Resumes an interrupted sequence where it must resume: at its start before the commit,
    /// after its counter increment (done here) between the commit and that increment.
    /// Anywhere else the frame is left alone.
    @inline(__always)
    static func fixUp(_ frame: UnsafeMutablePointer<InterruptFrame>) {
        let rip = frame.pointee.rip
        guard rip >= lowest && rip < highest else { return }
        fixUpInside(frame, rip)
    }

    /// The table is in address order (`check`): the last sequence beginning at or before
    /// `rip` is the only one that can hold it.
    @inline(never)
    static func fixUpInside(_ frame: UnsafeMutablePointer<InterruptFrame>, _ rip: UInt64) {
        let sequences = table
        var low = 0, high = sequences.count
        while high - low > 1 {
            let middle = (low + high) / 2
            if sequences[middle].begin <= rip { low = middle } else { high = middle }
        }
        let sequence = sequences[low]
        if rip >= sequence.begin && rip <= sequence.commit {
            frame.pointee.rip = sequence.begin
            PerCPU.this.pointee.sequencesRestarted &+= 1
        } else if rip == sequence.counter {
            let counter = UnsafeMutablePointer<UInt64>(bitPattern: UInt(frame.pointee.rcx + sequence.counterOffset))!
            counter.pointee &+= 1
            frame.pointee.rip = sequence.end
            PerCPU.this.pointee.sequencesFinished &+= 1
        }
    }

    /// At boot, before interrupts are on: the table is well formed (each entry's addresses in
    /// order, in the kernel's text) and the layouts arch.h assumes are Swift's. Stops the
    /// boot with a message otherwise.
    static func check() {
        let sequences = table
        guard sequences.count > 0 else { stop("no restartable sequences in .zone_ras: the zone fast path was not built from arch.h") }
        var low = UInt64.max, high: UInt64 = 0
        for (index, sequence) in sequences.enumerated() {
            // The linker keeps the entries in the order of the code (one object file), which
            // fixUpInside's binary search relies on.
            if index > 0 && sequence.begin <= sequences[index - 1].end {
                stop("restartable sequences out of address order in .zone_ras at entry \(index) (\(address: sequence.begin) after \(address: sequences[index - 1].begin))")
            }
            let ordered = sequence.begin < sequence.commit && sequence.commit < sequence.counter && sequence.counter < sequence.end
            let inText = sequence.begin >= arch_text_start() && sequence.end <= arch_text_end()
            let counterKnown = sequence.counterOffset == arch_zone_slot_allocations_offset() || sequence.counterOffset == arch_zone_slot_frees_offset()
            guard ordered && inText && counterKnown else {
                stop("restartable sequence at \(address: sequence.begin) is malformed (commit \(address: sequence.commit), counter \(address: sequence.counter), end \(address: sequence.end), offset \(sequence.counterOffset))")
            }
            low = min(low, sequence.begin)
            high = max(high, sequence.end)
        }
        lowest = low
        highest = high
        checkLayouts()
    }

    /// arch.h reads CPUCache slots and magazines at fixed offsets; Swift lays them out.
    private static func checkLayouts() {
        var slot = CPUCache()
        var magazine = Magazine(next: nil, count: 0)
        func offset(_ field: UnsafeMutableRawPointer, in base: UnsafeMutableRawPointer) -> Int { base.distance(to: field) }
        let fields: [(StaticString, Int, UInt64)] = withUnsafeMutablePointer(to: &slot) { cache in
            withUnsafeMutablePointer(to: &magazine) { stack -> [(StaticString, Int, UInt64)] in
                [
                    ("CPUCache.loaded", offset(&cache.pointee.loaded, in: cache), 0),
                    ("CPUCache.allocations", offset(&cache.pointee.allocations, in: cache), arch_zone_slot_allocations_offset()),
                    ("CPUCache.frees", offset(&cache.pointee.frees, in: cache), arch_zone_slot_frees_offset()),
                    ("CPUCache stride", MemoryLayout<CPUCache>.stride, arch_zone_slot_bytes()),
                    ("Magazine.count", offset(&stack.pointee.count, in: stack), arch_zone_magazine_count_offset()),
                    ("Magazine rounds", MemoryLayout<Magazine>.stride, arch_zone_magazine_rounds_offset()),
                    ("Magazine.capacity", Magazine.capacity, arch_zone_magazine_capacity()),
                ]
            }
        }
        for (name, measured, expected) in fields where UInt64(measured) != expected {
            stop("\(name) is \(measured) in Swift, arch.h's zone fast path uses \(expected): the layout changed")
        }
    }

    private static func stop(_ message: LogMessage) -> Never {
        Console.printLine("P panic: \(message: message)")
        QEMU.exit(.panic)
    }
}
