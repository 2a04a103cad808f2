// Stress.swift - the workloads that put the memory system under pressure (issue: the
// low-memory deadlock). Selected by test suites, or directly with stress=<variant>.
//
// Every variant first fills memory and most of swap, then runs tight loops in several
// threads, each round allocating before it frees - so that when memory runs out a thread
// waits holding what it has, as real consumers do:
//   objects  many small (1-2 page) swap-backed objects: every page-out of a new object
//            needs a new swblock, so the swblock zone grows under pressure;
//   kmap     the same, plus small wired kmem allocations freed in pieces (front, back or
//            middle): map entries, PV entries and page tables churn under pressure;
// Every page written carries a pattern over all its bytes derived from the seed, the object and
// the page (kernel/Test/PagePattern.swift); it is checked, every word, before the memory is
// freed, and at the end. Nothing may be lost.

import Synchronization

extension LogTag {
    static let stress = LogTag("stress")
}

enum StressVariant: Int {
    case objects = 0
    case kmap = 1

    var name: StaticString { self == .objects ? "objects" : "kmap" }
}

struct StressReport {
    var objectsCreated: UInt64 = 0
    var pagesWritten: UInt64 = 0
    var pagesVerified: UInt64 = 0
    var mismatches: UInt64 = 0
    var wiredOperations: UInt64 = 0
    var stoppedWorkers = 0
}

enum Stress {
    static var report = StressReport()

    /// One live object of a worker.
    struct Live {
        var address: VirtualAddress
        var pages: UInt32
        var id: UInt32
    }

    struct Worker {
        var number: Int
        var seed: UInt64
        var rounds: Int
        var threads: Int
        var targetPages: Int
        var variant: StressVariant
        var live: UnsafeMutablePointer<Live>
        var liveCount = 0
        var livePages = 0
        var capacity: Int
        var nextID: UInt32 = 1
        var wired: UnsafeMutablePointer<Live>
        var wiredCount = 0
        var random: SeededRandom
    }

    static func write(_ object: Live, _ seed: UInt64) {
        for page in 0..<Int(object.pages) {
            PagePattern.fill(object.address + UInt64(page) * pageSize, PagePattern.key(seed, UInt64(object.id), page))
        }
        countEvent(&report.pagesWritten)
    }

    /// Checks every byte of every page of `object`; returns the pages that differ.
    static func verify(_ object: Live, _ seed: UInt64, firstPage: Int = 0) -> UInt64 {
        var bad: UInt64 = 0
        for page in 0..<Int(object.pages) {
            let base = object.address + UInt64(page) * pageSize
            if let word = PagePattern.firstMismatch(base, PagePattern.key(seed, UInt64(object.id), firstPage + page)) {
                bad += 1
                Log.error(.stress, "page \(page) of object \(object.id) at \(address: base) lost its contents (word \(word))")
            }
            countEvent(&report.pagesVerified)
        }
        return bad
    }

    // MARK: - Running

    /// The timer tick at which the workers stop filling and churning and give everything back
    /// (0: no time limit, they run their rounds). Set by `run(seconds:)`; `stopNow` brings it
    /// forward.
    static var deadlineTick: UInt64 = 0
    /// Workers that have finished filling (see `waitForEveryFill`).
    static let filledWorkers = Atomic<Int>(0)
    /// Pageout's out-of-memory stops when the run began: a stopped worker never reports full.
    static var oomKillsAtStart: UInt64 = 0
    static var timeIsUp: Bool { deadlineTick != 0 && Timer.ticks >= deadlineTick }

    /// Ends a run with a time limit early (the monitor's `exit`): the workers stop at their
    /// next object and free what they hold, checking it.
    static func stopNow() {
        if deadlineTick != 0 { deadlineTick = max(1, Timer.ticks) }
    }

