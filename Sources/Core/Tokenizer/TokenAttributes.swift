// Per-token attributes: the GGUF `tokenizer.ggml.token_type` codes mapped to attribute bits, plus the
// text-based overrides llama.cpp applies at load time (llama-vocab.cpp, `llama_vocab::impl::load`):
// end-of-generation / FIM look-alikes gain CONTROL, a few gpt-oss markers become USER_DEFINED.

/// SentencePiece / GGUF token type codes (`tokenizer.ggml.token_type`).
public enum TokenType: Int, Sendable, CaseIterable {
    case undefined = 0
    case normal = 1
    case unknown = 2
    case control = 3
    case userDefined = 4
    case unused = 5
    case byte = 6
}

/// Attribute bits of a token, as llama.cpp's `llama_token_attr`.
public struct TokenAttributes: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let unknown = TokenAttributes(rawValue: 1 << 0)
    public static let unused = TokenAttributes(rawValue: 1 << 1)
    public static let normal = TokenAttributes(rawValue: 1 << 2)
    public static let control = TokenAttributes(rawValue: 1 << 3)
    public static let userDefined = TokenAttributes(rawValue: 1 << 4)
    public static let byte = TokenAttributes(rawValue: 1 << 5)
    public static let normalized = TokenAttributes(rawValue: 1 << 6)
    public static let lstrip = TokenAttributes(rawValue: 1 << 7)
    public static let rstrip = TokenAttributes(rawValue: 1 << 8)
    public static let singleWord = TokenAttributes(rawValue: 1 << 9)

    /// Tokens the special-token splitter considers at all (control, user-defined, unknown).
    static let splittable: TokenAttributes = [.control, .userDefined, .unknown]
    /// Tokens split out only when the caller asks to parse special tokens.
    static let parseSpecialOnly: TokenAttributes = [.control, .unknown]

    /// The attributes llama.cpp derives from a raw token type code (unknown codes → undefined: no bits).
    public init(tokenTypeCode code: Int) {
        switch TokenType(rawValue: code) {
        case .normal: self = .normal
        case .unknown: self = .unknown
        case .control: self = .control
        case .userDefined: self = .userDefined
        case .unused: self = .unused
        case .byte: self = .byte
        case .undefined, nil: self = []
        }
    }
}

/// Token texts llama.cpp treats as control whatever their stored type: its end-of-turn,
/// end-of-message, FIM and end-of-generation look-alike lists. In Gemma 3 this turns the
/// user-defined `</s>` (id 212) into a control token: never split from plain text, empty when decoded.
let llamaControlOverrideTexts: [String] = [
    // end of turn / end of generation
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<｜end▁of▁sentence｜>", "<end_of_utterance>", "<|eom_id|>",
    "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "</s>", "<eos>", "<turn|>", "<|tool_response>", "[e~[",
    // fill-in-the-middle
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>", "<|code_prefix|>", "<|prefix|>",
    "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>", "<|code_suffix|>", "<|suffix|>",
    "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>", "<|code_middle|>", "<|middle|>",
    "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]",
    "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>",
]

/// Token texts llama.cpp forces to USER_DEFINED (gpt-oss markers that must always render).
let llamaUserDefinedOverrideTexts: [String] = ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"]

extension TokenAttributes {
    /// Applies llama.cpp's text-based overrides to `attributes` in place.
    static func applyLlamaOverrides(_ attributes: inout [TokenAttributes], table: TokenTable) {
        for text in llamaControlOverrideTexts {
            if let id = table.id(of: text) { attributes[Int(id)].insert(.control) }
        }
        for text in llamaUserDefinedOverrideTexts {
            if let id = table.id(of: text) { attributes[Int(id)] = .userDefined }
        }
        // Gemma 4 / PaddleOCR: with `<|tool_response>` present, `</s>` is ordinary text again.
        if table.id(of: "<|tool_response>") != nil, let id = table.id(of: "</s>") {
            attributes[Int(id)] = .normal
        }
    }
}
