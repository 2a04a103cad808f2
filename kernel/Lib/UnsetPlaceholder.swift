// UnsetPlaceholder.swift - the one value a pointer holds before boot sets it.
//
// Some kernel globals are pointers that boot fills in once and every later use reads without
// a check: the running thread (Scheduler.current, on every sleep, wakeup and fault), the
// kernel maps (every kmem allocation and pageable fault), the kernel's zones, the disk's
// mutex. Making them optional would put a nil check and a trap on each of those reads and a
// `!` at every use, to catch only a use before initialisation - which this placeholder
// catches too, for free: it points at address 8, inside page 0, which no page table the
// kernel builds ever maps (docs/memory-layout.md). Once Pmap.bootstrap has loaded the
// kernel's own tables, a read or write through an unset pointer is a page fault at a tiny
// address, and the panic report says so, instead of quietly corrupting memory. (Not 0:
// `UnsafeMutablePointer(bitPattern: 0)` is nil. Before Pmap.bootstrap the boot identity map
// still covers page 0, so nothing that runs that early may use these globals.)

extension UnsafeMutablePointer {
    /// A pointer into the never-mapped page 0, for globals that boot sets before first use.
    /// Using it faults loudly; see the top of this file.
    @inline(__always)
    public static var unsetPlaceholder: UnsafeMutablePointer<Pointee> {
        UnsafeMutablePointer(bitPattern: 8)!
    }
}
