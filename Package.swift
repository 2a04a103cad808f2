// swift-tools-version:6.0
//
// The host build: the portable part of each kernel subsystem, as one library, and its unit
// tests. Each subsystem keeps its host-testable code beside it - kernel/Lib, kernel/Mem/Portable,
// kernel/VM/Portable, kernel/Drivers/Portable - and `swift test` compiles exactly those files, the same ones the kernel
// runs. The kernel itself is not built here: the Makefile compiles all of kernel/ for
// x86_64-unknown-none-elf with Embedded Swift, as one module, and this library is one module too,
// so `internal` means the same thing in both builds.
import Foundation
import PackageDescription

// Everything under kernel/ that is not portable: every entry of kernel/ but Lib, Mem, VM and
// Drivers, and in Mem, VM and Drivers everything but their Portable folder. Listed so that SwiftPM knows these
// files are the kernel's, not this library's.
let kernelOnly: [String] = {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("kernel")
    func entries(_ folder: String) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent(folder).path)) ?? []
    }
    let top = entries("").filter { !["Lib", "Mem", "VM", "Drivers"].contains($0) }
    let besidePortable = ["Mem", "VM", "Drivers"].flatMap { folder in
        entries(folder).filter { $0 != "Portable" }.map { "\(folder)/\($0)" }
    }
    return top + besidePortable
}()

let package = Package(
    name: "SwiftKernel",
    products: [
        .library(name: "KernelPortable", targets: ["KernelPortable"]),
    ],
    targets: [
        // Swift 5 language mode, like the kernel build: the same files, the same rules.
        .target(
            name: "KernelPortable",
            path: "kernel",
            exclude: kernelOnly,
            sources: ["Lib", "Mem/Portable", "VM/Portable", "Drivers/Portable"],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        .testTarget(
            name: "PortableTests",
            dependencies: ["KernelPortable"],
            path: "Tests/PortableTests"
        ),
    ]
)
