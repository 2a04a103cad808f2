// CPUPageListTests.swift - the per-CPU page lists (kernel/Mem/Portable/CPUPageList.swift): the
// stack each list is, its flush of the oldest pages, and the limits derived from memory and CPUs.
import Testing
@testable import KernelPortable

@Suite struct CPUPageListTests {
    /// Fresh storage for every slot, released by the caller.
    func makeStorage() -> UnsafeMutableRawPointer {
        let storage = UnsafeMutableRawPointer.allocate(byteCount: CPUPageList.slots * CPUPageList.stride, alignment: 64)
        CPUPageList.initialize(storage)
        return storage
    }

    @Test func theHeaderIsOneCacheLineAndSlotsDoNotOverlap() {
        #expect(MemoryLayout<CPUPageList>.stride == 64, "the header is one cache line: a CPU's fast path writes no line another CPU's uses")
        let storage = makeStorage()
        defer { storage.deallocate() }
        let first = CPUPageList.list(storage, 0), second = CPUPageList.list(storage, 1)
        for number in 0..<CPUPageList.capacity { CPUPageList.push(PageIndex(number), on: first) }
        #expect(second.pointee.count == 0 && second.pointee.lock == 0, "filling one list leaves the next untouched")
        #expect(UnsafeMutableRawPointer(second) - UnsafeMutableRawPointer(first) == CPUPageList.stride)
    }

    @Test func aListGivesBackTheMostRecentlyFreedPageFirst() {
        let storage = makeStorage()
        defer { storage.deallocate() }
        let list = CPUPageList.list(storage, 3)
        #expect(CPUPageList.pop(list) == nil, "an empty list has nothing")
        for number in [7, 9, 11] { CPUPageList.push(PageIndex(number), on: list) }
        #expect(CPUPageList.pop(list) == PageIndex(11), "the page freed last is the one still in the cache")
        #expect(CPUPageList.pop(list) == PageIndex(9))
        #expect(list.pointee.count == 1)
    }

    @Test func aFlushGivesBackTheOldestPagesAndKeepsTheRestInOrder() {
        let storage = makeStorage()
        defer { storage.deallocate() }
        let list = CPUPageList.list(storage, 0)
        for number in 0..<10 { CPUPageList.push(PageIndex(number), on: list) }
        var given: [Int] = []
        CPUPageList.removeOldest(4, from: list) { given.append($0.int) }
        #expect(given == [0, 1, 2, 3], "the coldest pages go back to the centre")
        #expect(list.pointee.count == 6)
        var left: [Int] = []
        while let page = CPUPageList.pop(list) { left.append(page.int) }
        #expect(left == [9, 8, 7, 6, 5, 4], "the others moved down in order")
        CPUPageList.removeOldest(4, from: list) { _ in Issue.record("an empty list gives nothing back") }
        #expect(list.pointee.count == 0)
    }

    @Test(arguments: [(UInt64(3_800), 1), (5_900, 1), (5_900, 2), (5_900, 4), (19_000, 2), (19_000, 4), (800_000, 8), (4_000_000, 64)])
    func limitsKeepEveryListTogetherUnderOneTwoHundredFiftySixthOfMemory(managedPages: UInt64, cpus: Int) {
        let limits = CPUPageListLimits.derive(managedPages: managedPages, cpus: cpus)
        if limits.isOn {
            #expect(UInt64(limits.high * cpus) <= managedPages / 256, "all lists together: at most 1/256 of memory")
            #expect(limits.high >= CPUPageListLimits.smallestHigh && limits.high <= CPUPageList.capacity)
            #expect(limits.batch >= 1 && limits.batch * 4 <= limits.high, "a batch is a quarter of a list")
        } else {
            #expect(managedPages / 256 / UInt64(cpus) < UInt64(CPUPageListLimits.smallestHigh), "lists are off only when each would be under the smallest")
        }
    }

    @Test func smallMachinesHaveNoListsAndLargeOnesAreCappedAtCapacity() {
        #expect(CPUPageListLimits.derive(managedPages: 5_900, cpus: 4) == .off, "23 MiB for 4 CPUs: 5 pages each is not worth a list")
        #expect(CPUPageListLimits.derive(managedPages: 5_900, cpus: 1) == CPUPageListLimits(high: 23, batch: 5))
        #expect(CPUPageListLimits.derive(managedPages: 1 << 20, cpus: 2).high == CPUPageList.capacity)
    }
}
