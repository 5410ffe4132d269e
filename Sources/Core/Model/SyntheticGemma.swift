// A tiny Gemma-3-shaped model with seeded random weights, written as a GGUF image: the unit tests'
// model (with their independent reference forward, Tests/CoreTests/GemmaSyntheticModel.swift) and,
// with a real model's tokenizer metadata and vocabulary size, the model of `scen tiny-model` that
// lets the fault soak (bench/fault_soak.py) train thousands of edits in minutes.

import Foundation

public struct SyntheticGemma: Sendable {
    public let d = 16, f = 32, h = 4, k = 1, e = 8, blocks = 6, window = 4, context = 128
    public let vocab: Int
    public let eps: Float = 1e-6, ropeGlobal: Float = 1_000_000, ropeLocal: Float = 10_000

    public struct Block: Sendable {
        public var attnNorm, qNorm, kNorm, postAttnNorm, ffnNorm, postFFNNorm: [Float]
        /// [rows, cols] row-major: q [H·E, D], k/v [K·E, D], o [D, H·E], gate/up [F, D], down [D, F].
        public var q, kw, v, o, gate, up, down: [Float]
    }

    /// Token embedding [V, D], already rounded to Float16 (it is stored as F16).
    public var embedding: [Float] = []
    public var outputNorm: [Float] = []
    public var layers: [Block] = []
    /// Extra metadata written into the file (e.g. a real model's `tokenizer.*` keys).
    public var metadata: [(key: String, value: GGUFValue)] = []

    public init(seed: UInt64 = 42, vocab: Int = 50) {
        self.vocab = vocab
        var r = SplitMix64(seed: seed)
        func values(_ n: Int, _ a: Float) -> [Float] { (0..<n).map { _ in r.uniform(a) } }
        /// Around 1 (the GGUF convention already includes the +1 of Gemma's norms).
        func norms(_ n: Int) -> [Float] { (0..<n).map { _ in 1 + r.uniform(0.3) } }
        embedding = values(vocab * d, 0.5).map { Float(Float16($0)) }
        outputNorm = norms(d)
        for _ in 0..<blocks {
            layers.append(Block(
                attnNorm: norms(d), qNorm: norms(e), kNorm: norms(e), postAttnNorm: norms(d),
                ffnNorm: norms(d), postFFNNorm: norms(d),
                q: values(h * e * d, 0.4), kw: values(k * e * d, 0.4), v: values(k * e * d, 0.4),
                o: values(d * h * e, 0.3), gate: values(f * d, 0.4), up: values(f * d, 0.4),
                down: values(d * f, 0.25)))
        }
    }

    /// The weights and a tokenizer of `file` (every `tokenizer.*` key; the vocabulary is its size).
    public init(seed: UInt64 = 42, tokenizerOf file: GGUFFile) throws {
        let tokens = try file.strings("tokenizer.ggml.tokens")
        self.init(seed: seed, vocab: tokens.count)
        metadata = file.metadataKeys.filter { $0.hasPrefix("tokenizer.") }.compactMap { k in file.metadata[k].map { (k, $0) } }
    }

    /// The file image.
    public func gguf() throws -> [UInt8] { try writer().data() }

    /// A writer holding the file's metadata and tensors.
    public func writer() throws -> GGUFWriter {
        var w = GGUFWriter()
        w.set("general.architecture", .string("gemma3"))
        w.set("gemma3.block_count", .uint32(UInt32(blocks)))
        w.set("gemma3.embedding_length", .uint32(UInt32(d)))
        w.set("gemma3.feed_forward_length", .uint32(UInt32(f)))
        w.set("gemma3.attention.head_count", .uint32(UInt32(h)))
        w.set("gemma3.attention.head_count_kv", .uint32(UInt32(k)))
        w.set("gemma3.attention.key_length", .uint32(UInt32(e)))
        w.set("gemma3.attention.value_length", .uint32(UInt32(e)))
        w.set("gemma3.attention.layer_norm_rms_epsilon", .float32(eps))
        w.set("gemma3.rope.freq_base", .float32(ropeGlobal))
        w.set("gemma3.attention.sliding_window", .uint32(UInt32(window)))
        w.set("gemma3.context_length", .uint32(UInt32(context)))
        for (k, v) in metadata { w.set(k, v) }
        try w.addTensor(name: "token_embd.weight", shape: [d, vocab], type: .f16, values: embedding)
        try w.addTensor(name: "output_norm.weight", shape: [d], type: .f32, values: outputNorm)
        for (i, b) in layers.enumerated() {
            func add(_ n: String, _ shape: [Int], _ v: [Float]) throws {
                try w.addTensor(name: "blk.\(i).\(n).weight", shape: shape, type: .f32, values: v)
            }
            try add("attn_norm", [d], b.attnNorm)
            try add("attn_q", [d, h * e], b.q)
            try add("attn_k", [d, k * e], b.kw)
            try add("attn_v", [d, k * e], b.v)
            try add("attn_q_norm", [e], b.qNorm)
            try add("attn_k_norm", [e], b.kNorm)
            try add("attn_output", [h * e, d], b.o)
            try add("post_attention_norm", [d], b.postAttnNorm)
            try add("ffn_norm", [d], b.ffnNorm)
            try add("ffn_gate", [d, f], b.gate)
            try add("ffn_up", [d, f], b.up)
            try add("ffn_down", [f, d], b.down)
            try add("post_ffw_norm", [d], b.postFFNNorm)
        }
        return w
    }

    /// The model in `.float32` numerics; `.llamaCppCompatible` for llama.cpp's rounding.
    public func model(numerics: GemmaNumerics = .float32) throws -> GemmaModel {
        try GemmaModel(file: GGUFFile(data: gguf()), numerics: numerics)
    }
}
