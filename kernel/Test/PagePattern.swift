// PagePattern.swift - what test workloads write into pageable memory: every byte of a page.
//
// A page's contents are derived from who wrote it (a seed and an object or region id), which
// page it is and which generation of writes (a workload that rewrites a page bumps it), over
// all 512 words: a page that came back from swap with one sector from elsewhere, a stale
// generation, a neighbour's contents or a zero-filled hole differs in at least one word, and
// the check reads every word. Sampling a few words per page (as the first round did) misses a
// lost sector.

enum PagePattern {
    static let wordsPerPage = Int(pageSize) / 8

    /// The page's key: a well-mixed function of (seed, id, page, generation).
    @inline(__always)
    static func key(_ seed: UInt64, _ id: UInt64, _ page: Int, _ generation: UInt64 = 0) -> UInt64 {
        var x = seed &+ id &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(page) &* 0xC2B2_AE3D_27D4_EB4F &+ generation &* 0x1656_67B1_9E37_79F9
        x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
        return x ^ (x >> 31)
    }

    /// Word `index` of the page whose key is `key`. Never the zero-filled page's word for
    /// more than a one-in-2^64 key.
    @inline(__always)
    static func word(_ key: UInt64, _ index: Int) -> UInt64 {
        key ^ (UInt64(index) &* 0xD6E8_FEB8_6659_FD93)
    }

    /// Writes the whole page at `address`.
    static func fill(_ address: VirtualAddress, _ key: UInt64) {
        let words = pointer(at: address).assumingMemoryBound(to: UInt64.self)
        for index in 0..<wordsPerPage { words[index] = word(key, index) }
    }

    /// The first word of the page at `address` that differs from the pattern, or nil.
    static func firstMismatch(_ address: VirtualAddress, _ key: UInt64) -> Int? {
        let words = pointer(at: address).assumingMemoryBound(to: UInt64.self)
        for index in 0..<wordsPerPage where words[index] != word(key, index) { return index }
        return nil
    }
}
