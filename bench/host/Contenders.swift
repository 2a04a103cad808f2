// Contenders.swift - the allocators being compared, behind one tiny interface.
//
// A contender hands out and takes back objects of one fixed size. `ZoneContender` is the
// kernel's zone code (one zone per object size, as kmalloc has one per size class);
// `MallocContender` is whatever malloc/free the process resolves to: glibc's, or the one
// LD_PRELOAD put in front of it. The workloads are generic over `ObjectAllocator`, so each
// contender gets its own specialised loop with direct calls and nothing else in between.
//
// `MallocIdentity.detect` finds out which malloc is really in use: it asks the dynamic linker
// which library defines `malloc`, and looks for a symbol only that allocator exports
// (mallctl for jemalloc, mi_version for mimalloc, tc_version for tcmalloc). Both must agree,
// or the benchmark would be timing something other than what it prints.
import Glibc

protocol ObjectAllocator {
    func allocate() -> UnsafeMutableRawPointer
    func free(_ object: UnsafeMutableRawPointer)
}

struct ZoneContender: ObjectAllocator {
    let zone: BenchZone

    @inline(__always) func allocate() -> UnsafeMutableRawPointer {
        guard let object = zone.allocate(.ordinary) else { fatalError("zone: out of memory") }
        return object
    }

    @inline(__always) func free(_ object: UnsafeMutableRawPointer) {
        zone.free(object)
    }
}

struct MallocContender: ObjectAllocator {
    let objectSize: Int

    @inline(__always) func allocate() -> UnsafeMutableRawPointer {
        guard let object = malloc(objectSize) else { fatalError("malloc: out of memory") }
        return object
    }

    @inline(__always) func free(_ object: UnsafeMutableRawPointer) {
        Glibc.free(object)
    }
}

/// Which malloc implementation the process is using, and where it came from.
struct MallocIdentity {
    var name: String
    var version: String
    /// The shared object that defines `malloc` for this process.
    var library: String

    static let knownNames = ["glibc", "jemalloc", "mimalloc", "tcmalloc"]

    static func detect() -> MallocIdentity {
        let mallocLibrary = libraryDefining("malloc") ?? "?"
        for (name, marker) in [("jemalloc", "mallctl"), ("mimalloc", "mi_version"), ("tcmalloc", "tc_version")] {
            guard dlsym(nil, marker) != nil else { continue }
            let markerLibrary = libraryDefining(marker) ?? "?"
            if markerLibrary != mallocLibrary {
                fail("\(marker) comes from \(markerLibrary) but malloc from \(mallocLibrary): \(name) is loaded but not in use")
            }
            return MallocIdentity(name: name, version: version(of: name), library: mallocLibrary)
        }
        return MallocIdentity(name: mallocLibrary.contains("libc.so") ? "glibc" : "unknown",
                              version: version(of: "glibc"), library: mallocLibrary)
    }

    /// The file name of the shared object that defines `symbol`, found with dladdr. dladdr and
    /// Dl_info are hidden behind _GNU_SOURCE in the Glibc module, so dladdr is looked up by
    /// name and Dl_info read as the four words it is (file name first).
    static func libraryDefining(_ symbol: String) -> String? {
        typealias Dladdr = @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?) -> Int32
        guard let address = dlsym(nil, symbol), let dladdrAddress = dlsym(nil, "dladdr") else { return nil }
        let dladdr = unsafeBitCast(dladdrAddress, to: Dladdr.self)
        var info: (UnsafePointer<CChar>?, UnsafeRawPointer?, UnsafePointer<CChar>?, UnsafeRawPointer?) = (nil, nil, nil, nil)
        let found = withUnsafeMutableBytes(of: &info) { dladdr(address, $0.baseAddress) }
        guard found != 0, let fileName = info.0 else { return nil }
        return String(cString: fileName)
    }

    /// The allocator's own idea of its version, through its own API.
    static func version(of name: String) -> String {
        switch name {
        case "jemalloc":
            // int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
            typealias Mallctl = @convention(c) (UnsafePointer<CChar>, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int>?,
                                                UnsafeMutableRawPointer?, Int) -> Int32
            guard let symbol = dlsym(nil, "mallctl") else { return "?" }
            var text: UnsafePointer<CChar>? = nil
            var length = MemoryLayout<UnsafePointer<CChar>?>.size
            let mallctl = unsafeBitCast(symbol, to: Mallctl.self)
            let status = withUnsafeMutableBytes(of: &text) { mallctl("version", $0.baseAddress, &length, nil, 0) }
            return status == 0 && text != nil ? String(cString: text!) : "?"
        case "mimalloc":
            // int mi_version(void): major*100 + minor*10 + patch.
            typealias MiVersion = @convention(c) () -> Int32
            guard let symbol = dlsym(nil, "mi_version") else { return "?" }
            let number = Int(unsafeBitCast(symbol, to: MiVersion.self)())
            return "\(number / 100).\(number / 10 % 10).\(number % 10)"
        case "tcmalloc":
            // const char *tc_version(int *major, int *minor, const char **patch)
            typealias TcVersion = @convention(c) (UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<Int32>?,
                                                  UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> UnsafePointer<CChar>?
            guard let symbol = dlsym(nil, "tc_version"),
                  let text = unsafeBitCast(symbol, to: TcVersion.self)(nil, nil, nil) else { return "?" }
            return String(cString: text)
        default:
            typealias LibcVersion = @convention(c) () -> UnsafePointer<CChar>?
            guard let symbol = dlsym(nil, "gnu_get_libc_version"),
                  let text = unsafeBitCast(symbol, to: LibcVersion.self)() else { return "?" }
            return String(cString: text)
        }
    }
}
