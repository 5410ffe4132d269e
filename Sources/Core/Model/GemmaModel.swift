// Gemma 3 (text) weights, loaded from a GGUF file: the checkpoint's tensor names are mapped
// to readable Swift names in one place (`GemmaBlockWeights.init(file:layer:config:)`).
//
// Dimension glossary (used in every shape comment of Model/):
//   T  tokens of one forward call          D  hidden size (640)
//   F  FFN inner size (2048)               H  query heads (4)
//   K  key/value heads (1)                 E  head dimension (256)
//   V  vocabulary (262144)                 S  key positions attended to
// A weight [R, C] is row-major with R output rows of length C ("y = x · Wᵀ"): exactly the
// GGUF layout, where shape[0] = ne0 = C is the contiguous row length.
//
// Precision: block matrices are dequantised once to Float32 at load (≈100M values, ≈400 MB)
// and multiplied with OpenBLAS; the token embedding [V, D] (also the tied output matrix) is
// kept in Float16 (≈335 MB) and multiplied with the F16 kernels of `HalfMatrix`.
//
// Numerics (`GemmaNumerics`): `.llamaCppCompatible` (opt-in, per model or per session)
// reproduces the CPU arithmetic of the llama.cpp build that wrote Tests/Fixtures bit for bit:
// activations rounded to each weight's ggml `vec_dot_type` (Q8_0 / Q8_K / F16, see
// Tensor/ActivationRounding.swift), then ggml's integer dot products and float summation
// orders, which depend on the row count as in llama.cpp (Int8BlockMatrix: Q5_0/Q8_0 lanes,
// repacked Q4_K gemm for groups of 4 rows and gemv for the rest, Q6_K vec_dot below 8 rows and
// the tiled product from 8), F16 KV cache, tinyBLAS / vec_dot_f16 attention, AVX-512 exp in
// the softmax, the F16 GELU table, Q8_0 token embedding rows and logits, the last block run
// for the output rows only, and prompts over 512 tokens in llama.cpp's 512-token micro-batches. On the 27 fixture prompts its logits equal llama.cpp's
// (max |Δ| 5.7e-6, the fixtures' 7 significant digits) and so do all 27 greedy 16-token
// continuations. It is slower (integer-exact kernels in Swift: prefill ≈ 0.2×, decode ≈ 0.7×
// of llama.cpp; bench/generate.sh --numerics llamaCppCompatible).
// `.float32` (the default) is Float32 arithmetic on the exactly decoded weights, with OpenBLAS
// sgemm for prefill and the int8 block kernels for one-token decode: prefill ≈ 0.9×, decode
// ≈ 0.9× of llama.cpp. Its logits are within 0.72 of llama.cpp's and 19/27 continuations are
// equal: the model is chaotic at the bit level, and llama.cpp's own logits move by up to 1.6
// when only its summation order changes (tools/llama_self_agreement.py).
// The model keeps the file's quantised blocks in `Int8BlockMatrix` form (token_embd ≈ 180 MB,
// the block matrices ≈ 125 MB) for both numerics, besides the Float32 copies used by sgemm and
// the F16 `embedding` used by the SCEN backward pass.

import Foundation

/// How a Gemma model does its arithmetic (see the top of this file).
public enum GemmaNumerics: String, Sendable, Codable, CaseIterable {
    /// llama.cpp's CPU numerics: activation rounding to the weights' vec_dot types, F16 KV cache.
    case llamaCppCompatible
    /// Float32 throughout on the dequantised weights.
    case float32
}

/// The GGUF storage types of a block's matrices (they decide llama.cpp's activation rounding).
public struct GemmaBlockTypes: Sendable, Equatable {
    public var query, key, value, attentionOutput, gate, up, down: GGMLType

    public init(query: GGMLType, key: GGMLType, value: GGMLType, attentionOutput: GGMLType,
                gate: GGMLType, up: GGMLType, down: GGMLType) {
        self.query = query; self.key = key; self.value = value
        self.attentionOutput = attentionOutput
        self.gate = gate; self.up = up; self.down = down
    }

