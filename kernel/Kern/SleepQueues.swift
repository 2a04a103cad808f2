// SleepQueues.swift - where sleeping threads wait: chains hashed by channel, and a timeout list.
//
// Every sleeping thread is on exactly one sleep queue chain: the chain its wait channel hashes
// to (FreeBSD's sleepqueue chains, without the per-channel queue inside a chain: a chain holds
// the few threads whose channels share its hash, and wakeup skips those of other channels). So
// wakeup(channel) looks only at the threads of one chain instead of every sleeper. A thread in
// a timed sleep (Scheduler.sleep(on:untilTick:)) is also on the timeout list, sorted by wake
// tick, so the timer tick looks only at its head: the threads whose time has come, and one more.
//
// Both are doubly linked through the Thread record (sleepNext/sleepPrevious, timeoutNext/
// timeoutPrevious), so a thread woken by its channel leaves the timeout list, and a thread
// woken by its timeout leaves its chain, in O(1); the chain's head is found again from the
// thread's channel. Inserting on the timeout list walks from its tail, which is where a new
// timeout usually goes (sleeps of the same length are queued in the order they began).
//
// What wakes first: within a chain the newest sleeper is first, so threads of one channel are
// made ready newest first - the order the single sleeper list this replaced had. Timeouts of
// the same tick expire in the order they were set.
//
// Invariants (isConsistent checks them):
//   - a thread is on a chain iff it is sleeping, on the chain of hash(wait.channel), once;
//   - a thread is on the timeout list iff it is sleeping with wakeAtTick != 0 (remove clears
//     wakeAtTick, so a woken thread that has not run yet is on neither);
//   - the timeout list is sorted by wakeAtTick; previous and next links agree everywhere.
//
// Locking: one CPU, interrupts off. Every function here is called with interrupts disabled
// (sleep and wakeup by the scheduler, expiry by the timer interrupt) and allocates nothing;
// the chain heads are allocated once, by Scheduler.bootstrap, before any thread sleeps.

import ArchSupport

enum SleepQueues {
    /// Chains: a power of two. A few dozen threads sleep at once, usually on a handful of
    /// channels; 128 chains keep a wakeup's walk to about one thread.
    static let chainCount = 128
    static let chainShift: UInt64 = 64 - 7
    static var chains: UnsafeMutablePointer<ThreadRef?>? = nil
    /// The timeout list, earliest wake tick first.
    static var timeoutHead: ThreadRef? = nil
    static var timeoutTail: ThreadRef? = nil
    /// Threads wakeup looked at, and threads the tick's expiry looked at: how much work the
    /// hot paths did (the tests check it does not grow with the number of sleepers).
    static var wakeupExamined: UInt64 = 0
    static var expiryExamined: UInt64 = 0
    /// Timed sleeps that ended by their timeout.
    static var timeoutsExpired: UInt64 = 0

    static func initialize() {
        let heads = UnsafeMutablePointer<ThreadRef?>.allocate(capacity: chainCount)
        heads.initialize(repeating: nil, count: chainCount)
        chains = heads
    }

    /// The chain `channel` hashes to: Fibonacci hashing, the top bits of the address times
    /// 2^64/phi, which spreads aligned and neighbouring addresses alike.
    static func chain(of channel: UnsafeRawPointer?) -> Int {
        Int((UInt64(UInt(bitPattern: channel)) &* 0x9E37_79B9_7F4A_7C15) >> chainShift)
    }

    /// Puts `thread` (sleeping, its wait and wakeAtTick set) on its channel's chain, and on the
    /// timeout list when wakeAtTick is set.
    static func insert(_ thread: ThreadRef) {
        kassert(!CPU.interruptsEnabled, "sleep queues changed with interrupts on")
        kassert(thread.pointee.sleepNext == nil && thread.pointee.sleepPrevious == nil, "thread \(thread.pointee.name) is already on a sleep queue")
        let index = chain(of: thread.pointee.wait.channel)
        let head = chains![index]
        thread.pointee.sleepNext = head
        head?.pointee.sleepPrevious = thread
        chains![index] = thread
        if thread.pointee.wakeAtTick != 0 { insertTimeout(thread) }
    }

    /// Sorted insertion, from the tail: after every thread that wakes no later.
    private static func insertTimeout(_ thread: ThreadRef) {
        let tick = thread.pointee.wakeAtTick
        var after = timeoutTail
        while let candidate = after, candidate.pointee.wakeAtTick > tick { after = candidate.pointee.timeoutPrevious }
        thread.pointee.timeoutPrevious = after
        if let after = after {
            thread.pointee.timeoutNext = after.pointee.timeoutNext
            after.pointee.timeoutNext = thread
        } else {
            thread.pointee.timeoutNext = timeoutHead
            timeoutHead = thread
        }
        if let next = thread.pointee.timeoutNext { next.pointee.timeoutPrevious = thread } else { timeoutTail = thread }
    }

