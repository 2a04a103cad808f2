// BootLoader.swift - which multiboot loader started us, and what it put on the command line.
//
// Multiboot (version 1) gives the kernel one command line, but loaders fill it differently:
//
//   QEMU's -kernel loader    "build/kernel.mb test=boot seed=1"  (the image path, then -append)
//                            boot-loader name "qemu"
//   GRUB 2, `multiboot PATH ARGS`   "test=boot seed=1"          (only the arguments)
//                            boot-loader name "GRUB 2.06-13+deb12u1" (or similar)
//
// So the first word is the image path only for some loaders, and skipping it blindly loses
// the first option under GRUB. The multiboot information names the loader when its flag bit 9
// is set; both loaders above set it. A loader that names itself otherwise, or not at all, is
// judged by the first word: it is an image path when it has a slash before any '=' (an
// option's name never has one; `test=boot` or `help` are options, `/boot/kernel.mb` a path). Portable, so that the host tests exercise the decision.

/// What comes before the options on the command line.
public enum CommandLineLayout: Equatable {
    /// The image path, then the options (QEMU's -kernel loader).
    case imagePathFirst
    /// Only the options (GRUB 2).
    case optionsOnly
}

/// The loaders we know by name.
public enum BootLoader: Equatable {
    case qemu
    case grub
    /// No name, or one we do not know.
    case other

    /// Identifies the loader from the multiboot boot-loader name (nil when the loader gave none).
    public static func identify(name: ByteString?) -> BootLoader {
        guard let name = name else { return .other }
        if name.hasPrefix("qemu") { return .qemu }
        if name.hasPrefix("GRUB") { return .grub }
        return .other
    }

    /// How `commandLine`, handed over by this loader, is laid out.
    public func layout(of commandLine: ByteString) -> CommandLineLayout {
        switch self {
        case .qemu: return .imagePathFirst
        case .grub: return .optionsOnly
        case .other:
            var layout = CommandLineLayout.optionsOnly
            var first = true
            CommandLineParser.forEachWord(commandLine) { word in
                guard first else { return }
                first = false
                let equals = word.firstIndex(of: UInt8(ascii: "=")) ?? word.count
                let slash = word.firstIndex(of: UInt8(ascii: "/"))
                if let slash = slash, slash < equals { layout = .imagePathFirst }
            }
            return layout
        }
    }
}
