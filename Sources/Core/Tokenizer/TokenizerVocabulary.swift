/// The plain inputs a SentencePiece tokenizer is built from: the GGUF `tokenizer.ggml.*` arrays and
/// flags, independent of any file format so tests can hand-build small vocabularies.
public struct TokenizerVocabulary: Sendable {
    /// Token texts, indexed by id (SentencePiece pieces: a space is stored as U+2581 "▁").
    public var tokens: [String]
    /// Merge scores per id; empty means all 0 (llama.cpp's default when the key is absent).
    public var scores: [Float]
    /// `tokenizer.ggml.token_type` codes per id; empty means all normal.
    public var tokenTypes: [Int]
    public var bosID: Int?
    public var eosID: Int?
    public var unknownID: Int?
    public var paddingID: Int?
    /// Prepend BOS when encoding with `addBOS: true` (`tokenizer.ggml.add_bos_token`).
    public var addBOS: Bool
    /// Append EOS when encoding with `addBOS: true` (`tokenizer.ggml.add_eos_token`).
    public var addEOS: Bool
    /// Prefix a space to text that starts the input or follows a special token
    /// (`tokenizer.ggml.add_space_prefix`; false for Gemma).
    public var addSpacePrefix: Bool

    public init(
        tokens: [String],
        scores: [Float] = [],
        tokenTypes: [Int] = [],
        bosID: Int? = nil,
        eosID: Int? = nil,
        unknownID: Int? = nil,
        paddingID: Int? = nil,
        addBOS: Bool = true,
        addEOS: Bool = false,
        addSpacePrefix: Bool = false
    ) {
        self.tokens = tokens
        self.scores = scores
        self.tokenTypes = tokenTypes
        self.bosID = bosID
        self.eosID = eosID
        self.unknownID = unknownID
        self.paddingID = paddingID
        self.addBOS = addBOS
        self.addEOS = addEOS
        self.addSpacePrefix = addSpacePrefix
    }
}
