// TextSinkForTests.swift - a TextSink that collects bytes into a String, for assertions.
@testable import KernelPortable

struct StringSink: TextSink {
    var bytes: [UInt8] = []
    mutating func write(_ byte: UInt8) { bytes.append(byte) }
    var text: String { String(decoding: bytes, as: UTF8.self) }
}

/// Runs `body` with a ByteString over a copy of `text`; the copy lives for the call.
func withByteString<R>(_ text: String, _ body: (ByteString) -> R) -> R {
    let bytes = Array(text.utf8)
    return bytes.withUnsafeBufferPointer { buffer in
        body(ByteString(base: buffer.baseAddress, count: buffer.count))
    }
}
