// PageOrder.swift - the largest block the page allocator manages, as a constant of its own.
//
// The buddy allocator (BuddyAllocator.swift) serves blocks of 2^0 ... 2^largest pages, and
// the reserve analysis (ReserveBounds.swift) needs the same number: a split of the largest
// block down to one page leaves one free half, and so takes one buddy descriptor, per order.
// The constant sits here, with no dependencies, so that the host program that prints the
// model's constants (verify/ReserveConstants.swift) can be compiled without the allocator.

public enum PageOrder {
    /// The largest order: blocks of 2^10 pages (4 MiB).
    public static let largest = 10
}
