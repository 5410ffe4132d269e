/// Why a tokenizer could not be built from a vocabulary or a GGUF file.
/// Encoding and decoding never fail: only construction throws.
public enum TokenizerError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `tokenizer.ggml.model` names a tokenizer other than SentencePiece ("llama").
    case unsupportedModel(String)
    /// The token list is empty.
    case emptyVocabulary
    /// More tokens than an `Int32` id can address.
    case vocabularyTooLarge(count: Int)
    /// A per-token array (scores, token types) is shorter than the token list.
    case arrayTooShort(field: String, expected: Int, actual: Int)
    /// Two ids share the same token text (llama.cpp refuses such vocabularies too).
    case duplicateToken(text: String, firstID: Int, secondID: Int)
    /// A special token is required (e.g. BOS with `add_bos_token`) but absent or out of range.
    case missingSpecialToken(String)
    /// A GGUF metadata key is missing or has the wrong type.
    case metadata(key: String, reason: String)

    public var description: String {
        switch self {
        case .unsupportedModel(let model):
            return "unsupported tokenizer model '\(model)' (only SentencePiece 'llama' is supported)"
        case .emptyVocabulary:
            return "the tokenizer vocabulary is empty"
        case .vocabularyTooLarge(let count):
            return "the tokenizer vocabulary has \(count) tokens, more than Int32 ids can address"
        case .arrayTooShort(let field, let expected, let actual):
            return "tokenizer \(field) has \(actual) entries, expected at least \(expected)"
        case .duplicateToken(let text, let firstID, let secondID):
            return "duplicate token in vocabulary: '\(text)' has ids \(firstID) and \(secondID)"
        case .missingSpecialToken(let name):
            return "the vocabulary has no valid \(name) token"
        case .metadata(let key, let reason):
            return "GGUF metadata '\(key)': \(reason)"
        }
    }
}
