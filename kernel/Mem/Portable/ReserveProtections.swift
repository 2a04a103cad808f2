// ReserveProtections.swift - the three protections that keep the pageout path from
// deadlocking, as switches (`reserves=` on the kernel command line).
//
//   zones   the zone reserves: the last objects of the swblock, map_entry and pv_entry zones
//           are kept for privileged callers (the pageout path, the swblock refill), and refills
//           top them up - Dillon's answer to a zone that cannot grow because growing needs the
//           memory pageout has not freed yet;
//   pages   the requester tiers: ordinary requests stop at free_reserved, system ones at
//           free_min, and only the pageout path takes the pages below free_min;
//   nowait  the pageout path never waits for memory: it fails a step and tries another rather
//           than sleep in vm_wait for pages only it could free.
//
// `reserves=on` (the default) keeps all three, `reserves=off` none (the deadlock the seeds
// predict), and a comma list keeps just those named - so that each one can be shown necessary
// by removing it alone (issue 15).

public struct ReserveProtections: OptionSet, Equatable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let zones = ReserveProtections(rawValue: 1 << 0)
    public static let pages = ReserveProtections(rawValue: 1 << 1)
    public static let nowait = ReserveProtections(rawValue: 1 << 2)
    public static let all: ReserveProtections = [.zones, .pages, .nowait]

    /// `on`, `off`, or a comma list of `zones`, `pages`, `nowait` (each at most once); nil
    /// for anything else.
    public static func parse(_ text: ByteString) -> ReserveProtections? {
        if text.equals("on") { return .all }
        if text.equals("off") { return [] }
        var result: ReserveProtections = []
        var valid = !text.isEmpty
        text.forEachPiece(separatedBy: UInt8(ascii: ",")) { word in
            let piece: ReserveProtections
            if word.equals("zones") { piece = .zones }
            else if word.equals("pages") { piece = .pages }
            else if word.equals("nowait") { piece = .nowait }
            else {
                valid = false
                return
            }
            if result.contains(piece) { valid = false }
            result.insert(piece)
        }
        return valid ? result : nil
    }

    /// What is on, for the boot log: "zones, pages, nowait", "none".
    public func describe<Sink: TextSink>(into sink: inout Sink) {
        if isEmpty { sink.write("none") }
        var separator = false
        func name(_ flag: ReserveProtections, _ text: StaticString) {
            guard contains(flag) else { return }
            if separator { sink.write(", ") }
            sink.write(text)
            separator = true
        }
        name(.zones, "zones")
        name(.pages, "pages")
        name(.nowait, "nowait")
    }
}
