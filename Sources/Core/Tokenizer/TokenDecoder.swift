// Token ids back to bytes, as llama.cpp's `token_to_piece` / `detokenize` for SentencePiece vocabularies:
// normal tokens with "▁" unescaped to spaces, "<0xXX>" byte tokens as their single byte, user-defined
// tokens verbatim, control/unknown tokens empty unless rendering specials, unused/undefined ones empty.

struct TokenDecoder: Sendable {
    let table: TokenTable
    let attributes: [TokenAttributes]

    /// The bytes of one token; empty for an out-of-range id.
    func piece(_ id: Int32, renderSpecial: Bool) -> [UInt8] {
        guard id >= 0, Int(id) < attributes.count else { return [] }
        let attr = attributes[Int(id)]
        if !renderSpecial, !attr.isDisjoint(with: [.unknown, .control]) { return [] }
        if !attr.isDisjoint(with: [.unknown, .control, .userDefined]) { return Array(table.text(of: Int(id))) }
        if attr.contains(.normal) { return WhitespaceEscaper.unescape(table.text(of: Int(id))) }
        if attr.contains(.byte) {
            guard let value = ByteFallback.byteValue(ofTokenText: table.text(of: Int(id))) else { return [] }
            return [value]
        }
        return []
    }

    /// The concatenated bytes of `ids`; with `stripLeadingSpace` (add_space_prefix vocabularies) one
    /// leading space of the first piece is dropped, unless the sequence starts with BOS.
    func bytes(_ ids: [Int32], renderSpecial: Bool, stripLeadingSpace: Bool) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(ids.count * 4)
        for (index, id) in ids.enumerated() {
            let piece = piece(id, renderSpecial: renderSpecial)
            if index == 0, stripLeadingSpace, piece.first == 0x20 {
                out.append(contentsOf: piece.dropFirst())
            } else {
                out.append(contentsOf: piece)
            }
        }
        return out
    }
}
