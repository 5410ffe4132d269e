// Gemma 3 hyper-parameters, read from GGUF metadata (never hard-coded), with the rules
// llama.cpp applies to Gemma 3 where the file says nothing (see `init(file:)`).

import Foundation

public struct GemmaConfig: Codable, Sendable, Equatable {
    /// Number of transformer blocks (`gemma3.block_count`; 18 for 270M).
    public var blockCount: Int
    /// D: hidden size (`embedding_length`; 640).
    public var hiddenSize: Int
    /// F: FFN inner size (`feed_forward_length`; 2048).
    public var ffnSize: Int
    /// H: query heads (`attention.head_count`; 4).
    public var headCount: Int
    /// K: key/value heads (`attention.head_count_kv`; 1).
    public var kvHeadCount: Int
    /// E: head dimension of queries and keys (`attention.key_length`; 256).
    public var headDim: Int
    /// Head dimension of values (`attention.value_length`; must equal `headDim` here).
    public var valueDim: Int
    /// V: vocabulary size (rows of `token_embd.weight`; 262144).
    public var vocabSize: Int
    /// Trained context length (`context_length`; 32768).
    public var contextLength: Int
    /// ε of every RMSNorm (`attention.layer_norm_rms_epsilon`; 1e-6).
    public var rmsNormEps: Float
    /// RoPE base of global-attention layers (`rope.freq_base`; 1e6).
    public var ropeBaseGlobal: Float
    /// RoPE base of sliding-window layers (`rope.freq_base_swa` if present, else llama.cpp's
    /// Gemma 3 constant 10 000).
    public var ropeBaseLocal: Float
    /// Keys visible to a query on a sliding-window layer: positions p−W+1 … p
    /// (`attention.sliding_window`; 512).
    public var slidingWindow: Int
    /// Every `slidingWindowPattern`-th layer is global (llama.cpp: `set_swa_pattern(6)` →
    /// layers 5, 11, 17); the others use the sliding window.
    public var slidingWindowPattern: Int
    /// Factor applied to q before q·k: 1/√E (llama.cpp: 1/√(D/H) for the 62-layer 27B only).
    public var queryScale: Float
    /// Factor applied to the token embedding: √D, computed in Float32 as llama.cpp does.
    public var embeddingScale: Float

    public init(
        blockCount: Int, hiddenSize: Int, ffnSize: Int, headCount: Int, kvHeadCount: Int,
        headDim: Int, valueDim: Int? = nil, vocabSize: Int, contextLength: Int,
        rmsNormEps: Float = 1e-6, ropeBaseGlobal: Float = 1_000_000, ropeBaseLocal: Float = 10_000,
        slidingWindow: Int, slidingWindowPattern: Int = 6, queryScale: Float? = nil
    ) {
        self.blockCount = blockCount
        self.hiddenSize = hiddenSize
        self.ffnSize = ffnSize
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        self.headDim = headDim
        self.valueDim = valueDim ?? headDim
        self.vocabSize = vocabSize
        self.contextLength = contextLength
        self.rmsNormEps = rmsNormEps
        self.ropeBaseGlobal = ropeBaseGlobal
        self.ropeBaseLocal = ropeBaseLocal
        self.slidingWindow = slidingWindow
        self.slidingWindowPattern = slidingWindowPattern
        self.queryScale = queryScale ?? 1 / Float(headDim).squareRoot()
        self.embeddingScale = Float(hiddenSize).squareRoot()
    }

    /// Reads the configuration of a Gemma 3 GGUF file.
    public init(file: GGUFFile) throws {
        let arch = try file.string("general.architecture")
        guard arch == "gemma3" else { throw GemmaError.unsupportedArchitecture(arch) }
        func key(_ k: String) -> String { "\(arch).\(k)" }
        let blocks = try file.int(key("block_count"))
        let d = try file.int(key("embedding_length"))
        let h = try file.int(key("attention.head_count"))
        let e = try file.optionalInt(key("attention.key_length")) ?? d / h
        let embd = try file.require("token_embd.weight")
        // llama.cpp (load_hparams, LLM_ARCH_GEMMA3): 1/sqrt(n_embd_head_k), except the 27B.
        let qScale: Float = blocks == 62 ? 1 / Float(d / h).squareRoot() : 1 / Float(e).squareRoot()
        self.init(
            blockCount: blocks,
            hiddenSize: d,
            ffnSize: try file.int(key("feed_forward_length")),
            headCount: h,
            kvHeadCount: try file.optionalInt(key("attention.head_count_kv")) ?? h,
            headDim: e,
            valueDim: try file.optionalInt(key("attention.value_length")) ?? e,
            vocabSize: embd.rowCount,
            contextLength: try file.int(key("context_length")),
            rmsNormEps: try file.float(key("attention.layer_norm_rms_epsilon")),
            ropeBaseGlobal: try file.optionalFloat(key("rope.freq_base")) ?? 1_000_000,
            ropeBaseLocal: try file.optionalFloat(key("rope.freq_base_swa")) ?? 10_000,
            slidingWindow: try file.int(key("attention.sliding_window")),
            slidingWindowPattern: try file.optionalInt(key("attention.sliding_window_pattern")) ?? 6,
            queryScale: qScale
        )
        try validate()
    }

    /// Whether `layer` attends to all previous positions (true) or to a sliding window.
    public func isGlobal(layer: Int) -> Bool {
        slidingWindowPattern <= 1 || (layer + 1) % slidingWindowPattern == 0
    }

    /// RoPE base of `layer`.
    public func ropeBase(layer: Int) -> Float { isGlobal(layer: layer) ? ropeBaseGlobal : ropeBaseLocal }

    /// Rows of the fused q/k/v projection: H·E + 2·K·E.
    public var qkvRows: Int { (headCount + 2 * kvHeadCount) * headDim }

    func validate() throws {
        func check(_ ok: Bool, _ what: String) throws { if !ok { throw GemmaError.badConfig(what) } }
        try check(blockCount > 0 && hiddenSize > 0 && ffnSize > 0 && vocabSize > 0, "non-positive size")
        try check(headCount > 0 && kvHeadCount > 0 && headCount % kvHeadCount == 0,
                  "head_count \(headCount) not a multiple of head_count_kv \(kvHeadCount)")
        try check(headDim > 0 && headDim % 2 == 0, "key_length \(headDim) must be even (RoPE)")
        try check(valueDim == headDim, "value_length \(valueDim) ≠ key_length \(headDim) is not supported")
        try check(slidingWindow > 0, "sliding_window must be positive")
    }
}

public enum GemmaError: Error, Sendable, Equatable, CustomStringConvertible {
    case unsupportedArchitecture(String)
    case badConfig(String)
    case badTensor(name: String, expected: [Int], found: [Int])
    case contextFull(capacity: Int)
    case emptyInput
    case invalidToken(Int32)
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .unsupportedArchitecture(a): return "unsupported model architecture '\(a)' (expected gemma3)"
        case let .badConfig(s): return "bad Gemma config: \(s)"
        case let .badTensor(n, e, f): return "tensor \(n) has shape \(f), expected \(e)"
        case let .contextFull(c): return "context full: the session holds at most \(c) tokens"
        case .emptyInput: return "no tokens to run"
        case let .invalidToken(id): return "token id \(id) is outside the vocabulary"
        case let .invalidArgument(s): return s
        }
    }
}