    /// Every matrix in Float32 (in-memory models).
    public static let float32 = GemmaBlockTypes(query: .f32, key: .f32, value: .f32, attentionOutput: .f32,
                                                gate: .f32, up: .f32, down: .f32)
}

/// The weights of one transformer block.
public struct GemmaBlockWeights: Sendable {
    /// attn_norm: [D], RMSNorm before attention.
    public let attentionNorm: [Float]
    /// attn_q [H·E, D], attn_k [K·E, D] and attn_v [K·E, D] stacked: [H·E + 2·K·E, D]
    /// (rows 0..<H·E are q, then K·E rows of k, then K·E rows of v).
    public let qkv: Matrix
    /// attn_q_norm: [E], RMSNorm of each query head.
    public let queryNorm: [Float]
    /// attn_k_norm: [E], RMSNorm of each key head.
    public let keyNorm: [Float]
    /// attn_output: [D, H·E].
    public let attentionOutput: Matrix
    /// post_attention_norm: [D], RMSNorm of the attention output before the residual add.
    public let postAttentionNorm: [Float]
    /// ffn_norm: [D], RMSNorm before the FFN.
    public let ffnNorm: [Float]
    /// ffn_gate [F, D] and ffn_up [F, D] stacked: [2F, D] (gate rows first).
    public let gateUp: Matrix
    /// ffn_down: [D, F].
    public let down: Matrix
    /// post_ffw_norm: [D], RMSNorm of the FFN output before the residual add.
    public let postFFNNorm: [Float]
    /// The GGUF types the matrices were stored in (`.float32` for in-memory weights).
    public let types: GemmaBlockTypes

    public init(attentionNorm: [Float], qkv: Matrix, queryNorm: [Float], keyNorm: [Float],
                attentionOutput: Matrix, postAttentionNorm: [Float], ffnNorm: [Float],
                gateUp: Matrix, down: Matrix, postFFNNorm: [Float], types: GemmaBlockTypes = .float32) {
        self.types = types
        self.attentionNorm = attentionNorm
        self.qkv = qkv
        self.queryNorm = queryNorm
        self.keyNorm = keyNorm
        self.attentionOutput = attentionOutput
        self.postAttentionNorm = postAttentionNorm
        self.ffnNorm = ffnNorm
        self.gateUp = gateUp
        self.down = down
        self.postFFNNorm = postFFNNorm
    }

    /// Block `layer` of a GGUF file: the one place where checkpoint names are read.
    init(file: GGUFFile, layer i: Int, config c: GemmaConfig) throws {
        let d = c.hiddenSize, e = c.headDim, f = c.ffnSize
        let qRows = c.headCount * e, kvRows = c.kvHeadCount * e
        let w = WeightReader(file: file, prefix: "blk.\(i).")
        attentionNorm = try w.vector("attn_norm", d)
        qkv = Matrix(stacking: [try w.matrix("attn_q", qRows, d),
                                try w.matrix("attn_k", kvRows, d),
                                try w.matrix("attn_v", kvRows, d)])
        queryNorm = try w.vector("attn_q_norm", e)
        keyNorm = try w.vector("attn_k_norm", e)
        attentionOutput = try w.matrix("attn_output", d, qRows)
        postAttentionNorm = try w.vector("post_attention_norm", d)
        ffnNorm = try w.vector("ffn_norm", d)
        gateUp = Matrix(stacking: [try w.matrix("ffn_gate", f, d), try w.matrix("ffn_up", f, d)])
        down = try w.matrix("ffn_down", d, f)
        postFFNNorm = try w.vector("post_ffw_norm", d)
        types = GemmaBlockTypes(
            query: try w.info("attn_q", [d, qRows]).type, key: try w.info("attn_k", [d, kvRows]).type,
            value: try w.info("attn_v", [d, kvRows]).type, attentionOutput: try w.info("attn_output", [qRows, d]).type,
            gate: try w.info("ffn_gate", [d, f]).type, up: try w.info("ffn_up", [d, f]).type,
            down: try w.info("ffn_down", [f, d]).type)
    }