    /// Runs `variant` in `threads` threads and returns what happened. `rounds` per thread;
    /// with `seconds` (the monitor's `stress SECONDS`), the workers stop filling and churning
    /// when that much time has passed, whatever round they are at, and then free everything.
    static func run(_ variant: StressVariant, threads: Int, rounds: Int, seed: UInt64, seconds: UInt64 = 0) -> StressReport {
        report = StressReport()
        deadlineTick = seconds > 0 ? Timer.ticks + seconds * Timer.hertz : 0
        filledWorkers.store(0, ordering: .relaxed)
        oomKillsAtStart = Pageout.statistics.oomKills
        // Fill to 80% of swap (each live page may hold a swap block), and to at most 1.5 times
        // RAM. The suites give a disk of twice RAM or more, so that is past RAM: with every
        // worker's share live at once (waitForEveryFill) a third of the pages or more must be
        // in swap, and the churn and the final checks bring them back. The cap keeps a disk
        // much larger than RAM (test=all's 512 MiB at 128M) from multiplying the work without
        // adding pressure; it was twice RAM until make test ran over its 20 minutes.
        let swapPages = Int(SwapDevice.blocks)
        let perThread = min(swapPages * 8 / 10, 3 * Int(PhysicalMemory.managedPages) / 2) / threads
        // With a time limit the rounds are only a ceiling (the monitor gives Int.max): say the time.
        let length: LogMessage = seconds > 0 ? "for \(seconds) s" : "\(rounds) rounds each"
        Log.info(.stress, "\(variant.name): \(threads) threads, \(message: length), seed \(seed); filling \(perThread * threads) pages (RAM \(PhysicalMemory.managedPages) pages, swap \(swapPages) blocks)")
        let workers = Kmalloc.allocate(threads * MemoryLayout<Worker>.stride)!.bindMemory(to: Worker.self, capacity: threads)
        var handles: [ThreadRef] = []
        handles.reserveCapacity(threads)
        for number in 0..<threads {
            let capacity = perThread + 16
            let live = Kmalloc.allocate(capacity * MemoryLayout<Live>.stride)!.bindMemory(to: Live.self, capacity: capacity)
            let wired = Kmalloc.allocate(64 * MemoryLayout<Live>.stride)!.bindMemory(to: Live.self, capacity: 64)
            (workers + number).initialize(to: Worker(number: number, seed: seed &+ UInt64(number) &* 0x1000_0001, rounds: rounds,
                                                     threads: threads, targetPages: perThread, variant: variant, live: live, capacity: capacity,
                                                     wired: wired, random: SeededRandom(seed: seed &+ UInt64(number))))
            let worker = workers + number
            handles.append(Threads.spawn("stress") { work(worker) })
        }
        for handle in handles { if Threads.join(handle) { report.stoppedWorkers += 1 } }
        for number in 0..<threads {
            Kmalloc.free(UnsafeMutableRawPointer(workers[number].live))
            Kmalloc.free(UnsafeMutableRawPointer(workers[number].wired))
        }
        Kmalloc.free(UnsafeMutableRawPointer(workers))
        deadlineTick = 0
        let r = report
        Log.info(.stress, "\(variant.name) done: \(r.objectsCreated) objects created, \(r.pagesWritten) written, \(r.pagesVerified) pages verified, \(r.mismatches) lost, \(r.wiredOperations) wired kmem operations, \(r.stoppedWorkers) workers stopped")
        return r
    }

    static func work(_ worker: UnsafeMutablePointer<Worker>) {
        let owner = Scheduler.current.pointee.id
        // Fill.
        while worker.pointee.livePages < worker.pointee.targetPages && worker.pointee.liveCount < worker.pointee.capacity && !timeIsUp {
            create(worker, owner)
        }
        waitForEveryFill(worker.pointee.threads)
        // Churn: allocate first, then free - a thread that cannot allocate waits holding all.
        for _ in 0..<worker.pointee.rounds {
            if timeIsUp { break }
            create(worker, owner)
            if worker.pointee.variant == .kmap { churnWired(worker) }
            let index = worker.pointee.random.next(below: worker.pointee.liveCount)
            retire(worker, index)
        }
        while worker.pointee.liveCount > 0 { retire(worker, worker.pointee.liveCount - 1) }
        while worker.pointee.wiredCount > 0 { freeWired(worker, worker.pointee.wiredCount - 1, whole: true) }
    }

    /// Waits until every worker has filled its share, so that the whole fill is live at
    /// once before anyone churns or frees. Without it the pressure depends on scheduling:
    /// with 4 CPUs and 8 workers, the first four could fill, churn and free before the other
    /// four started, each half under RAM, and nothing went to swap (concurrency seed 20).
    /// A worker stopped by the out-of-memory policy never reports, so a stop releases the
    /// others too (memory was short, which is what the wait is for), as does the time limit.
    static func waitForEveryFill(_ threads: Int) {
        filledWorkers.wrappingAdd(1, ordering: .relaxed)
        while filledWorkers.load(ordering: .relaxed) < threads && Pageout.statistics.oomKills == oomKillsAtStart && !timeIsUp {
            Scheduler.sleep(ticks: 1)
        }
    }

    static func create(_ worker: UnsafeMutablePointer<Worker>, _ owner: UInt64) {
        let pages = UInt32(1 + worker.pointee.random.next(below: 2))
        guard let address = Kmem.allocatePageable(UInt64(pages) * pageSize, owner: owner) else {
            Log.error(.stress, "kmem_alloc_pageable failed for a waiting caller")
            return
        }
        let object = Live(address: address, pages: pages, id: worker.pointee.nextID)
        worker.pointee.nextID += 1
        write(object, worker.pointee.seed)
        worker.pointee.live[worker.pointee.liveCount] = object
        worker.pointee.liveCount += 1
        worker.pointee.livePages += Int(pages)
        countEvent(&report.objectsCreated)
    }

