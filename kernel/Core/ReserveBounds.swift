// ReserveBounds.swift - how many reserve objects and pages each path needs: the one source of
// truth. docs/reserves.md derives every number here from the worst-case chain of allocations
// of each path that must make progress under memory pressure; the kernel sizes its reserves
// from these constants, and the tests check that the deepest reserve use ever observed stays
// within them.

public enum ReserveBounds {
    public static let pvEntryReserve = 64
    public static let mapEntryReserve = 16
    public static let swapBlockReserve = 8
}
