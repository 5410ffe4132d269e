/// Gemma's SentencePiece tokenizer, built from the GGUF vocabulary, producing exactly llama.cpp's ids
/// (`llama_tokenize` with `parse_special = false` by default). Immutable and cheap to share.
///
/// Pipeline per `encode`: UTF-8 bytes → `SpecialTokenSplitter` (user-defined tokens such as "\n" or
/// runs of spaces are cut out verbatim) → per plain fragment `WhitespaceEscaper` (space → "▁") →
/// `SentencePieceMerger` (score-ordered merges, `ByteFallback` for uncovered characters).
public struct GemmaTokenizer: Sendable {
    private let table: TokenTable
    private let scores: [Float]
    private let attributes: [TokenAttributes]
    private let byteFallback: ByteFallback
    private let splitter: SpecialTokenSplitter
    private let decoder: TokenDecoder
    private let addBOSToken: Bool
    private let addEOSToken: Bool
    private let addSpacePrefix: Bool

    /// Beginning-of-sequence id (`<bos>`, 2 in Gemma).
    public let bosID: Int32
    /// End-of-sequence id (`<eos>`, 1 in Gemma).
    public let eosID: Int32
    /// Unknown-token id, if the vocabulary has one.
    public let unknownID: Int32?
    /// Padding id, if the vocabulary has one.
    public let paddingID: Int32?
    /// The id of `<end_of_turn>` (106 in Gemma), which ends a chat turn.
    public let endOfTurnID: Int32?

    /// Number of tokens in the vocabulary (262,144 for Gemma 3).
    public var vocabularySize: Int { table.count }

    /// Builds the tokenizer from plain vocabulary arrays.
    public init(vocabulary v: TokenizerVocabulary) throws(TokenizerError) {
        let n = v.tokens.count
        guard n > 0 else { throw .emptyVocabulary }
        guard n < Int(Int32.max) else { throw .vocabularyTooLarge(count: n) }
        if !v.scores.isEmpty, v.scores.count < n {
            throw .arrayTooShort(field: "scores", expected: n, actual: v.scores.count)
        }
        if !v.tokenTypes.isEmpty, v.tokenTypes.count < n {
            throw .arrayTooShort(field: "token_type", expected: n, actual: v.tokenTypes.count)
        }

        let table = try TokenTable(tokens: v.tokens)

        var attributes: [TokenAttributes]
        if v.tokenTypes.isEmpty {
            attributes = [TokenAttributes](repeating: .normal, count: n)
        } else {
            attributes = v.tokenTypes.prefix(n).map { TokenAttributes(tokenTypeCode: $0) }
        }
        TokenAttributes.applyLlamaOverrides(&attributes, table: table)

        func special(_ id: Int?) -> Int32? {
            guard let id, id >= 0, id < n else { return nil }
            return Int32(id)
        }
        guard let bos = special(v.bosID) else { throw .missingSpecialToken("BOS") }
        guard let eos = special(v.eosID) else { throw .missingSpecialToken("EOS") }

        self.table = table
        self.scores = v.scores.isEmpty ? [Float](repeating: 0, count: n) : Array(v.scores.prefix(n))
        self.attributes = attributes
        self.byteFallback = ByteFallback(table: table)
        self.splitter = SpecialTokenSplitter(table: table, attributes: attributes)
        self.decoder = TokenDecoder(table: table, attributes: attributes)
        self.addBOSToken = v.addBOS
        self.addEOSToken = v.addEOS
        self.addSpacePrefix = v.addSpacePrefix
        self.bosID = bos
        self.eosID = eos
        self.unknownID = special(v.unknownID)
        self.paddingID = special(v.paddingID)
        self.endOfTurnID = table.id(of: "<end_of_turn>")
    }

    /// The token ids of `text`, exactly as llama.cpp's `llama_tokenize(text, add_special: addBOS,
    /// parse_special: parseSpecial)`.
    ///
    /// - Parameters:
    ///   - addBOS: add the model's special tokens: BOS first when the vocabulary's `add_bos_token` is set
    ///     (Gemma: yes), EOS last when `add_eos_token` is set (Gemma: no). `""` encodes to `[bosID]`.
    ///   - parseSpecial: when false (default) `text` is plain user text: control tokens typed literally
    ///     ("<bos>", "<start_of_turn>") are ordinary characters. User-defined tokens ("\n", runs of spaces
    ///     or tabs, "<table>", …) are always matched, as in llama.cpp. Pass true for chat templates.
    public func encode(_ text: String, addBOS: Bool = true, parseSpecial: Bool = false) -> [Int32] {
        let input = Array(text.utf8)
        var output: [Int32] = []
        output.reserveCapacity(input.count / 3 + 4)
        if addBOS, addBOSToken { output.append(bosID) }

        input.withUnsafeBufferPointer { input in
            var previousWasSpecial = true
            for fragment in splitter.split(input, parseSpecial: parseSpecial) {
                switch fragment {
                case .token(let id):
                    output.append(id)
                    previousWasSpecial = true
                case .text(let range):
                    let escaped = WhitespaceEscaper.escape(
                        UnsafeBufferPointer(rebasing: input[range]),
                        prefixSpace: addSpacePrefix && previousWasSpecial)
                    escaped.withUnsafeBufferPointer {
                        SentencePieceMerger.tokenize($0, table: table, scores: scores, bytes: byteFallback,
                                                     unknownID: unknownID, into: &output)
                    }
                    previousWasSpecial = false
                }
            }
        }

        if addBOS, addEOSToken { output.append(eosID) }
        return output
    }

    /// The text of `ids`: "▁" as spaces, byte tokens reassembled into UTF-8 (invalid or incomplete
    /// sequences become U+FFFD), control tokens such as `<bos>` omitted unless `renderSpecial`.
    public func decode(_ ids: [Int32], renderSpecial: Bool = false) -> String {
        String(decoding: decodeBytes(ids, renderSpecial: renderSpecial), as: UTF8.self)
    }

    /// The raw bytes of `ids` (see `decode`), for callers that handle partial UTF-8 themselves.
    public func decodeBytes(_ ids: [Int32], renderSpecial: Bool = false) -> [UInt8] {
        decoder.bytes(ids, renderSpecial: renderSpecial,
                      stripLeadingSpace: addSpacePrefix && ids.first != bosID)
    }

    /// The bytes one token contributes to decoded text (llama.cpp `token_to_piece`, for streaming);
    /// empty for control tokens unless `renderSpecial`, and for out-of-range ids.
    public func piece(_ id: Int32, renderSpecial: Bool = false) -> [UInt8] {
        decoder.piece(id, renderSpecial: renderSpecial)
    }

    /// The id whose vocabulary text is exactly `token` (byte-wise, e.g. "▁the", "<end_of_turn>").
    public func id(of token: String) -> Int32? {
        table.id(of: token)
    }

    /// The raw vocabulary text of `id` (with "▁" for spaces), or nil when out of range.
    public func tokenText(_ id: Int32) -> String? {
        guard id >= 0, Int(id) < table.count else { return nil }
        return String(decoding: table.text(of: Int(id)), as: UTF8.self)
    }

    /// The attributes of `id` after llama.cpp's load-time overrides; empty when out of range.
    public func attributes(of id: Int32) -> TokenAttributes {
        guard id >= 0, Int(id) < attributes.count else { return [] }
        return attributes[Int(id)]
    }

    /// Whether generation should stop at `id` (EOS or `<end_of_turn>`).
    public func isEndOfGeneration(_ id: Int32) -> Bool {
        id == eosID || id == endOfTurnID
    }
}
