// EarlyHeapTests.swift - the early heap: alignment, reuse, merging, misuse detection.
import Testing
@testable import KernelPortable

@Suite struct EarlyHeapTests {
    func withHeap(size: Int = 64 * 1024, _ body: (inout EarlyHeap) -> Void) {
        let region = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 4096)
        defer { region.deallocate() }
        var heap = EarlyHeap(base: region, size: size)
        body(&heap)
    }

    @Test func allocationsAreAlignedAndDisjoint() {
        withHeap { heap in
            var blocks: [(UnsafeMutableRawPointer, Int)] = []
            for (index, alignment) in [16, 64, 4096, 16, 256, 8].enumerated() {
                let size = 24 + index * 40
                let block = heap.allocate(byteCount: size, alignment: alignment)!
                #expect(Int(bitPattern: block) % alignment == 0)
                block.initializeMemory(as: UInt8.self, repeating: UInt8(index), count: size)
                blocks.append((block, size))
            }
            for (index, (block, size)) in blocks.enumerated() {
                let bytes = block.assumingMemoryBound(to: UInt8.self)
                #expect((0..<size).allSatisfy { bytes[$0] == UInt8(index) }, "block \(index) was overwritten")
            }
            #expect(heap.isConsistent())
        }
    }

    @Test func freedMemoryIsReusedAndMerged() {
        withHeap(size: 4096) { heap in
            let a = heap.allocate(byteCount: 1000, alignment: 16)!
            let b = heap.allocate(byteCount: 1000, alignment: 16)!
            let c = heap.allocate(byteCount: 1000, alignment: 16)!
            #expect(heap.allocate(byteCount: 2000, alignment: 16) == nil)
            #expect(heap.free(b) == nil)
            #expect(heap.free(a) == nil)
            let merged = heap.allocate(byteCount: 2000, alignment: 16)
            #expect(merged != nil, "a and b merge into one block of ~2 KiB")
            #expect(heap.free(merged!) == nil)
            #expect(heap.free(c) == nil)
            #expect(heap.bytesInUse == 0)
            #expect(heap.allocate(byteCount: 4000, alignment: 16) != nil)
            #expect(heap.isConsistent())
        }
    }

    @Test func detectsDoubleFreeAndForeignPointers() {
        withHeap { heap in
            let a = heap.allocate(byteCount: 100, alignment: 16)!
            #expect(heap.free(a) == nil)
            #expect(heap.free(a) == .doubleFree)
            var local = 0
            withUnsafeMutableBytes(of: &local) { #expect(heap.free($0.baseAddress!) == .notFromThisHeap) }
            #expect(heap.isConsistent())
        }
    }

    @Test func seededRandomWorkloadStaysConsistent() {
        let seed: UInt64 = 20261122
        withHeap(size: 256 * 1024) { heap in
            var random = SeededRandom(seed: seed)
            var live: [UnsafeMutableRawPointer] = []
            for _ in 0..<5000 {
                if live.isEmpty || random.next(below: 3) != 0 {
                    let alignment = 1 << random.next(below: 8)
                    if let block = heap.allocate(byteCount: 1 + random.next(below: 700), alignment: alignment) {
                        live.append(block)
                    }
                } else {
                    let index = random.next(below: live.count)
                    #expect(heap.free(live.remove(at: index)) == nil)
                }
            }
            #expect(heap.isConsistent(), "seed \(seed)")
            for block in live { #expect(heap.free(block) == nil) }
            #expect(heap.bytesInUse == 0)
            #expect(heap.allocate(byteCount: 250 * 1024, alignment: 16) != nil, "everything merged back")
        }
    }
}
