// PagePolicy.swift - who may take the last free pages: the free-page thresholds, and fault
// injection by requester.
//
// Free pages are split into tiers by thresholds derived from the amount of memory, in the
// spirit of DragonFly's v_free_min/v_free_reserved/v_paging_* and FreeBSD's equivalents:
//
//   free pages:  0 ......... freeMin ......... freeReserved ...... pagingStart ...... pagingTarget
//                | pageout   |  + system       |  + ordinary      (pageout wakes)   (pageout stops)
//
// Who is asking is the `Requester` of the request's AllocationContext (AllocationContext.swift):
// an ordinary allocation may not take the free count below freeReserved; a system one (VM
// internals: zone refills, page tables for ordinary mappings) may go down to freeMin; the
// pageout path may use everything. The pages below freeMin are what the
// pageout path lives on when nobody else can allocate; docs/reserves.md derives how many it
// needs, and `derive` never makes freeMin smaller than that.

public struct FreePageThresholds: Equatable {
    public var freeMin: UInt64
    public var freeReserved: UInt64
    public var pagingStart: UInt64
    public var pagingTarget: UInt64

    public init(freeMin: UInt64, freeReserved: UInt64, pagingStart: UInt64, pagingTarget: UInt64) {
        self.freeMin = freeMin
        self.freeReserved = freeReserved
        self.pagingStart = pagingStart
        self.pagingTarget = pagingTarget
    }

    /// Thresholds for a machine with `totalPages` managed pages. `pageoutFloor` is the number
    /// of pages one pageout step can need in the worst case (docs/reserves.md).
    public static func derive(totalPages: UInt64, pageoutFloor: UInt64 = 0) -> FreePageThresholds {
        // 32 pages plus 1/256 of memory (0.4%): 48 pages at 16 MiB, 160 at 128 MiB, 4128 at 4 GiB.
        let proportional = 32 + totalPages / 256
        let freeMin = max(proportional, pageoutFloor)
        return FreePageThresholds(freeMin: freeMin, freeReserved: 2 * freeMin,
                                  pagingStart: 3 * freeMin, pagingTarget: 4 * freeMin)
    }

    /// How many pages the pageout daemon keeps on the inactive queue while it works: the
    /// candidates its next pass may clean without scanning the active queue first. Twice
    /// paging_target (FreeBSD keeps 1.5 times its free target) so that one pass can meet a
    /// shortage even when half the candidates turn out to be in use again.
    public var inactiveTarget: UInt64 { 2 * pagingTarget }

    /// The lowest the free count may go for an allocation by `requester`.
    public func floor(for requester: Requester) -> UInt64 {
        switch requester {
        case .ordinary: return freeReserved
        case .system: return freeMin
        case .pageout: return 0
        }
    }

    /// Whether taking `pages` pages from `free` is allowed for `requester`.
    public func allows(_ requester: Requester, taking pages: UInt64, from free: UInt64) -> Bool {
        free >= pages && free - pages >= floor(for: requester)
    }

    public var isOrdered: Bool {
        0 < freeMin && freeMin < freeReserved && freeReserved < pagingStart && pagingStart < pagingTarget
    }
}

/// A set of requesters, written "ordinary", "system+pageout", ...
public struct RequesterSet: OptionSet, Equatable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public init(_ requester: Requester) { rawValue = 1 << UInt8(requester.rawValue) }

    public static let all = RequesterSet(rawValue: 0b111)

    public func contains(_ requester: Requester) -> Bool { rawValue & (1 << UInt8(requester.rawValue)) != 0 }

    /// Parses requester names joined by '+'. Nil when a name is unknown or the text is empty.
    public static func parse(_ text: ByteString) -> RequesterSet? {
        var result = RequesterSet()
        var valid = !text.isEmpty
        text.forEachPiece(separatedBy: UInt8(ascii: "+")) { piece in
            if let named = Requester.allCases.first(where: { piece.equals($0.name) }) {
                result.insert(RequesterSet(named))
            } else {
                valid = false
            }
        }
        return valid ? result : nil
    }
}

/// Makes allocations fail on purpose, by a seeded pattern, to test every failure path.
///
/// Written on the command line as `pagefail=every:N[:requesters]` (every Nth request fails) or
/// `pagefail=random:P[:requesters]` (each request fails with probability P/1000); with requesters
/// ("ordinary", "ordinary+system", ...), only requests by those requesters are counted and failed.
public struct FaultInjector {
    public enum Pattern: Equatable {
        case off
        case everyNth(UInt64)
        case perMille(UInt64)
    }

    public private(set) var pattern: Pattern = .off
    public private(set) var classes: RequesterSet = .all
    public private(set) var requests: UInt64 = 0
    public private(set) var injected: UInt64 = 0
    var random = SeededRandom(seed: 0)

    public init() {}

    public init(pattern: Pattern, classes: RequesterSet = .all, seed: UInt64) {
        self.pattern = pattern
        self.classes = classes
        self.random = SeededRandom(seed: seed)
    }

    public init(pattern: Pattern, onlyRequester: Requester?, seed: UInt64) {
        self.init(pattern: pattern, classes: onlyRequester.map { RequesterSet($0) } ?? .all, seed: seed)
    }

    public var isActive: Bool { pattern != .off }

    /// Called once per allocation request; true means "fail this one".
    public mutating func shouldFail(_ requester: Requester) -> Bool {
        if pattern == .off { return false }
        if !classes.contains(requester) { return false }
        requests += 1
        let fail: Bool
        switch pattern {
        case .off: fail = false
        case .everyNth(let n): fail = requests % n == 0
        case .perMille(let p): fail = random.chance(perMille: p)
        }
        if fail { injected += 1 }
        return fail
    }

    /// Parses "every:N[:requesters]" or "random:P[:requesters]" (P in 0...1000). Nil when malformed.
    public static func parse(_ text: ByteString, seed: UInt64) -> FaultInjector? {
        var pieces: [ByteString] = []
        text.forEachPiece(separatedBy: UInt8(ascii: ":")) { pieces.append($0) }
        guard pieces.count == 2 || pieces.count == 3, let number = pieces[1].parseUnsigned() else { return nil }
        var classes = RequesterSet.all
        if pieces.count == 3 {
            guard let named = RequesterSet.parse(pieces[2]) else { return nil }
            classes = named
        }
        if pieces[0].equals("every") && number >= 1 {
            return FaultInjector(pattern: .everyNth(number), classes: classes, seed: seed)
        }
        if pieces[0].equals("random") && number <= 1000 {
            return FaultInjector(pattern: .perMille(number), classes: classes, seed: seed)
        }
        return nil
    }
}
