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
// Memory: a file model keeps its matrices in the file's own quantised blocks, read through the
// memory map (≈250 MB, `QuantizedMatrix`); loading reads only the norm vectors. Copies are made
// on first use only: Float32 blocks (≈400 MB) and the Float16 embedding (≈335 MB) for the
// training passes (`blocks`, `embedding`), `Int8BlockMatrix` copies (≈305 MB) for
// `.llamaCppCompatible`. A serving process (router, `scen generate`) never makes them.
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
// `.float32` (the default): a prompt is Float32 arithmetic on the exactly decoded weights (each
// thread dequantises its rows of a product, then OpenBLAS sgemm; bit for bit what the dense
// Float32 copy gives, so training and serving see the same activations); a decode step runs
// the C kernels of CQuantKernels on the file's blocks, its activations rounded to Q8_0 / Q8_K
// blocks as llama.cpp rounds them. Logits of a prompt are within 0.72 of llama.cpp's; 17/27
// greedy continuations are equal: the model is chaotic at the bit level, and llama.cpp's own
// logits move by up to 1.6 when only its summation order changes (tools/llama_self_agreement.py).

import CQuantKernels
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

/// A block's matrices in their GGUF quantisation as `Int8BlockMatrix` copies, for the products
/// of `.llamaCppCompatible` numerics; nil where a type is not supported (the Float32 matrix is
/// used instead).
struct Int8BlockWeights: Sendable {
    let qkv: Int8BlockMatrix?
    let attentionOutput: Int8BlockMatrix?
    let gateUp: Int8BlockMatrix?
    let down: Int8BlockMatrix?

    init(file: GGUFFile, layer i: Int, config c: GemmaConfig) throws {
        let w = WeightReader(file: file, prefix: "blk.\(i).")
        func stack(_ names: [(String, Int)], cols: Int) throws -> Int8BlockMatrix? {
            Int8BlockMatrix(stacking: try w.parts(names, cols: cols), cols: cols)
        }
        let d = c.hiddenSize, e = c.headDim, f = c.ffnSize, qRows = c.headCount * e, kvRows = c.kvHeadCount * e
        qkv = try stack([("attn_q", qRows), ("attn_k", kvRows), ("attn_v", kvRows)], cols: d)
        attentionOutput = try stack([("attn_output", d)], cols: qRows)
        gateUp = try stack([("ffn_gate", f), ("ffn_up", f)], cols: d)
        down = try stack([("ffn_down", d)], cols: f)
    }
}

/// What the forward pass reads of one block: the norm weights, and the matrices in the file's
/// own quantised blocks (nil for in-memory models and unsupported types: then the dense
/// `GemmaBlockWeights` are used).
struct ForwardBlock: Sendable {
    let attentionNorm, queryNorm, keyNorm, postAttentionNorm, ffnNorm, postFFNNorm: [Float]
    let qkv, attentionOutput, gateUp, down: QuantizedMatrix?
    let types: GemmaBlockTypes

    init(dense b: GemmaBlockWeights) {
        attentionNorm = b.attentionNorm; queryNorm = b.queryNorm; keyNorm = b.keyNorm
        postAttentionNorm = b.postAttentionNorm; ffnNorm = b.ffnNorm; postFFNNorm = b.postFFNNorm
        qkv = nil; attentionOutput = nil; gateUp = nil; down = nil
        types = b.types
    }

