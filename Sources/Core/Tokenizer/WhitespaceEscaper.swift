// The SentencePiece normaliser llama.cpp applies to each plain-text fragment before merging
// (`llama_escape_whitespace` in llama-vocab.cpp): every ASCII space becomes U+2581 "▁", optionally
// after prefixing one space. Tabs, newlines and other whitespace are left alone.

enum WhitespaceEscaper {
    /// UTF-8 of U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's visible space.
    static let meta: [UInt8] = [0xE2, 0x96, 0x81]

    /// `text` with a leading space added when `prefixSpace`, and every 0x20 replaced by "▁".
    static func escape(_ text: UnsafeBufferPointer<UInt8>, prefixSpace: Bool) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.count + (prefixSpace ? 3 : 0) + 16)
        if prefixSpace { out.append(contentsOf: meta) }
        for byte in text {
            if byte == 0x20 {
                out.append(0xE2); out.append(0x96); out.append(0x81)
            } else {
                out.append(byte)
            }
        }
        return out
    }

    /// `bytes` with every "▁" turned back into a space (llama.cpp's `llama_unescape_whitespace`).
    static func unescape(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i < bytes.endIndex {
            if bytes[i] == 0xE2, i + 2 < bytes.endIndex, bytes[i + 1] == 0x96, bytes[i + 2] == 0x81 {
                out.append(0x20)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return out
    }
}
