// PagePolicyTests.swift - free-page thresholds across memory sizes, classes, fault injection.
import Testing
@testable import KernelPortable

@Suite struct PagePolicyTests {
    @Test(arguments: [UInt64(2048), 4096, 32768, 262144, 1 << 20, 16 << 20])
    func thresholdsAreOrderedAndProportional(totalPages: UInt64) {
        let thresholds = FreePageThresholds.derive(totalPages: totalPages)
        #expect(thresholds.isOrdered)
        #expect(thresholds.freeMin >= 32)
        #expect(thresholds.pagingTarget < totalPages / 4, "paging target leaves most memory usable")
        #expect(thresholds.freeMin == 32 + totalPages / 256)
    }

    @Test func pageoutFloorRaisesFreeMin() {
        let thresholds = FreePageThresholds.derive(totalPages: 4096, pageoutFloor: 200)
        #expect(thresholds.freeMin == 200 && thresholds.freeReserved == 400)
    }

    @Test func classesStopAtTheirFloors() {
        let t = FreePageThresholds(freeMin: 10, freeReserved: 20, pagingStart: 30, pagingTarget: 40)
        #expect(t.allows(.ordinary, taking: 1, from: 21))
        #expect(!t.allows(.ordinary, taking: 1, from: 20))
        #expect(t.allows(.system, taking: 1, from: 11))
        #expect(!t.allows(.system, taking: 1, from: 10))
        #expect(t.allows(.pageout, taking: 1, from: 1))
        #expect(!t.allows(.pageout, taking: 2, from: 1))
        #expect(!t.allows(.ordinary, taking: 8, from: 27))
    }

    func injector(_ text: String, seed: UInt64 = 9) -> FaultInjector? {
        withByteString(text) { FaultInjector.parse($0, seed: seed) }
    }

    @Test func everyNthFailsExactlyEveryNth() {
        var fault = injector("every:7")!
        var failures: [Int] = []
        for request in 1...70 where fault.shouldFail(.ordinary) { failures.append(request) }
        #expect(failures.count == 10)
        #expect(fault.injected == 10 && fault.requests == 70)
    }

    @Test func classFilterCountsOnlyThatClass() {
        var fault = injector("every:2:system")!
        let ordinary = fault.shouldFail(.ordinary), pageout = fault.shouldFail(.pageout)
        let first = fault.shouldFail(.system), second = fault.shouldFail(.system)
        #expect(!ordinary && !pageout)
        #expect(!first && second)
        #expect(fault.requests == 2)
    }

    @Test func randomIsSeededAndNearItsRate() {
        var a = injector("random:250")!, b = injector("random:250")!
        var runA: [Bool] = [], runB: [Bool] = []
        for _ in 0..<4000 {
            runA.append(a.shouldFail(.ordinary))
            runB.append(b.shouldFail(.ordinary))
        }
        #expect(runA == runB, "same seed, same failures")
        #expect(a.injected > 850 && a.injected < 1150)
    }

    @Test func classSetsFailOnlyTheirClasses() {
        var fault = injector("every:1:ordinary+system")!
        let ordinary = fault.shouldFail(.ordinary), system = fault.shouldFail(.system), pageout = fault.shouldFail(.pageout)
        #expect(ordinary && system && !pageout)
        #expect(injector("every:1:ordinary+") == nil && injector("every:1:+") == nil)
    }

    @Test func malformedPatternsAreRejected() {
        for text in ["", "every", "every:0", "every:x", "random:1001", "sometimes:3", "every:3:nosuch", "every:3:ordinary:x"] {
            #expect(injector(text) == nil, "\(text)")
        }
        #expect(injector("random:0") != nil)
    }
}