    init(file: GGUFFile, layer i: Int, config c: GemmaConfig) throws {
        let d = c.hiddenSize, e = c.headDim, f = c.ffnSize, qRows = c.headCount * e, kvRows = c.kvHeadCount * e
        let w = WeightReader(file: file, prefix: "blk.\(i).")
        func stack(_ names: [(String, Int)], cols: Int) throws -> QuantizedMatrix? {
            QuantizedMatrix(stacking: try w.parts(names, cols: cols), cols: cols, owner: file)
        }
        attentionNorm = try w.vector("attn_norm", d)
        queryNorm = try w.vector("attn_q_norm", e)
        keyNorm = try w.vector("attn_k_norm", e)
        postAttentionNorm = try w.vector("post_attention_norm", d)
        ffnNorm = try w.vector("ffn_norm", d)
        postFFNNorm = try w.vector("post_ffw_norm", d)
        qkv = try stack([("attn_q", qRows), ("attn_k", kvRows), ("attn_v", kvRows)], cols: d)
        attentionOutput = try stack([("attn_output", d)], cols: qRows)
        gateUp = try stack([("ffn_gate", f), ("ffn_up", f)], cols: d)
        down = try stack([("ffn_down", d)], cols: f)
        types = GemmaBlockTypes(
            query: try w.info("attn_q", [d, qRows]).type, key: try w.info("attn_k", [d, kvRows]).type,
            value: try w.info("attn_v", [d, kvRows]).type, attentionOutput: try w.info("attn_output", [qRows, d]).type,
            gate: try w.info("ffn_gate", [d, f]).type, up: try w.info("ffn_up", [d, f]).type,
            down: try w.info("ffn_down", [f, d]).type)
    }
}

