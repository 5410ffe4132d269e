// SentencePiece BPE-style merging of one escaped text fragment, following llama.cpp's
// `llm_tokenizer_spm_session::tokenize`: start from UTF-8 characters, repeatedly merge the adjacent pair
// whose concatenation is the highest-scoring vocabulary token, then emit each symbol's id or its bytes.

struct SentencePieceMerger {
    /// Byte length of a UTF-8 sequence from its lead byte's high nibble (llama.cpp `unicode_len_utf8`;
    /// stray continuation bytes count as 1).
    private static let utf8Length: [Int] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4]

    /// Appends the ids of `text` (already whitespace-escaped) to `output`.
    static func tokenize(
        _ text: UnsafeBufferPointer<UInt8>,
        table: TokenTable,
        scores: [Float],
        bytes: ByteFallback,
        unknownID: Int32?,
        into output: inout [Int32]
    ) {
        guard let base = text.baseAddress, !text.isEmpty else { return }
        let total = text.count

        // Symbols as parallel arrays: byte start, byte length (0 once merged away), prev, next.
        var start: [Int] = []
        var length: [Int] = []
        start.reserveCapacity(total)
        length.reserveCapacity(total)
        var offset = 0
        while offset < total {
            let n = min(utf8Length[Int(base[offset] >> 4)], total - offset)
            start.append(offset)
            length.append(n)
            offset += n
        }
        let count = start.count
        var prev = (0..<count).map { $0 - 1 }
        var next = (0..<count).map { $0 + 1 == count ? -1 : $0 + 1 }

        table.withLookup { lookup in
            scores.withUnsafeBufferPointer { scores in
                var queue = BigramQueue(capacity: count * 2)

                func tryAdd(_ left: Int, _ right: Int) {
                    guard left >= 0, right >= 0 else { return }
                    let size = length[left] + length[right]
                    let id = lookup.id(base + start[left], size)
                    guard id >= 0, Int(id) < scores.count else { return }
                    queue.push(Bigram(left: left, right: right, score: scores[Int(id)], size: size))
                }

                for i in 1..<max(count, 1) { tryAdd(i - 1, i) }

                while let bigram = queue.pop() {
                    let l = bigram.left, r = bigram.right
                    // Skip entries made stale by an earlier merge of either side.
                    if length[l] == 0 || length[r] == 0 || length[l] + length[r] != bigram.size { continue }
                    length[l] += length[r]
                    length[r] = 0
                    next[l] = next[r]
                    if next[r] >= 0 { prev[next[r]] = l }
                    tryAdd(prev[l], l)
                    tryAdd(l, next[l])
                }

                // Every merged symbol is a vocabulary token by construction; single characters that are
                // not fall back to their bytes (llama.cpp's `resegment` never reaches its rev-merge path).
                var i = 0
                while i >= 0 {
                    let s = start[i], n = length[i]
                    let id = lookup.id(base + s, n)
                    if id >= 0 {
                        output.append(id)
                    } else {
                        for k in s..<(s + n) {
                            if let byteID = bytes.token(for: base[k]) {
                                output.append(byteID)
                            } else if let unknownID {
                                output.append(unknownID)
                            }
                        }
                    }
                    i = next[i]
                }
            }
        }
    }
}
