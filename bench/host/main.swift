// main.swift - host-bench: the kernel's zone allocator against the C library's malloc.
//
//   host-bench --allocator zone|glibc|jemalloc|mimalloc|tcmalloc|malloc [--operations N] [--seed S]
//
// One process times one contender on every workload (pair, batch, random) for every object
// size (48, 64, 256 bytes), in that fixed order, and prints one line per measurement:
//
//   result allocator=zone workload=pair size=48 operations=4000000 ns_per_op=7.41
//
// `zone` is kernel/Mem/Portable's ZoneRef (BenchZoneEnvironment.swift). Every other name calls
// malloc/free; jemalloc, mimalloc and tcmalloc must have been put in front of glibc with
// LD_PRELOAD, and the program stops unless the malloc it finds is the one it was asked for
// (`malloc` takes whichever is there). bench/host/run.sh launches the contenders and makes
// the table; lines starting with '#' are for people.
import Glibc

struct Options {
    var allocator = ""
    var operations = 4_000_000
    var seed: UInt64 = 0x5EED_2024
}

func usage(_ problem: String) -> Never {
    print("host-bench: \(problem)")
    print("usage: host-bench --allocator zone|glibc|jemalloc|mimalloc|tcmalloc|malloc [--operations N] [--seed S]")
    exit(2)
}

/// Stops with a message on standard error: the run measured nothing worth keeping.
func fail(_ problem: String) -> Never {
    fputs("host-bench: FAILED: \(problem)\n", stderr)
    exit(1)
}

func parseOptions() -> Options {
    var options = Options()
    var arguments = CommandLine.arguments.dropFirst()
    while let flag = arguments.popFirst() {
        guard let value = arguments.popFirst() else { usage("\(flag) needs a value") }
        switch flag {
        case "--allocator": options.allocator = value
        case "--operations":
            guard let number = Int(value) else { usage("bad --operations \(value)") }
            options.operations = number
        case "--seed":
            guard let number = UInt64(value) else { usage("bad --seed \(value)") }
            options.seed = number
        default: usage("unknown option \(flag)")
        }
    }
    let names = ["zone", "malloc"] + MallocIdentity.knownNames
    if !names.contains(options.allocator) { usage("--allocator must be one of \(names.joined(separator: ", "))") }
    if options.operations < 1 { usage("--operations must be positive") }
    return options
}

/// Fixed-point text with two decimals; no Foundation needed.
func twoDecimals(_ value: Double) -> String {
    let hundredths = Int((value * 100).rounded())
    let fraction = hundredths % 100
    return "\(hundredths / 100)." + (fraction < 10 ? "0" : "") + "\(fraction)"
}

let objectSizes = [48, 64, 256]
let options = parseOptions()
let mallocInUse = MallocIdentity.detect()

if options.allocator == "zone" {
    print("# allocator: zone (kernel/Mem/Portable ZoneRef: no debug checks, reserve target 0, "
          + "4 KiB slabs from posix_memalign of \(mallocInUse.name))")
} else {
    if options.allocator != "malloc" && options.allocator != mallocInUse.name {
        fail("asked for \(options.allocator) but malloc is \(mallocInUse.name) from \(mallocInUse.library); is LD_PRELOAD set to it?")
    }
    print("# allocator: \(mallocInUse.name) \(mallocInUse.version) (malloc from \(mallocInUse.library))")
}
let sequence = OperationSequence(seed: options.seed, length: 200_000)
print("# random workload: seed \(options.seed), \(sequence.count) operations per replay, digest \(sequence.digest)")
print("# one operation = one allocation or one free; about \(options.operations) timed operations per line")

var checksum: UInt = 0
let zones = objectSizes.map { BenchZone.makeDefault(objectSize: $0) }
for workload in Workload.allCases {
    for (index, size) in objectSizes.enumerated() {
        let result: Measurement
        if options.allocator == "zone" {
            result = measure(workload, ZoneContender(zone: zones[index]), targetOperations: options.operations, sequence: sequence)
        } else {
            result = measure(workload, MallocContender(objectSize: size), targetOperations: options.operations, sequence: sequence)
        }
        checksum ^= result.checksum
        let name = options.allocator == "zone" ? "zone" : mallocInUse.name
        print("result allocator=\(name) workload=\(workload.rawValue) size=\(size) "
              + "operations=\(result.operations) ns_per_op=\(twoDecimals(result.nanosecondsPerOperation))")
    }
}
if options.allocator == "zone" {
    for zone in zones {
        let state = zone.state.pointee
        print("# zone \(state.objectSize) bytes: \(state.objectsPerSlab) objects per slab, \(state.slabCount) slabs, "
              + "\(zone.statistics.allocations) allocations, \(zone.inUse) in use")
    }
}
print("# address checksum \(checksum) (printed so no allocation can be optimised away)")