/// A value computed on first use (under a lock) and kept.
final class Lazy<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value?
    private let make: @Sendable () -> Value

    /// Whether `release()` may drop the value (false for given values: nothing would be freed).
    private let releasable: Bool

    init(_ make: @escaping @Sendable () -> Value) { self.make = make; releasable = true }
    init(value: Value) { stored = value; make = { value }; releasable = false }

    var value: Value {
        lock.lock()
        defer { lock.unlock() }
        if let stored { return stored }
        let v = make()
        stored = v
        return v
    }

    /// Drops a computed value (its memory is freed once no caller holds it); the next `value`
    /// computes it again.
    func release() {
        guard releasable else { return }
        lock.lock()
        stored = nil
        lock.unlock()
    }

    /// Whether `value` has been computed.
    var isLoaded: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stored != nil
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

    /// A [rows, cols] matrix's raw bytes, checked to lie in the file and to be dequantisable.
    func part(_ name: String, rows: Int, cols: Int) throws -> (type: GGMLType, rows: Int, data: UnsafeRawPointer) {
        let t = try info(name, [cols, rows])
        guard let start = file.checkedDataStart(of: t) else { throw GGUFError.tensorOutOfBounds(name: t.name) }
        guard Dequantizer.kernel(for: t.type) != nil else { throw GGUFError.unsupportedQuantization(t.type) }
        return (t.type, rows, start)
    }

    /// Tensors of `cols` columns to stack, as (name, rows) pairs: their `part`s in order.
    func parts(_ names: [(String, Int)], cols: Int) throws -> [(type: GGMLType, rows: Int, data: UnsafeRawPointer)] {
        try names.map { try part($0.0, rows: $0.1, cols: cols) }
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
    /// output_norm: [D], the final RMSNorm.
    public let outputNorm: [Float]
    /// Threads for matrix products and the output logits (OpenBLAS itself is set to one
    /// thread: see `BLAS.linear`).
    public let threads: Int
    /// The default numerics of this model's sessions (`GemmaSession.numerics` can override).
    public let numerics: GemmaNumerics
    /// The GGUF type of token_embd (`.f16` for in-memory models).
    public let embeddingType: GGMLType
    /// What the forward pass reads per block (norms; quantised matrices for file models).
    let forwardBlocks: [ForwardBlock]
    /// token_embd in the file's own blocks (file models with a supported type): input rows and
    /// the tied output projection, read from the memory map.
    let tiedEmbedding: QuantizedMatrix?
    /// Float32 block weights: given (in-memory models) or dequantised on first use (training,
    /// unsupported types).
    private let denseBlocks: Lazy<[GemmaBlockWeights]>
    /// token_embd in Float16: given, or made on first use (the SCEN backward pass).
    private let halfEmbedding: Lazy<HalfMatrix>
    /// `.llamaCppCompatible` numerics' `Int8BlockMatrix` copies, made on first use.
    private let int8Weights: Lazy<(blocks: [Int8BlockWeights], embedding: Int8BlockMatrix?)>

    /// blk.0 … blk.N-1 in Float32 (for file models dequantised on first use: ≈ 400 MB).
    public var blocks: [GemmaBlockWeights] { denseBlocks.value }
    /// token_embd: [V, D] in Float16 (for file models made on first use: ≈ 335 MB); the
    /// training passes' input embedding and tied output matrix.
    public var embedding: HalfMatrix { halfEmbedding.value }
    /// Whether the dense Float32 block weights are in memory (then prompts use them directly).
    var hasDenseBlocks: Bool { denseBlocks.isLoaded }

    /// Frees the Float32 blocks and the Float16 embedding of a file model (≈ 735 MB) once a
    /// serving process is done with the training passes it ran at start (the router's key
    /// statistics); they are made again if anything needs them. No effect on in-memory models.
    public func releaseTrainingCopies() {
        denseBlocks.release()
        halfEmbedding.release()
        // Many of those arrays came from malloc's heap, which keeps freed memory unless trimmed.
        scen_return_free_memory()
    }
    /// The block matrices as `Int8BlockMatrix` (`.llamaCppCompatible`); empty for in-memory models.
    var quantizedBlocks: [Int8BlockWeights] { int8Weights.value.blocks }
    /// token_embd as `Int8BlockMatrix` when supported (`.llamaCppCompatible`).
    var quantizedEmbedding: Int8BlockMatrix? { int8Weights.value.embedding }

    /// Maps nothing into memory but the file: the matrices stay in the file's quantised blocks
    /// (read through its memory map, which the model keeps); Float32 and Float16 copies for
    /// training and the `.llamaCppCompatible` copies are made on first use. `progress`
    /// receives (stage, fraction done).
    public init(file: GGUFFile, threads: Int = 2, numerics: GemmaNumerics = .float32,
                progress: ((String, Double) -> Void)? = nil) throws {
        let c = try GemmaConfig(file: file)
        let top = WeightReader(file: file, prefix: "")
        progress?("token_embd", 0)
        let embd = try top.info("token_embd", [c.hiddenSize, c.vocabSize])
        let embdPart = try top.part("token_embd", rows: c.vocabSize, cols: c.hiddenSize)
        embeddingType = embd.type
        tiedEmbedding = QuantizedMatrix(stacking: [embdPart], cols: c.hiddenSize, owner: file)
        outputNorm = try top.vector("output_norm", c.hiddenSize)
        var forward: [ForwardBlock] = []
        for i in 0..<c.blockCount {
            progress?("blk.\(i)", Double(i) / Double(c.blockCount))
            forward.append(try ForwardBlock(file: file, layer: i, config: c))
        }
        progress?("done", 1)
        config = c
        forwardBlocks = forward
        // Shapes, bounds and types were checked above, so these cannot fail on this file.
        denseBlocks = Lazy {
            (0..<c.blockCount).map { i in
                do { return try GemmaBlockWeights(file: file, layer: i, config: c) } catch {
                    preconditionFailure("GemmaModel: block \(i) of a checked file failed to dequantise: \(error)")
                }
            }
        }
        halfEmbedding = Lazy {
            do { return HalfMatrix(rows: c.vocabSize, cols: c.hiddenSize, values: try file.dequantizeF16(embd)) } catch {
                preconditionFailure("GemmaModel: token_embd of a checked file failed to dequantise: \(error)")
            }
        }
        let embdType = embdPart.type, embdData = SendableRawPointer(embdPart.data)
        int8Weights = Lazy {
            do {
                let blocks = try (0..<c.blockCount).map { try Int8BlockWeights(file: file, layer: $0, config: c) }
                return (blocks, Int8BlockMatrix(type: embdType, rows: c.vocabSize, cols: c.hiddenSize, data: embdData.pointer))
            } catch {
                preconditionFailure("GemmaModel: the int8 copies of a checked file failed: \(error)")
            }
        }
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
        halfEmbedding = Lazy(value: embedding)
        self.outputNorm = outputNorm
        denseBlocks = Lazy(value: blocks)
        forwardBlocks = blocks.map { ForwardBlock(dense: $0) }
        self.threads = max(1, threads)
        self.numerics = numerics
        embeddingType = .f16
        tiedEmbedding = nil
        int8Weights = Lazy(value: ([], nil))
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
