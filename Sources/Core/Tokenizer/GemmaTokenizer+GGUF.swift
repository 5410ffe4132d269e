/// Reading the tokenizer from a GGUF file's `tokenizer.ggml.*` metadata, with llama.cpp's defaults for
/// SentencePiece ("llama") vocabularies when a key is absent: BOS 1, EOS 2, UNK 0, add BOS, add space prefix.
extension TokenizerVocabulary {
    public init(gguf: GGUFFile) throws(TokenizerError) {
        typealias Key = GGUFKeys.Tokenizer
        func read<T>(_ key: String, _ get: (String) throws(GGUFError) -> T) throws(TokenizerError) -> T {
            do { return try get(key) } catch { throw .metadata(key: key, reason: error.description) }
        }
        let model = try read(Key.model) { k throws(GGUFError) in try gguf.string(k) }
        guard model == "llama" else { throw .unsupportedModel(model) }

        let tokens = try read(Key.tokens) { k throws(GGUFError) in try gguf.strings(k) }
        let scores = try read(Key.scores) { k throws(GGUFError) in try gguf.optionalFloats(k) } ?? []
        let types = try read(Key.tokenType) { k throws(GGUFError) in try gguf.optionalInts(k) } ?? []

        // A stored id outside the vocabulary is ignored in favour of the default, as llama.cpp does.
        func id(_ key: String, default fallback: Int?) throws(TokenizerError) -> Int? {
            let valid = fallback.flatMap { $0 < tokens.count ? $0 : nil }
            guard let stored = try read(key, { k throws(GGUFError) in try gguf.optionalInt(k) }) else { return valid }
            return stored >= 0 && stored < tokens.count ? stored : valid
        }
        func flag(_ key: String, default fallback: Bool) throws(TokenizerError) -> Bool {
            try read(key) { k throws(GGUFError) in try gguf.optionalBool(k) } ?? fallback
        }

        self.init(
            tokens: tokens,
            scores: scores,
            tokenTypes: types,
            bosID: try id(Key.bosTokenID, default: 1),
            eosID: try id(Key.eosTokenID, default: 2),
            unknownID: try id(Key.unknownTokenID, default: 0),
            paddingID: try id(Key.paddingTokenID, default: nil),
            addBOS: try flag(Key.addBOSToken, default: true),
            addEOS: try flag(Key.addEOSToken, default: false),
            addSpacePrefix: try flag(Key.addSpacePrefix, default: true)
        )
    }
}

extension GemmaTokenizer {
    /// The tokenizer of a GGUF model file (see `TokenizerVocabulary.init(gguf:)`).
    public init(gguf: GGUFFile) throws(TokenizerError) {
        try self.init(vocabulary: TokenizerVocabulary(gguf: gguf))
    }
}
