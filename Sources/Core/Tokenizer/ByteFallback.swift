// Byte fallback: the SentencePiece "<0xXX>" tokens that spell out, one byte each, any character the
// merge step could not cover, and their reverse mapping for decoding (llama.cpp `byte_to_token`,
// `token_to_byte`). Missing "<0xXX>" tokens fall back to the single-byte text token, as llama.cpp does.

struct ByteFallback: Sendable {
    /// Token id for each byte value, -1 when the vocabulary has none.
    private let byteToID: [Int32]

    init(table: TokenTable) {
        let hex = Array("0123456789ABCDEF".utf8)
        var ids = [Int32](repeating: -1, count: 256)
        for value in 0..<256 {
            let name: [UInt8] = [0x3C, 0x30, 0x78, hex[value >> 4], hex[value & 15], 0x3E]  // "<0xXX>"
            let id = name.withUnsafeBufferPointer { table.id(of: $0) }
                ?? [UInt8(value)].withUnsafeBufferPointer { table.id(of: $0) }
            ids[value] = id ?? -1
        }
        byteToID = ids
    }

    /// The token standing for `byte`, or nil when the vocabulary cannot spell it.
    @inline(__always)
    func token(for byte: UInt8) -> Int32? {
        let id = byteToID[Int(byte)]
        return id < 0 ? nil : id
    }

    /// The byte a "<0xXX>" token text stands for, or nil when the text is not of that form.
    static func byteValue(ofTokenText text: ArraySlice<UInt8>) -> UInt8? {
        guard text.count == 6 else { return nil }
        let b = Array(text)
        guard b[0] == 0x3C, b[1] == 0x30, b[2] == 0x78, b[5] == 0x3E,
              let hi = hexDigit(b[3]), let lo = hexDigit(b[4]) else { return nil }
        return hi << 4 | lo
    }

    private static func hexDigit(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }
}
