// DiskFaultPlan.swift - which disk operations fail on purpose: the `diskfault=` option.
//
// `diskfault=write:N,read:M` makes the N-th write and the M-th read that reach the swap disk
// (counted from boot, from 1) fail as a device error would - or, written `N-L`, every one from
// the N-th to the L-th (several page-out writes in flight failing together): the driver does not touch the
// device for it, and reports an error the way it reports a real one, so the layers above take
// their error paths (kernel/Drivers/Disk.swift). A page-out write left in flight is the
// exception: it still goes to the device and fails at its completion, because that - the
// interrupt - is where a real error of such a write is reported. Either part may be left out; `off` (the
// default) injects nothing. Each fails once: a retry of the same page is the next operation.
// Portable: parsing and the counting decision are host-tested.

public enum DiskOperation: Equatable {
    case read
    case write

    public var name: StaticString { self == .read ? "read" : "write" }
}

public struct DiskFaultPlan: Equatable {
    /// The first operation number that fails, 0 for none, and the last (the first unless a
    /// range was given).
    public var failingWrite: UInt64 = 0
    public var failingRead: UInt64 = 0
    public var lastFailingWrite: UInt64 = 0
    public var lastFailingRead: UInt64 = 0
    /// Operations counted so far.
    public private(set) var writes: UInt64 = 0
    public private(set) var reads: UInt64 = 0

    public init(failingWrite: UInt64 = 0, failingRead: UInt64 = 0, lastFailingWrite: UInt64? = nil, lastFailingRead: UInt64? = nil) {
        self.failingWrite = failingWrite
        self.failingRead = failingRead
        self.lastFailingWrite = lastFailingWrite ?? failingWrite
        self.lastFailingRead = lastFailingRead ?? failingRead
    }

    public var isActive: Bool { failingWrite != 0 || failingRead != 0 }

    /// Parses `off`, or `write:N`, `read:M` joined by commas (N, M >= 1, each at most once),
    /// where a number may be a range `N-L` (L >= N). Nil for anything else.
    public static func parse(_ text: ByteString) -> DiskFaultPlan? {
        if text.equals("off") { return DiskFaultPlan() }
        var plan = DiskFaultPlan()
        var ok = !text.isEmpty
        text.forEachPiece(separatedBy: UInt8(ascii: ",")) { part in
            guard ok, let colon = part.firstIndex(of: UInt8(ascii: ":")),
                  let (number, last) = parseRange(part.slice(colon + 1, part.count)) else {
                ok = false
                return
            }
            let name = part.slice(0, colon)
            if name.equals("write") && plan.failingWrite == 0 {
                plan.failingWrite = number
                plan.lastFailingWrite = last
            } else if name.equals("read") && plan.failingRead == 0 {
                plan.failingRead = number
                plan.lastFailingRead = last
            } else {
                ok = false
            }
        }
        return ok ? plan : nil
    }

    /// `N` or `N-L`, with 1 <= N <= L: the first and last operation numbers.
    static func parseRange(_ text: ByteString) -> (UInt64, UInt64)? {
        guard let dash = text.firstIndex(of: UInt8(ascii: "-")) else {
            guard let number = text.parseUnsigned(), number > 0 else { return nil }
            return (number, number)
        }
        guard let first = text.slice(0, dash).parseUnsigned(), let last = text.slice(dash + 1, text.count).parseUnsigned(),
              first > 0, last >= first else { return nil }
        return (first, last)
    }

    /// Counts one `operation` and says whether it is one that must fail.
    public mutating func shouldFail(_ operation: DiskOperation) -> Bool {
        switch operation {
        case .write:
            writes += 1
            return failingWrite != 0 && writes >= failingWrite && writes <= lastFailingWrite
        case .read:
            reads += 1
            return failingRead != 0 && reads >= failingRead && reads <= lastFailingRead
        }
    }
}
