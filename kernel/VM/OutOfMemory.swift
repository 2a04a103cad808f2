// OutOfMemory.swift - the out-of-memory policy: what happens when memory and swap are both full.
//
// The pageout thread (kernel/VM/Pageout.swift) calls `act` when a round freed nothing, swap
// cannot take more (or there is none) and threads are waiting for memory. It picks the
// thread whose workload owns the most pageable memory (resident plus swapped pages of the
// memory objects it created), stops it and frees that memory right away, saying so in the
// log: never a silent hang. It is not a general memory-pressure policy - it does not touch
// wired memory, zones or the kernel's own (owner 0) objects, and it never runs while the
// pageout thread can still make progress.
//
// Locking: the victim is chosen on MemoryObjects.all and pinned with interrupts off (objects
// are destroyed by other threads; the pin keeps the chosen one alive while its pages are
// freed); its owner is found by id and marked killed with interrupts off each time, because
// the thread may end and be reaped meanwhile. The object's state changes only through
// MemoryObject's methods (kernel/VM/MemoryObject.swift).

/// What happens when memory and swap are both full: the thread owning the most pageable
/// memory is stopped and its memory freed, with a message saying so. Never a silent hang.
enum OutOfMemory {
    /// Picks a victim and stops it; false when there is nobody to stop.
    static func act() -> Bool {
        // Chosen and pinned with interrupts off: objects are destroyed by other threads.
        var victimPages = 0
        let victim: ObjectRef? = withInterruptsDisabled {
            var best: ObjectRef? = nil
            var object = MemoryObjects.all
            while let candidate = object {
                let pages = candidate.pointee.residentPages + candidate.pointee.swappedPages
                if candidate.pointee.owner != 0 && !candidate.pointee.dead && pages > victimPages {
                    best = candidate
                    victimPages = pages
                }
                object = candidate.pointee.next
            }
            if let best = best { MemoryObjects.pin(best) }
            return best
        }
        guard let chosen = victim else {
            Log.error(.pageout, "out of memory: swap is full and no thread owns pageable memory to give back")
            return false
        }
        Pageout.statistics.oomKills += 1
        let ownerID = chosen.pointee.owner
        // The owner is found by id each time, with interrupts off: it may end (and be reaped)
        // while its pages are being freed.
        let ownerName: StaticString = withInterruptsDisabled {
            var name: StaticString = "(gone)"
            Threads.forEach { thread in
                if thread.pointee.id == ownerID {
                    thread.pointee.killed = true
                    name = thread.pointee.name
                }
            }
            chosen.pointee.markDead()
            return name
        }
        Log.error(.pageout, "out of memory: swap is full (\(SwapDevice.usedBlocks) of \(SwapDevice.blocks) blocks) and \(PhysicalMemory.freePages) pages are free; stopping thread \(ownerID) \(ownerName) which holds \(victimPages) pages of pageable memory")
        // Its pages are freed now (the pin keeps the object alive meanwhile, even if the thread
        // has already ended and its memory is being freed); the thread ends at its next fault
        // or wait.
        let freeBefore = PhysicalMemory.freePages
        MemoryObjects.releasePages(chosen, first: 0, count: chosen.pointee.pageCount)
        MemoryObjects.unpin(chosen)
        Watchdog.pageoutProgress += PhysicalMemory.freePages > freeBefore ? PhysicalMemory.freePages - freeBefore : 1
        withInterruptsDisabled {
            Threads.forEach { thread in
                if thread.pointee.id == ownerID && thread.pointee.state == .sleeping, let channel = thread.pointee.wait.channel {
                    Scheduler.wakeup(channel)
                }
            }
        }
        return true
    }
}