    /// attn_q: [H·E, D] (a copy of rows of `qkv`).
    public func queryWeight(_ c: GemmaConfig) -> Matrix { qkv.rows(0 ..< c.headCount * c.headDim) }
    /// ffn_gate: [F, D] (a copy of rows of `gateUp`).
    public func gateWeight(_ c: GemmaConfig) -> Matrix { gateUp.rows(0 ..< c.ffnSize) }
    /// ffn_up: [F, D] (a copy of rows of `gateUp`).
    public func upWeight(_ c: GemmaConfig) -> Matrix { gateUp.rows(c.ffnSize ..< 2 * c.ffnSize) }
}

/// A block's matrices in their GGUF quantisation (Int8BlockMatrix), for one-token decoding and
/// every product in llama.cpp numerics; nil where a type is not supported (the Float32 matrix
/// is used instead).
struct QuantizedBlockWeights: Sendable {
    let qkv: Int8BlockMatrix?
    let attentionOutput: Int8BlockMatrix?
    let gateUp: Int8BlockMatrix?
    let down: Int8BlockMatrix?

    init(file: GGUFFile, layer i: Int, config c: GemmaConfig) throws {
        let d = c.hiddenSize, e = c.headDim, f = c.ffnSize
        let qRows = c.headCount * e, kvRows = c.kvHeadCount * e
        let w = WeightReader(file: file, prefix: "blk.\(i).")
        func part(_ name: String, _ rows: Int, _ cols: Int) throws -> (type: GGMLType, rows: Int, data: UnsafeRawPointer) {
            let t = try w.info(name, [cols, rows])
            return (t.type, rows, file.rawBytes(of: t).baseAddress!)
        }
        qkv = Int8BlockMatrix(stacking: [try part("attn_q", qRows, d), try part("attn_k", kvRows, d),
                                         try part("attn_v", kvRows, d)], cols: d)
        attentionOutput = Int8BlockMatrix(stacking: [try part("attn_output", d, qRows)], cols: qRows)
        gateUp = Int8BlockMatrix(stacking: [try part("ffn_gate", f, d), try part("ffn_up", f, d)], cols: d)
        down = Int8BlockMatrix(stacking: [try part("ffn_down", d, f)], cols: f)
    }
}

/// Reads "<prefix><name>.weight" tensors, checking their shapes.
private struct WeightReader {
    let file: GGUFFile
    let prefix: String

    func info(_ name: String, _ expected: [Int]) throws -> GGUFTensorInfo {
        let full = prefix + name + ".weight"
        let t = try file.require(full)
        // GGUF shapes are [ne0 = row length, ne1 = rows]; trailing 1s are insignificant.
        var found = t.shape
        while found.count > expected.count, found.last == 1 { found.removeLast() }
        guard found == expected else { throw GemmaError.badTensor(name: full, expected: expected, found: t.shape) }
        return t
    }

    /// A [n] vector.
    func vector(_ name: String, _ n: Int) throws -> [Float] {
        try file.dequantize(info(name, [n]))
    }

    /// A [rows, cols] matrix (GGUF shape [cols, rows]).
    func matrix(_ name: String, _ rows: Int, _ cols: Int) throws -> Matrix {
        Matrix(rows: rows, cols: cols, values: try file.dequantize(info(name, [cols, rows])))
    }
}

/// Gemma 3 for CPU inference. Immutable after init; share it between threads and make one
/// `GemmaSession` per concurrent request.
public final class GemmaModel: Sendable {
    public let config: GemmaConfig
    /// token_embd: [V, D] in Float16; the input embedding (× √D) and the tied output matrix.
    public let embedding: HalfMatrix
    /// output_norm: [D], the final RMSNorm.
    public let outputNorm: [Float]
    /// blk.0 … blk.N-1.
    public let blocks: [GemmaBlockWeights]
    /// Threads for prefill matrix products and the output logits (OpenBLAS itself is set to
    /// one thread: see `BLAS.linear`).
    public let threads: Int
    /// The default numerics of this model's sessions (`GemmaSession.numerics` can override).
    public let numerics: GemmaNumerics
    /// The GGUF type of token_embd (`.f16` for in-memory models).
    public let embeddingType: GGMLType
    /// token_embd in its GGUF quantisation, when `Int8BlockMatrix` supports it (Q8_0): exact
    /// embedding rows and llama.cpp's logits in `.llamaCppCompatible` numerics.
    let quantizedEmbedding: Int8BlockMatrix?
    /// The block matrices in their GGUF quantisation (one-token decode, `.llamaCppCompatible`);
    /// empty for in-memory models.
    let quantizedBlocks: [QuantizedBlockWeights]

