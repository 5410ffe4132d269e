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

import Foundation

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

    public init(attentionNorm: [Float], qkv: Matrix, queryNorm: [Float], keyNorm: [Float],
                attentionOutput: Matrix, postAttentionNorm: [Float], ffnNorm: [Float],
                gateUp: Matrix, down: Matrix, postFFNNorm: [Float]) {
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
    }

    /// attn_q: [H·E, D] (a copy of rows of `qkv`).
    public func queryWeight(_ c: GemmaConfig) -> Matrix { qkv.rows(0 ..< c.headCount * c.headDim) }
    /// ffn_gate: [F, D] (a copy of rows of `gateUp`).
    public func gateWeight(_ c: GemmaConfig) -> Matrix { gateUp.rows(0 ..< c.ffnSize) }
    /// ffn_up: [F, D] (a copy of rows of `gateUp`).
    public func upWeight(_ c: GemmaConfig) -> Matrix { gateUp.rows(c.ffnSize ..< 2 * c.ffnSize) }
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

    /// Loads and dequantises every weight of a Gemma 3 GGUF file (the file is not retained).
    /// `progress` receives (stage, fraction done) as blocks are decoded.
    public init(file: GGUFFile, threads: Int = 2, progress: ((String, Double) -> Void)? = nil) throws {
        let c = try GemmaConfig(file: file)
        let top = WeightReader(file: file, prefix: "")
        progress?("token_embd", 0)
        let embd = try top.info("token_embd", [c.hiddenSize, c.vocabSize])
        embedding = HalfMatrix(rows: c.vocabSize, cols: c.hiddenSize, values: try file.dequantizeF16(embd))
        outputNorm = try top.vector("output_norm", c.hiddenSize)
        var blocks: [GemmaBlockWeights] = []
        blocks.reserveCapacity(c.blockCount)
        for i in 0..<c.blockCount {
            progress?("blk.\(i)", 0.3 + 0.7 * Double(i) / Double(c.blockCount))
            blocks.append(try GemmaBlockWeights(file: file, layer: i, config: c))
        }
        progress?("done", 1)
        config = c
        self.blocks = blocks
        self.threads = max(1, threads)
        // Core splits work over threads itself; OpenBLAS runs single-threaded inside each part.
        BLAS.setThreads(1)
    }

    /// Builds a model from weights in memory (tests, synthetic models).
    public init(config: GemmaConfig, embedding: HalfMatrix, outputNorm: [Float], blocks: [GemmaBlockWeights], threads: Int = 2) throws {
        try config.validate()
        guard embedding.rows == config.vocabSize, embedding.cols == config.hiddenSize,
              outputNorm.count == config.hiddenSize, blocks.count == config.blockCount
        else { throw GemmaError.badConfig("weights do not match the config") }
        self.config = config
        self.embedding = embedding
        self.outputNorm = outputNorm
        self.blocks = blocks
        self.threads = max(1, threads)
        // Core splits work over threads itself; OpenBLAS runs single-threaded inside each part.
        BLAS.setThreads(1)
    }

    /// Convenience: memory-maps and loads the GGUF file at `path`.
    public convenience init(path: String, threads: Int = 2, progress: ((String, Double) -> Void)? = nil) throws {
        try self.init(file: try GGUFFile(path: path), threads: threads, progress: progress)
    }

    /// A session (KV cache + scratch) holding at most `capacity` tokens.
    public func makeSession(capacity: Int = 2048) -> GemmaSession {
        GemmaSession(model: self, capacity: capacity)
    }
}
