// Reserves.swift - which of the pageout path's protections are on.
//
// Set once from `reserves=` before anything allocates (kernel/Kern/KernelOptions.swift) and
// read everywhere a protection applies: the zones (their reserve and refills), the page
// allocator (the requester tiers) and the swap pager (whether the pageout path may wait).
// kernel/Mem/Portable/ReserveProtections.swift says what each protection is.

enum Reserves {
    static var protections = ReserveProtections.all

    /// The tier a request by `requester` is served from: its own, or the ordinary one's when
    /// the page tiers are off (nobody then digs below free_reserved).
    @inline(__always)
    static func tier(_ requester: Requester) -> Requester {
        // The raw bits: OptionSet.contains is not specialised into one test here, and this is
        // on every page allocation.
        protections.rawValue & ReserveProtections.pages.rawValue != 0 ? requester : .ordinary
    }

    /// Whether the pageout path asks for memory without waiting.
    static var pageoutNeverWaits: Bool { protections.contains(.nowait) }
}

extension LogMessage.Interpolation {
    /// `\(protections: p)`: "zones, pages, nowait", or "none".
    mutating func appendInterpolation(protections value: ReserveProtections) { value.describe(into: &appender) }
}
