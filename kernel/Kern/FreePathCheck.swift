// FreePathCheck.swift - what the kernel does when something allocates inside a free path.
//
// kernel/Lib/FreePath.swift detects the violation (it is portable, so the host tests can
// install their own handler); this file installs the kernel's, which panics at once, naming
// the outermost free path the thread is in and the allocator it called. kernel_main installs
// it before anything can allocate, so the check is on in every boot.

enum FreePathCheck {
    static func install() {
        FreePath.install { violation in
            // Out of the free path first: whatever the panic report does must not report again.
            FreePath.abandon()
            if violation.detail.utf8CodeUnitCount > 0 {
                panic("allocation inside a free path: \(violation.allocator.name) (\(violation.detail)) called inside \(violation.path.name)")
            }
            panic("allocation inside a free path: \(violation.allocator.name) called inside \(violation.path.name)")
        }
    }
}
