// BootLoaderTests.swift - which loader started the kernel decides whether the first word of
// the command line is the image path (QEMU) or already an option (GRUB 2).
import Testing
@testable import KernelPortable

@Suite struct BootLoaderTests {
    func identify(_ name: String?) -> BootLoader {
        guard let name = name else { return BootLoader.identify(name: nil) }
        return withByteString(name) { BootLoader.identify(name: $0) }
    }

    func layout(_ loader: BootLoader, _ line: String) -> CommandLineLayout {
        withByteString(line) { loader.layout(of: $0) }
    }

    /// The options the kernel would take from `line` handed over by the loader named `name`.
    func acceptedOptions(loaderName name: String?, _ line: String) -> [String] {
        let loader = identify(name)
        var handler = RecordingHandler()
        withByteString(line) { bytes in
            CommandLineTests.options.withUnsafeBufferPointer { table in
                CommandLineParser.parse(bytes, options: table, layout: loader.layout(of: bytes), handler: &handler)
            }
        }
        #expect(handler.errors.isEmpty, "\(handler.errors)")
        return handler.accepted.map { CommandLineTests.options[$0.0].name.description }
    }

    @Test func namesTheLoadersWeKnow() {
        #expect(identify("qemu") == .qemu)
        #expect(identify("GRUB 2.06-13+deb12u1") == .grub)
        #expect(identify("GRUB") == .grub)
        #expect(identify("grub") == .other, "the names are compared as the loaders write them")
        #expect(identify("Limine") == .other)
        #expect(identify("") == .other)
        #expect(identify(nil) == .other)
    }

    @Test func qemuPutsTheImagePathFirstAndGrubDoesNot() {
        #expect(layout(.qemu, "build/kernel.mb test=boot") == .imagePathFirst)
        #expect(layout(.qemu, "kernel.mb") == .imagePathFirst, "QEMU names the image as it was given, slash or not")
        #expect(layout(.grub, "test=boot seed=2") == .optionsOnly)
        #expect(layout(.grub, "/boot/kernel.mb test=boot") == .optionsOnly, "GRUB is trusted: a path there is an error to report")
    }

    @Test func anUnknownLoaderIsJudgedByItsFirstWord() {
        #expect(layout(.other, "/boot/kernel.mb test=boot") == .imagePathFirst)
        #expect(layout(.other, "  boot/kernel.mb") == .imagePathFirst)
        #expect(layout(.other, "test=boot seed=2") == .optionsOnly)
        #expect(layout(.other, "test=a/b") == .optionsOnly, "a slash after '=' is in a value")
        #expect(layout(.other, "help") == .optionsOnly)
        #expect(layout(.other, "") == .optionsOnly)
    }

    @Test func grubKeepsTheFirstOption() {
        #expect(acceptedOptions(loaderName: "GRUB 2.06", "test=boot seed=2") == ["test", "seed"])
        #expect(acceptedOptions(loaderName: "qemu", "build/kernel.mb test=boot seed=2") == ["test", "seed"])
        #expect(acceptedOptions(loaderName: nil, "/boot/kernel.mb test=boot") == ["test"])
        #expect(acceptedOptions(loaderName: nil, "test=boot") == ["test"])
    }
}
