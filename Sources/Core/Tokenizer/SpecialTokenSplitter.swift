// Splits raw text around special tokens before any merging, as llama.cpp's `tokenizer_st_partition`:
// candidates are tried longest text first, each cutting every remaining text fragment at all its
// non-overlapping occurrences. USER_DEFINED tokens always split; CONTROL/UNKNOWN only with parseSpecial.

/// A piece of the input after special-token splitting.
enum TextFragment: Equatable {
    /// Plain text: a byte range of the input, still to be merged.
    case text(Range<Int>)
    /// A special token matched verbatim.
    case token(Int32)
}

struct SpecialTokenSplitter: Sendable {
    private struct Candidate: Sendable {
        let id: Int32
        let text: [UInt8]
        let lstrip: Bool
        let rstrip: Bool
    }

    /// User-defined tokens only: what plain-text encoding splits on.
    private let plainCandidates: [Candidate]
    /// Every control, user-defined and unknown token: used when parsing special tokens.
    private let allCandidates: [Candidate]

    init(table: TokenTable, attributes: [TokenAttributes]) {
        var all: [Candidate] = []
        for id in 0..<attributes.count where !attributes[id].isDisjoint(with: .splittable) {
            all.append(Candidate(id: Int32(id), text: Array(table.text(of: id)),
                                 lstrip: attributes[id].contains(.lstrip), rstrip: attributes[id].contains(.rstrip)))
        }
        // llama.cpp sorts by length only (std::sort, unstable); ties are broken by id here. Equal-length
        // candidates only compete when they overlap, which no Gemma 3 pair does.
        all.sort { $0.text.count != $1.text.count ? $0.text.count > $1.text.count : $0.id < $1.id }
        allCandidates = all
        plainCandidates = all.filter { attributes[Int($0.id)].isDisjoint(with: .parseSpecialOnly) }
    }

    /// The fragments of `text`: plain byte ranges and special tokens, in order.
    func split(_ text: UnsafeBufferPointer<UInt8>, parseSpecial: Bool) -> [TextFragment] {
        guard !text.isEmpty else { return [] }
        var fragments: [TextFragment] = [.text(0..<text.count)]
        let candidates = parseSpecial ? allCandidates : plainCandidates
        guard !candidates.isEmpty else { return fragments }

        // Cheap pre-filter: which bytes and adjacent byte pairs occur at all.
        var bytePresent = [Bool](repeating: false, count: 256)
        var pairPresent = [UInt64](repeating: 0, count: 1024)
        for i in 0..<text.count {
            bytePresent[Int(text[i])] = true
            if i + 1 < text.count {
                let pair = Int(text[i]) << 8 | Int(text[i + 1])
                pairPresent[pair >> 6] |= 1 << UInt64(pair & 63)
            }
        }

        for candidate in candidates {
            let needle = candidate.text
            guard !needle.isEmpty, needle.count <= text.count, bytePresent[Int(needle[0])] else { continue }
            if needle.count > 1 {
                let pair = Int(needle[0]) << 8 | Int(needle[1])
                if pairPresent[pair >> 6] & (1 << UInt64(pair & 63)) == 0 { continue }
            }
            var next: [TextFragment] = []
            var changed = false
            for fragment in fragments {
                guard case .text(let range) = fragment else { next.append(fragment); continue }
                var start = range.lowerBound
                var found = false
                while let match = Self.find(needle, in: text, from: start, to: range.upperBound) {
                    found = true
                    var leftEnd = match
                    if candidate.lstrip { while leftEnd > start, Self.isSpace(text[leftEnd - 1]) { leftEnd -= 1 } }
                    if leftEnd > start { next.append(.text(start..<leftEnd)) }
                    next.append(.token(candidate.id))
                    start = match + needle.count
                    if candidate.rstrip { while start < range.upperBound, Self.isSpace(text[start]) { start += 1 } }
                }
                if found {
                    changed = true
                    if start < range.upperBound { next.append(.text(start..<range.upperBound)) }
                } else {
                    next.append(fragment)
                }
            }
            if changed { fragments = next }
        }
        return fragments
    }

    /// First index `>= from` where `needle` occurs entirely before `to`, or nil.
    private static func find(_ needle: [UInt8], in text: UnsafeBufferPointer<UInt8>, from: Int, to: Int) -> Int? {
        let n = needle.count
        guard n > 0, to - from >= n else { return nil }
        let first = needle[0]
        var i = from
        while i <= to - n {
            if text[i] == first {
                var j = 1
                while j < n, text[i + j] == needle[j] { j += 1 }
                if j == n { return i }
            }
            i += 1
        }
        return nil
    }

    /// C `isspace` in the "C" locale, which llama.cpp uses for lstrip/rstrip.
    private static func isSpace(_ c: UInt8) -> Bool {
        c == 0x20 || (c >= 0x09 && c <= 0x0D)
    }
}
