// Exact byte-string → token id map over the whole vocabulary (llama.cpp's `token_to_id`).
// Keys are raw UTF-8 bytes, never `String`: Swift compares strings by canonical equivalence, and
// Gemma 3's vocabulary holds 434 tokens that differ only in Unicode normalisation.

/// All token texts in one contiguous byte buffer plus an open-addressing hash index over them.
struct TokenTable: Sendable {
    /// Concatenated UTF-8 bytes of every token, in id order.
    let bytes: [UInt8]
    /// `offsets[id] ..< offsets[id + 1]` is the text of token `id`; `count + 1` entries.
    let offsets: [Int32]
    /// Hash slots holding token ids, `-1` when empty; the count is a power of two.
    private let slots: [Int32]
    /// Length in bytes of the longest token.
    let maxTokenLength: Int

    var count: Int { offsets.count - 1 }

    /// Builds the table from token texts in id order; an empty text becomes "[EMPTY_<id>]" as in
    /// llama.cpp. Throws on a duplicate text, as llama.cpp does.
    init(tokens: [String]) throws(TokenizerError) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(tokens.count * 10)
        var offsets: [Int32] = [0]
        offsets.reserveCapacity(tokens.count + 1)
        var maxLength = 0
        for (id, token) in tokens.enumerated() {
            let before = bytes.count
            if token.isEmpty {
                bytes.append(contentsOf: "[EMPTY_\(id)]".utf8)
            } else {
                bytes.append(contentsOf: token.utf8)
            }
            guard bytes.count < Int(Int32.max) else { throw .vocabularyTooLarge(count: tokens.count) }
            offsets.append(Int32(bytes.count))
            maxLength = max(maxLength, bytes.count - before)
        }

        var capacity = 16
        while capacity < tokens.count * 2 { capacity <<= 1 }
        var slots = [Int32](repeating: -1, count: capacity)
        let mask = capacity - 1
        var duplicate: (Int, Int)?
        bytes.withUnsafeBufferPointer { all in
            offsets.withUnsafeBufferPointer { offs in
                slots.withUnsafeMutableBufferPointer { table in
                    for id in 0..<tokens.count {
                        let start = Int(offs[id]), end = Int(offs[id + 1])
                        let key = UnsafeBufferPointer(rebasing: all[start..<end])
                        var slot = Int(truncatingIfNeeded: TokenTable.hash(key)) & mask
                        while true {
                            let occupant = table[slot]
                            if occupant < 0 { table[slot] = Int32(id); break }
                            let os = Int(offs[Int(occupant)]), oe = Int(offs[Int(occupant) + 1])
                            if oe - os == end - start, TokenTable.equal(key, UnsafeBufferPointer(rebasing: all[os..<oe])) {
                                duplicate = (Int(occupant), id)
                                return
                            }
                            slot = (slot + 1) & mask
                        }
                    }
                }
            }
        }
        if let (first, second) = duplicate {
            let text = String(decoding: bytes[Int(offsets[second])..<Int(offsets[second + 1])], as: UTF8.self)
            throw .duplicateToken(text: text, firstID: first, secondID: second)
        }
        self.bytes = bytes
        self.offsets = offsets
        self.slots = slots
        self.maxTokenLength = maxLength
    }

    /// The id whose text is exactly `key`, or nil.
    func id(of key: UnsafeBufferPointer<UInt8>) -> Int32? {
        withLookup { lookup in
            guard let base = key.baseAddress else { return nil }
            let id = lookup.id(base, key.count)
            return id < 0 ? nil : id
        }
    }

    /// Runs `body` with a pointer-based view of the table, for allocation-free hot loops.
    @inline(__always)
    func withLookup<R>(_ body: (Lookup) -> R) -> R {
        slots.withUnsafeBufferPointer { table in
            offsets.withUnsafeBufferPointer { offs in
                bytes.withUnsafeBufferPointer { all in
                    body(Lookup(all: all.baseAddress, offsets: offs.baseAddress!, slots: table.baseAddress!,
                                mask: table.count - 1, maxTokenLength: maxTokenLength))
                }
            }
        }
    }

    /// Pointer view of a `TokenTable`; valid only inside `withLookup`.
    struct Lookup {
        let all: UnsafePointer<UInt8>?
        let offsets: UnsafePointer<Int32>
        let slots: UnsafePointer<Int32>
        let mask: Int
        let maxTokenLength: Int

        /// The id whose text is the `count` bytes at `start`, or -1.
        @inline(__always)
        func id(_ start: UnsafePointer<UInt8>, _ count: Int) -> Int32 {
            guard count <= maxTokenLength, let all else { return -1 }
            let key = UnsafeBufferPointer(start: start, count: count)
            var slot = Int(truncatingIfNeeded: TokenTable.hash(key)) & mask
            while true {
                let occupant = slots[slot]
                if occupant < 0 { return -1 }
                let os = Int(offsets[Int(occupant)]), oe = Int(offsets[Int(occupant) + 1])
                if oe - os == count, TokenTable.equal(key, UnsafeBufferPointer(start: all + os, count: count)) {
                    return occupant
                }
                slot = (slot + 1) & mask
            }
        }
    }

    /// The id whose text is exactly `text` (compared as UTF-8 bytes), or nil.
    func id(of text: String) -> Int32? {
        var text = text
        return text.withUTF8 { id(of: $0) }
    }

    /// The UTF-8 bytes of token `id` (caller guarantees `0 <= id < count`).
    func text(of id: Int) -> ArraySlice<UInt8> {
        bytes[Int(offsets[id])..<Int(offsets[id + 1])]
    }

    /// Byte length of token `id` (caller guarantees `0 <= id < count`).
    func length(of id: Int) -> Int {
        Int(offsets[id + 1] - offsets[id])
    }

    /// FNV-1a over the bytes, finished with a multiplicative mix so low bits are well spread.
    @inline(__always)
    static func hash(_ key: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key {
            h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        h ^= h >> 29
        h = h &* 0xbf58_476d_1ce4_e5b9
        h ^= h >> 32
        return h
    }

    @inline(__always)
    static func equal(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        guard let pa = a.baseAddress, let pb = b.baseAddress else { return a.count == 0 }
        var i = 0
        while i < a.count {
            if pa[i] != pb[i] { return false }
            i += 1
        }
        return true
    }
}
