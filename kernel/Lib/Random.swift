// Random.swift - the seeded pseudo-random generator every randomised workload uses.
//
// SplitMix64: tiny, fast, statistically good enough for tests, and - what matters most here -
// the same seed gives the same sequence on the host and in the kernel, so a failing seed
// printed by one can be replayed by the other.

public struct SeededRandom {
    public private(set) var state: UInt64

    public init(seed: UInt64) {
        state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A value in 0..<bound (bound > 0), without modulo bias worth caring about for tests.
    public mutating func next(below bound: UInt64) -> UInt64 {
        precondition(bound > 0, "SeededRandom: empty range")
        return next().multipliedFullWidth(by: bound).high
    }

    public mutating func next(below bound: Int) -> Int {
        Int(next(below: UInt64(bound)))
    }

    /// True with probability `perMille`/1000.
    public mutating func chance(perMille: UInt64) -> Bool {
        next(below: 1000) < perMille
    }
}
