// DriverTests.swift - the portable parts of the disk drivers: the legacy virtqueue layout the
// device computes too, and the diskfault= plan.
import Testing
@testable import KernelPortable

@Suite struct VirtqueueLayoutTests {
    @Test func layoutOfQEMUsVirtioBlockQueueOf256() {
        let layout = VirtqueueLayout(size: 256)!
        #expect(layout.availableOffset == 4096)
        #expect(layout.usedOffset == 8192, "the available ring (518 bytes) ends past 4 KiB: the used ring starts on the next page")
        #expect(layout.totalBytes == 12288)
        #expect(layout.pages == 3)
        #expect(layout.availableSlotOffset(255) == 4096 + 4 + 510)
        #expect(layout.usedElementOffset(1) == 8192 + 4 + 8)
    }

    @Test func smallQueuesFitTwoPages() {
        let layout = VirtqueueLayout(size: 128)!
        #expect(layout.usedOffset == 4096)
        #expect(layout.totalBytes == 8192)
    }

    @Test func sizesThatAreNotPowersOfTwoAreRefused() {
        #expect(VirtqueueLayout(size: 0) == nil)
        #expect(VirtqueueLayout(size: 100) == nil)
        #expect(VirtqueueLayout(size: 65536) == nil)
    }
}

@Suite struct DiskFaultPlanTests {
    func parse(_ text: String) -> DiskFaultPlan? { withByteString(text) { DiskFaultPlan.parse($0) } }

    @Test func parsesBothPartsInEitherOrder() {
        #expect(parse("write:3,read:7") == DiskFaultPlan(failingWrite: 3, failingRead: 7))
        #expect(parse("read:7,write:3") == DiskFaultPlan(failingWrite: 3, failingRead: 7))
        #expect(parse("read:1") == DiskFaultPlan(failingWrite: 0, failingRead: 1))
        #expect(parse("off") == DiskFaultPlan())
        #expect(parse("off")?.isActive == false)
    }

    @Test func parsesRanges() {
        #expect(parse("write:6-9") == DiskFaultPlan(failingWrite: 6, lastFailingWrite: 9))
        #expect(parse("write:2-2,read:1-3") == DiskFaultPlan(failingWrite: 2, failingRead: 1, lastFailingRead: 3))
        var plan = DiskFaultPlan(failingWrite: 2, lastFailingWrite: 4)
        #expect((1...6).map { _ in plan.shouldFail(.write) } == [false, true, true, true, false, false])
    }

    @Test func refusesAnythingElse() {
        for bad in ["", "write", "write:", "write:0", "write:x", "erase:3", "write:1,write:2", "write:1,", "read:2;write:1",
                    "write:3-2", "write:0-2", "write:-2", "write:2-", "write:1-2-3"] {
            #expect(parse(bad) == nil, "\(bad)")
        }
    }

    @Test func theNthOperationFailsOnceAndOnlyIt() {
        var plan = DiskFaultPlan(failingWrite: 3, failingRead: 2)
        let writes = (1...5).map { _ in plan.shouldFail(.write) }
        #expect(writes == [false, false, true, false, false])
        let reads = (1...3).map { _ in plan.shouldFail(.read) }
        #expect(reads == [false, true, false])
        #expect(plan.writes == 5 && plan.reads == 3)
    }
}