    /// Takes `thread` off its chain and, if it is there, the timeout list. O(1).
    static func remove(_ thread: ThreadRef) {
        let next = thread.pointee.sleepNext, previous = thread.pointee.sleepPrevious
        if let previous = previous { previous.pointee.sleepNext = next } else { chains![chain(of: thread.pointee.wait.channel)] = next }
        next?.pointee.sleepPrevious = previous
        thread.pointee.sleepNext = nil
        thread.pointee.sleepPrevious = nil
        guard thread.pointee.wakeAtTick != 0 else { return }
        let later = thread.pointee.timeoutNext, earlier = thread.pointee.timeoutPrevious
        if let earlier = earlier { earlier.pointee.timeoutNext = later } else { timeoutHead = later }
        if let later = later { later.pointee.timeoutPrevious = earlier } else { timeoutTail = earlier }
        thread.pointee.timeoutNext = nil
        thread.pointee.timeoutPrevious = nil
        thread.pointee.wakeAtTick = 0
    }

    /// Takes every thread sleeping on `channel` off the queues and hands each to `wake`,
    /// newest sleeper first; returns how many.
    static func removeSleepers(on channel: UnsafeRawPointer, _ wake: (ThreadRef) -> Void) -> Int {
        guard let chains = chains else { return 0 }        // before the scheduler: nobody sleeps
        var woken = 0
        var candidate = chains[chain(of: channel)]
        while let thread = candidate {
            candidate = thread.pointee.sleepNext
            wakeupExamined &+= 1
            if thread.pointee.wait.channel == channel {
                remove(thread)
                wake(thread)
                woken += 1
            }
        }
        return woken
    }

    /// Takes the threads whose wake tick is `tick` or earlier off the queues, earliest first,
    /// and hands each to `wake`. Looks at those threads and the head after them only.
    static func removeExpired(at tick: UInt64, _ wake: (ThreadRef) -> Void) {
        while let head = timeoutHead {
            expiryExamined &+= 1
            guard head.pointee.wakeAtTick <= tick else { return }
            timeoutsExpired &+= 1
            remove(head)
            wake(head)
        }
    }

    /// Whether `thread` is on the timeout list, by walking it. For tests.
    static func timeoutListContains(_ thread: ThreadRef) -> Bool {
        var current = timeoutHead
        while let candidate = current {
            if candidate == thread { return true }
            current = candidate.pointee.timeoutNext
        }
        return false
    }

    /// Whether `thread` is on the chain of `channel`, by walking it. For tests.
    static func chainContains(_ thread: ThreadRef, channel: UnsafeRawPointer) -> Bool {
        var current = chains?[chain(of: channel)]
        while let candidate = current {
            if candidate == thread { return true }
            current = candidate.pointee.sleepNext
        }
        return false
    }

    /// Every invariant above, against the list of all threads. For tests: O(threads + chains).
    static func isConsistent() -> Bool {
        guard let chains = chains else { return true }
        var onChains = 0
        for index in 0..<chainCount {
            var previous: ThreadRef? = nil
            var current = chains[index]
            while let thread = current {
                if thread.pointee.state != .sleeping || chain(of: thread.pointee.wait.channel) != index
                    || thread.pointee.sleepPrevious != previous { return false }
                onChains += 1
                if onChains > Threads.live { return false }           // a cycle
                previous = thread
                current = thread.pointee.sleepNext
            }
        }
        var onTimeouts = 0
        var previous: ThreadRef? = nil
        var current = timeoutHead
        while let thread = current {
            let tick = thread.pointee.wakeAtTick
            if thread.pointee.state != .sleeping || tick == 0 || thread.pointee.timeoutPrevious != previous { return false }
            if let previous = previous, previous.pointee.wakeAtTick > tick { return false }
            onTimeouts += 1
            if onTimeouts > Threads.live { return false }
            previous = thread
            current = thread.pointee.timeoutNext
        }
        if timeoutTail != previous { return false }
        var sleeping = 0
        var timed = 0
        Threads.forEach { thread in
            if thread.pointee.state == .sleeping {
                sleeping += 1
                if thread.pointee.wakeAtTick != 0 { timed += 1 }
            }
        }
        return onChains == sleeping && onTimeouts == timed
    }
}