    static func retire(_ worker: UnsafeMutablePointer<Worker>, _ index: Int) {
        let object = worker.pointee.live[index]
        noteMismatches(verify(object, worker.pointee.seed))
        Kmem.freePageable(object.address, UInt64(object.pages) * pageSize)
        worker.pointee.liveCount -= 1
        worker.pointee.livePages -= Int(object.pages)
        worker.pointee.live[index] = worker.pointee.live[worker.pointee.liveCount]
    }

    /// A small wired allocation, and a piece of an older one freed: map entries split and
    /// merge back, PV entries and page tables come and go.
    static func churnWired(_ worker: UnsafeMutablePointer<Worker>) {
        if worker.pointee.wiredCount < 48 {
            let pages = UInt32(1 + worker.pointee.random.next(below: 4))
            if let address = Kmem.allocate(UInt64(pages) * pageSize) {
                let block = Live(address: address, pages: pages, id: 0x8000_0000 | worker.pointee.nextID)
                worker.pointee.nextID += 1
                write(block, worker.pointee.seed)
                worker.pointee.wired[worker.pointee.wiredCount] = block
                worker.pointee.wiredCount += 1
                countEvent(&report.wiredOperations)
            }
        }
        if worker.pointee.wiredCount > 8 {
            freeWired(worker, worker.pointee.random.next(below: worker.pointee.wiredCount), whole: false)
        }
    }

    /// Frees all of a wired block, or one page of it - the front, the back (kmem_free), or one
    /// in the middle, which splits its map entry (freePart). What stays is checked, and renamed (rewritten
    /// under a new id) where its page numbering changes.
    static func freeWired(_ worker: UnsafeMutablePointer<Worker>, _ index: Int, whole: Bool) {
        let block = worker.pointee.wired[index]
        noteMismatches(verify(block, worker.pointee.seed))
        countEvent(&report.wiredOperations)
        if whole || block.pages == 1 {
            Kmem.free(block.address, UInt64(block.pages) * pageSize)
            worker.pointee.wiredCount -= 1
            worker.pointee.wired[index] = worker.pointee.wired[worker.pointee.wiredCount]
            return
        }
        let pages = Int(block.pages)
        switch worker.pointee.random.next(below: pages >= 3 ? 3 : 2) {
        case 0:     // the front
            Kmem.free(block.address, pageSize)
            worker.pointee.wired[index] = renamed(Live(address: block.address + pageSize, pages: block.pages - 1, id: block.id), firstPage: 1, worker)
        case 1:     // the back
            Kmem.free(block.address + UInt64(pages - 1) * pageSize, pageSize)
            worker.pointee.wired[index] = Live(address: block.address, pages: block.pages - 1, id: block.id)
        default:    // a page in the middle: two pieces stay (the split's entry reserved first)
            let hole = 1 + worker.pointee.random.next(below: pages - 2)
            guard Kmem.freePart(block.address + UInt64(hole) * pageSize, pageSize, .ordinary) else {
                return Test.fail("an ordinary freePart could not reserve its map entry")
            }
            worker.pointee.wired[index] = Live(address: block.address, pages: UInt32(hole), id: block.id)
            let back = Live(address: block.address + UInt64(hole + 1) * pageSize, pages: UInt32(pages - hole - 1), id: block.id)
            if worker.pointee.wiredCount < 64 {
                worker.pointee.wired[worker.pointee.wiredCount] = renamed(back, firstPage: hole + 1, worker)
                worker.pointee.wiredCount += 1
            } else {
                noteMismatches(verify(back, worker.pointee.seed, firstPage: hole + 1))
                Kmem.free(back.address, UInt64(back.pages) * pageSize)
            }
        }
    }

    /// Checks a piece whose pages were numbered from `firstPage`, and rewrites it under a new
    /// id numbered from 0.
    static func renamed(_ piece: Live, firstPage: Int, _ worker: UnsafeMutablePointer<Worker>) -> Live {
        noteMismatches(verify(piece, worker.pointee.seed, firstPage: firstPage))
        let fresh = Live(address: piece.address, pages: piece.pages, id: 0x8000_0000 | worker.pointee.nextID)
        worker.pointee.nextID += 1
        write(fresh, worker.pointee.seed)
        return fresh
    }

    static func noteMismatches(_ bad: UInt64) {
        if bad > 0 { withInterruptsDisabled { report.mismatches += bad } }
    }
}