    /// Loads and dequantises every weight of a Gemma 3 GGUF file (the file is not retained).
    /// `progress` receives (stage, fraction done) as blocks are decoded.
    public init(file: GGUFFile, threads: Int = 2, numerics: GemmaNumerics = .float32,
                progress: ((String, Double) -> Void)? = nil) throws {
        let c = try GemmaConfig(file: file)
        let top = WeightReader(file: file, prefix: "")
        progress?("token_embd", 0)
        let embd = try top.info("token_embd", [c.hiddenSize, c.vocabSize])
        embedding = HalfMatrix(rows: c.vocabSize, cols: c.hiddenSize, values: try file.dequantizeF16(embd))
        embeddingType = embd.type
        quantizedEmbedding = Int8BlockMatrix(type: embd.type, rows: c.vocabSize, cols: c.hiddenSize,
                                             data: file.rawBytes(of: embd).baseAddress!)
        outputNorm = try top.vector("output_norm", c.hiddenSize)
        var blocks: [GemmaBlockWeights] = []
        var quantized: [QuantizedBlockWeights] = []
        blocks.reserveCapacity(c.blockCount)
        for i in 0..<c.blockCount {
            progress?("blk.\(i)", 0.3 + 0.7 * Double(i) / Double(c.blockCount))
            blocks.append(try GemmaBlockWeights(file: file, layer: i, config: c))
            quantized.append(try QuantizedBlockWeights(file: file, layer: i, config: c))
        }
        progress?("done", 1)
        config = c
        self.blocks = blocks
        quantizedBlocks = quantized
        self.numerics = numerics
        self.threads = max(1, threads)
        // Core splits work over threads itself; OpenBLAS runs single-threaded inside each part.
        BLAS.setThreads(1)
    }

    /// Builds a model from weights in memory (tests, synthetic models).
    /// In-memory weights carry no GGUF types (token_embd counts as F16, the blocks as their
    /// `types`), so `.llamaCppCompatible` rounds only what llama.cpp would for such a file.
    public init(config: GemmaConfig, embedding: HalfMatrix, outputNorm: [Float], blocks: [GemmaBlockWeights], threads: Int = 2,
                numerics: GemmaNumerics = .float32) throws {
        try config.validate()
        guard embedding.rows == config.vocabSize, embedding.cols == config.hiddenSize,
              outputNorm.count == config.hiddenSize, blocks.count == config.blockCount
        else { throw GemmaError.badConfig("weights do not match the config") }
        self.config = config
        self.embedding = embedding
        self.outputNorm = outputNorm
        self.blocks = blocks
        self.threads = max(1, threads)
        self.numerics = numerics
        embeddingType = .f16
        quantizedEmbedding = nil
        quantizedBlocks = []
        // Core splits work over threads itself; OpenBLAS runs single-threaded inside each part.
        BLAS.setThreads(1)
    }

    /// Convenience: memory-maps and loads the GGUF file at `path`.
    public convenience init(path: String, threads: Int = 2, numerics: GemmaNumerics = .float32,
                            progress: ((String, Double) -> Void)? = nil) throws {
        try self.init(file: try GGUFFile(path: path), threads: threads, numerics: numerics, progress: progress)
    }

    /// A session (KV cache + scratch) holding at most `capacity` tokens.
    public func makeSession(capacity: Int = 2048) -> GemmaSession {
        GemmaSession(model: self, capacity: capacity)
    }
}
