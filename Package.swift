// swift-tools-version:6.0
//
// The host build: the portable kernel core (kernel/Core) as a library, and its unit tests.
// The kernel itself is not built here - the Makefile compiles kernel/ (Core included) for
// x86_64-unknown-none-elf with Embedded Swift. These are the same source files.
import PackageDescription

let package = Package(
    name: "SwiftKernel",
    products: [
        .library(name: "KernelCore", targets: ["KernelCore"]),
    ],
    targets: [
        // Swift 5 language mode, like the kernel build: the same files, the same rules.
        .target(
            name: "KernelCore",
            path: "kernel/Core",
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        .testTarget(
            name: "CoreTests",
            dependencies: ["KernelCore"],
            path: "Tests/CoreTests"
        ),
    ]
)
