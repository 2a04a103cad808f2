// TestPrerequisites.swift - whether this boot can run a suite, and if not, why.
//
// A suite already tells the host runner what its boots need: extra command-line options
// (`arguments`) and a swap disk (`diskMiB`, `diskPerRAM`). The runner boots each suite with
// exactly that, but `test=all` runs every suite in one boot, on whatever machine and command
// line it was given. So before a suite runs, the test framework checks the same declarations
// against this boot, and a suite whose needs are not met is reported as KTAP
// `ok N name # SKIP reason` (each of its cases skipped with the same reason) instead of
// failing - or dividing by the size of a disk that is not there. A suite adopts this by
// declaring its needs in its TestSuite, nothing more; `diskMaxMiB` is the one need the runner
// does not read (a workload that fills swap cannot finish on a very large disk).
//
// Nothing here allocates: the checks read the command line and the disk driver in place.

extension TestSuite {
    /// The swap disk this suite needs on this machine, in MiB: `diskMiB`, and at least
    /// `diskPerRAM` times the memory the kernel manages (0: no disk needed). The runner gives
    /// at least this (it multiplies QEMU's memory size, which is larger).
    var diskNeededMiB: UInt64 {
        guard diskMiB > 0 else { return 0 }
        let ramMiB = (PhysicalMemory.managedPages * pageSize) >> 20
        return max(UInt64(diskMiB), UInt64(diskPerRAM) * ramMiB)
    }

    /// Why this boot cannot run the suite, or nil when it can: the first unmet need.
    var missingPrerequisite: LogMessage? {
        var missing: LogMessage? = nil
        arguments.forEachWord { word in
            if missing == nil && !TestPrerequisites.commandLineHas(word) {
                missing = "needs the option \(word) on the command line"
            }
        }
        if let missing = missing { return missing }
        let needed = diskNeededMiB
        if needed == 0 { return nil }
        guard Disk.isPresent else { return "needs a swap disk of at least \(needed) MiB; there is none" }
        guard SwapDevice.isPresent else { return "needs swap; the disk is not in use as swap (see the boot log)" }
        let diskMiB = (Disk.sectors * UInt64(Disk.sectorBytes)) >> 20
        if diskMiB < needed { return "needs a swap disk of at least \(needed) MiB; this one has \(diskMiB) MiB" }
        if diskMaxMiB > 0 && diskMiB > UInt64(diskMaxMiB) {
            return "needs a swap disk of at most \(diskMaxMiB) MiB, which its workload can fill; this one has \(diskMiB) MiB"
        }
        return nil
    }
}

enum TestPrerequisites {
    /// Whether `word` (an option such as `mapcheck=on`) is one of the command line's words.
    static func commandLineHas(_ word: ByteString) -> Bool {
        var found = false
        BootInfo.commandLine.forEachPiece(separatedBy: UInt8(ascii: " ")) { piece in
            if piece.equals(word) { found = true }
        }
        return found
    }
}

extension StaticString {
    /// Calls `body` with each space-separated word, as a ByteString pointing into the literal.
    func forEachWord(_ body: (ByteString) -> Void) {
        guard utf8CodeUnitCount > 0 else { return }
        ByteString(base: utf8Start, count: utf8CodeUnitCount).forEachPiece(separatedBy: UInt8(ascii: " ")) { piece in
            if piece.count > 0 { body(piece) }
        }
    }
}
