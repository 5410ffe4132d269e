// The Gemma 3 forward pass over a KV cache, and greedy generation.
//
// One forward call runs T new tokens (T > 1: prefill, matrix-matrix products; T = 1: decode,
// matrix-vector products) at positions p0 … p0+T−1 through every block:
//
//   h ← embedding[id] · √D
//   per block:  a = RMSNorm(h) · attn_norm
//               q, k, v = a · W_qkvᵀ;  q, k ← per-head RMSNorm (q_norm, k_norm), NEOX RoPE
//               (base 1e4 on sliding-window layers, 1e6 on global ones); k, v → cache
//               o = softmax(q·kᵀ / √E + causal/sliding-window mask) · v   (GQA: H/K q heads per kv head)
//               h ← h + RMSNorm(o · W_oᵀ) · post_attention_norm
//               b = RMSNorm(h) · ffn_norm
//               x = gelu_tanh(b · W_gateᵀ) ⊙ (b · W_upᵀ)                    ← FFNEdit.swift hook
//               h ← h + RMSNorm(x · W_downᵀ) · post_ffw_norm
//   logits = (RMSNorm(h) · output_norm) · embeddingᵀ   (tied; Gemma 3 has no final softcap)
//
// Logits are computed only for the rows asked for (the last one by default).
//
// With `numerics == .llamaCppCompatible` (see GemmaModel.swift) every product's activation
// operand is rounded as ggml's CPU backend rounds it and multiplied with the quantised
// `Int8BlockMatrix` copies in ggml's own order, K and V are stored as F16 values, q·kᵀ uses F16
// q, softmax·V uses F16 probabilities (tinyBLAS order for several query rows, vec_dot_f16 for
// one), gelu(gate) is ggml's F16 table lookup, the last block past attention runs for the
// output rows only, as llama.cpp's graph does, and a prompt over 512 tokens (without an editor)
// runs in llama.cpp's 512-token micro-batches.
//
// With `.float32` a generated token (`decodeInPlace`) multiplies the file's quantised blocks
// with Q8-rounded activations (`QuantizedMatrix.matMulT`); prompts use Float32 products. In
// both numerics the last block past attention runs for the output rows only when nothing
// observes or edits it.

import Foundation

/// A request's state: KV cache, scratch memory, the active edit. Not thread-safe; reusable
/// after `reset()`.
public final class GemmaSession {
    public let model: GemmaModel
    public let config: GemmaConfig
    /// Most tokens the KV cache holds.
    public let capacity: Int
    /// Tokens in the cache (the position of the next token).
    public private(set) var position = 0
    /// Sees the FFN down-projection input of every layer in every forward call (see FFNEdit.swift).
    public var observer: (any ForwardObserver)?
    /// The edit applied to layer `layer`'s down projection for this request, if any.
    public private(set) var activeEdit: (layer: Int, edit: any DownProjectionEdit)?
    /// Arithmetic of the forward pass; `model.numerics` unless changed. Change it only between
    /// requests (after `reset()`): the KV cache holds values computed under the old setting.
    public var numerics: GemmaNumerics

    /// Key and value caches per layer: [capacity, K·E] each (keys after k_norm and RoPE).
    private let keyCache: [UnsafeMutablePointer<Float>]
    fileprivate let valueCache: [UnsafeMutablePointer<Float>]
    /// Values transposed per layer, [K·E, capacity] (llama.cpp's V cache layout without flash
    /// attention), for the `.llamaCppCompatible` softmax·V products; allocated on first use.
    private var valueCacheT: [UnsafeMutablePointer<Float>] = []
    /// The quantised products' buffers.
    private let quantScratch = QuantizedProductScratch()
    /// Logits of the last forward call's output rows: [rows, V].
    private var logits: UnsafeMutablePointer<Float>
    private var logitRowCapacity = 1
    /// Rows of `logits` written by the last forward call.
    private var logitRowCount = 0
    /// Logits of a batched decode step with several rows ([rows, V]; `decode(_:tokens:)`).
    private var batchLogitBuffer: UnsafeMutablePointer<Float>?
    private var batchLogitRows = 0
    fileprivate var scratch: Scratch
    private let lastRowOnly = [0]
    /// The one-token input of `decodeInPlace`, reused so decoding allocates nothing.
    private var decodeInput: [Int32] = [0]
    /// ggml's RoPE frequency ratio per dimension pair: base^(−2/E), per layer type.
    private let thetaScaleLocal: Float
    private let thetaScaleGlobal: Float

    /// Query rows per attention tile during prefill (bounds the score buffer to tile × capacity).
    static let attentionTile = 64

    init(model: GemmaModel, capacity: Int) {
        precondition(capacity > 0, "capacity must be positive")
        self.model = model
        config = model.config
        self.capacity = capacity
        numerics = model.numerics
        // Cache rows are written before they are read; memory is only touched as it fills.
        let kv = capacity * config.kvHeadCount * config.headDim
        keyCache = (0..<config.blockCount).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: kv) }
        valueCache = (0..<config.blockCount).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: kv) }
        logits = .allocate(capacity: config.vocabSize)
        logits.initialize(repeating: 0, count: config.vocabSize)
        scratch = Scratch(config: config, rows: 1, capacity: capacity)
        thetaScaleLocal = powf(config.ropeBaseLocal, -2 / Float(config.headDim))
        thetaScaleGlobal = powf(config.ropeBaseGlobal, -2 / Float(config.headDim))
    }

    deinit {
        for p in keyCache { p.deallocate() }
        for p in valueCache { p.deallocate() }
        for p in valueCacheT { p.deallocate() }
        logits.deallocate()
        batchLogitBuffer?.deallocate()
    }

    fileprivate func keyCacheBase(_ l: Int) -> UnsafeMutablePointer<Float> { keyCache[l] }
    fileprivate func valueCacheTBase(_ l: Int) -> UnsafeMutablePointer<Float> { valueCacheT[l] }

    private func allocateTransposedValues() {
        guard valueCacheT.isEmpty else { return }
        let kv = capacity * config.kvHeadCount * config.headDim
        // Zeroed: ggml's 16-lane dot products may read a few cells past the last position
        // (with zero weight), which must not hold NaN.
        valueCacheT = (0..<config.blockCount).map { _ in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: kv); p.initialize(repeating: 0, count: kv); return p
        }
    }

    /// Empties the cache and drops the active edit.
    public func reset() {
        position = 0
        activeEdit = nil
    }

    /// Sets (or with nil clears) the edit applied at `layer` from the next forward call on.
    public func setEdit(_ edit: (any DownProjectionEdit)?, layer: Int) {
        precondition(layer >= 0 && layer < config.blockCount, "layer \(layer) out of range")
        activeEdit = edit.map { (layer, $0) }
    }

    // MARK: Public forward calls

    /// Runs `ids` (appended after the cached tokens) and returns the logits [V] of the last one.
    /// If `editor` is given it is consulted at its layer (see FFNEdit.swift) and its choice
    /// becomes the active edit, applied to these tokens and all later ones.
    @discardableResult
    public func prefill(_ ids: [Int32], editor: (any DownProjectionEditor)? = nil) throws -> [Float] {
        try prefillInPlace(ids, editor: editor)
        return withLastLogits { Array($0) }
    }

    /// Like `prefill(_:editor:)`, returning the logits of the rows `logitRows` (indices into
    /// `ids`); each row costs V floats (1 MiB for Gemma 3) of session memory.
    public func prefill(_ ids: [Int32], editor: (any DownProjectionEditor)? = nil, logitRows: [Int]) throws -> [[Float]] {
        try run(ids, outputRows: logitRows, editor: editor)
        let v = config.vocabSize
        return logitRows.indices.map { Array(UnsafeBufferPointer(start: logits + $0 * v, count: v)) }
    }

    /// Runs `ids` like `prefill(_:editor:)` but keeps the logits of the last one in the session
    /// (`withLastLogits`), or computes none when `logits` is false (an early chunk of a prompt
    /// read in several calls).
    public func prefillInPlace(_ ids: [Int32], editor: (any DownProjectionEditor)? = nil, logits: Bool = true) throws {
        try run(ids, outputRows: logits ? [ids.count - 1] : [], editor: editor)
    }

    /// Runs one token and returns its logits [V].
    public func decode(_ id: Int32) throws -> [Float] {
        try decodeInPlace(id)
        return Array(UnsafeBufferPointer(start: logits, count: config.vocabSize))
    }

    /// Runs one token; its logits stay in the session (`withLastLogits`). In `.float32` this is
    /// `decode(_:tokens:)` with one session (a one-element batch array per token).
    public func decodeInPlace(_ id: Int32) throws {
        decodeInput[0] = id
        if numerics == .float32 {
            try Self.decode([self], tokens: decodeInput)
        } else {
            try run(decodeInput, outputRows: lastRowOnly, editor: nil)
        }
    }

    /// Calls `body` with the logits [V] of the last output row of the last forward call
    /// (empty before the first call).
    public func withLastLogits<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        let v = config.vocabSize
        return try body(UnsafeBufferPointer(start: logits + max(0, logitRowCount - 1) * v, count: logitRowCount > 0 ? v : 0))
    }

    /// Generation for one request: resets the session, prefills `prompt` (with the editor, if
    /// any), then appends the next token (the argmax unless `sampling` says otherwise) until one
    /// in `stopIDs` comes up (it is returned as the last id, as llama.cpp's greedy fixtures do),
    /// `maxTokens` are produced or the cache is full. Returns the new token ids. `onToken` sees
    /// each new id as it comes; returning false ends generation there (a client that went away).
    public func generate(prompt: [Int32], maxTokens: Int, stopIDs: Set<Int32> = [],
                         editor: (any DownProjectionEditor)? = nil, sampling: SamplingParameters = .greedy,
                         onToken: (Int32) -> Bool = { _ in true }) throws -> [Int32] {
        reset()
        var out: [Int32] = []
        guard maxTokens > 0 else { return out }
        out.reserveCapacity(maxTokens)
        var sampler = TokenSampler(sampling)
        try run(prompt, outputRows: [prompt.count - 1], editor: editor)
        while true {
            let next = sampler.next(UnsafeBufferPointer(start: logits, count: config.vocabSize))
            out.append(next)
            if !onToken(next) || stopIDs.contains(next) || out.count >= maxTokens || position >= capacity { break }
            try decodeInPlace(next)
        }
        return out
    }

    // MARK: Forward pass

    private func run(_ ids: [Int32], outputRows: [Int], editor: (any DownProjectionEditor)?) throws {
        let t = ids.count
        guard t > 0 else { throw GemmaError.emptyInput }
        guard position + t <= capacity else { throw GemmaError.contextFull(capacity: capacity) }
        for id in ids where id < 0 || Int(id) >= config.vocabSize { throw GemmaError.invalidToken(id) }
        for r in outputRows where r < 0 || r >= t { throw GemmaError.invalidArgument("logit row \(r) out of 0..<\(t)") }
        if let editor, editor.layer < 0 || editor.layer >= config.blockCount {
            throw GemmaError.invalidArgument("editor layer \(editor.layer) out of 0..<\(config.blockCount)")
        }
        if scratch.rows < t { scratch = Scratch(config: config, rows: t, capacity: capacity) }
        if outputRows.count > logitRowCapacity {
            logits.deallocate()
            logitRowCapacity = outputRows.count
            logits = .allocate(capacity: logitRowCapacity * config.vocabSize)
        }
        if numerics == .llamaCppCompatible { allocateTransposedValues() }
        let batch = Self.llamaCppMicroBatch
        if numerics == .llamaCppCompatible, editor == nil, t > batch, let first = outputRows.min(), first >= (t - 1) / batch * batch {
            // llama.cpp evaluates a long prompt in micro-batches of n_ubatch tokens, and its
            // kernels depend on the row count: so do we, in its numerics. The earlier batches
            // only fill the KV cache (their last block's outputs are unused, as there).
            var start = 0
            while start < t {
                let end = min(t, start + batch)
                forward(Array(ids[start..<end]), outputRows: end == t ? outputRows.map { $0 - start } : [], editor: nil)
                position += end - start
                start = end
            }
        } else {
            forward(ids, outputRows: outputRows, editor: editor)
            position += t
        }
        logitRowCount = outputRows.count
    }

    /// llama.cpp's n_ubatch (its default, and the fixtures' setting): the most tokens one of its
    /// graph evaluations takes.
    static let llamaCppMicroBatch = 512

    private func forward(_ ids: [Int32], outputRows: [Int], editor: (any DownProjectionEditor)?) {
        let c = config, s = scratch
        let t = ids.count, p0 = position
        let d = c.hiddenSize, f = c.ffnSize, e = c.headDim, half = e / 2
        let qkvWidth = c.qkvRows, hE = c.headCount * e, kE = c.kvHeadCount * e
        let eps = c.rmsNormEps

        let exact = numerics == .llamaCppCompatible
        // In llama.cpp numerics every product uses the Int8BlockMatrix copies, with ggml's own
        // integer arithmetic and summation order: the model is chaotic at the bit level (one
        // changed rounding moves the logits by ~1), so only bit-identical products reproduce
        // llama.cpp's choices.
        let quantized = exact ? model.quantizedBlocks : []

        // Embedding × √D.
        for (r, id) in ids.enumerated() {
            if let q = model.tiedEmbedding {
                q.dequantize(rows: Int(id) ..< Int(id) + 1, into: s.hidden + r * d)
            } else {
                model.embedding.copyRow(Int(id), into: s.hidden + r * d)
            }
        }
        Kernels.scale(s.hidden, count: t * d, by: c.embeddingScale)

        // RoPE cos/sin of the T positions for both layer types, as ggml computes them.
        fillRope(p0: p0, rows: t, thetaScale: thetaScaleLocal, cos: s.cosLocal, sin: s.sinLocal)
        fillRope(p0: p0, rows: t, thetaScale: thetaScaleGlobal, cos: s.cosGlobal, sin: s.sinGlobal)

        var finalRows = outputRows, finalPositions = p0 ..< p0 + t
        for (l, b) in model.forwardBlocks.enumerated() {
            observer?.observeResidual(ActivationRows(layer: l, positions: p0 ..< p0 + t, width: d, base: s.hidden))
            let global = c.isGlobal(layer: l)
            let cosT = global ? s.cosGlobal : s.cosLocal, sinT = global ? s.sinGlobal : s.sinLocal

            // Attention.
            b.attentionNorm.withUnsafeBufferPointer { w in
                Kernels.rmsNorm(s.hidden, rows: t, width: d, stride: d, weight: w.baseAddress!, eps: eps, out: s.normed, outStride: d)
            }
            if exact {
                let ty = b.types
                linear(rows: t, input: s.normed, inputWidth: d, weight: model.blocks[l].qkv, quantized: quantized.isEmpty ? nil : quantized[l].qkv,
                       parts: [(hE, ty.query), (kE, ty.key), (kE, ty.value)], output: s.qkv)
            } else {
                product(b.qkv, dense: model.blocks[l].qkv, rows: t, input: s.normed, output: s.qkv, decoding: false)
            }
            for r in 0..<t {
                storeKeyValue(s.qkv + r * qkvWidth, block: b, layer: l, position: p0 + r,
                              cos: cosT + r * half, sin: sinT + r * half, exact: exact)
            }
            attention(layer: l, global: global, rows: t, p0: p0, exact: exact)
            // llama.cpp runs the rest of its last block only for the rows whose logits it
            // outputs; its products take other kernels for fewer rows, so llama.cpp numerics
            // do the same (for a contiguous ascending run of output rows, and only when no
            // observer or editor expects the whole block).
            var t = t, p0 = p0
            let prune = l == c.blockCount - 1 && observer == nil && editor?.layer != l && activeEdit?.layer != l
            if prune && outputRows.isEmpty {
                finalRows = []; finalPositions = p0 ..< p0
                continue
            }
            if prune, let lo = outputRows.first, let hi = outputRows.last, lo <= hi,
               outputRows.elementsEqual(lo...hi), hi - lo + 1 < t {
                if lo > 0 {
                    memmove(s.attn, s.attn + lo * hE, (hi - lo + 1) * hE * MemoryLayout<Float>.size)
                    memmove(s.hidden, s.hidden + lo * d, (hi - lo + 1) * d * MemoryLayout<Float>.size)
                }
                t = hi - lo + 1; p0 += lo
                finalRows = Array(0..<t)
                finalPositions = p0 ..< p0 + t
            }
            if exact {
                linear(rows: t, input: s.attn, inputWidth: hE, weight: model.blocks[l].attentionOutput,
                       quantized: quantized.isEmpty ? nil : quantized[l].attentionOutput,
                       parts: [(d, b.types.attentionOutput)], output: s.proj)
            } else {
                product(b.attentionOutput, dense: model.blocks[l].attentionOutput, rows: t, input: s.attn, output: s.proj,
                        decoding: false)
            }
            b.postAttentionNorm.withUnsafeBufferPointer { w in
                Kernels.rmsNorm(s.proj, rows: t, width: d, stride: d, weight: w.baseAddress!, eps: eps, out: s.proj, outStride: d)
            }
            Kernels.add(s.proj, into: s.hidden, count: t * d)

            // Feed-forward.
            b.ffnNorm.withUnsafeBufferPointer { w in
                Kernels.rmsNorm(s.hidden, rows: t, width: d, stride: d, weight: w.baseAddress!, eps: eps, out: s.normed, outStride: d)
            }
            if exact {
                linear(rows: t, input: s.normed, inputWidth: d, weight: model.blocks[l].gateUp,
                       quantized: quantized.isEmpty ? nil : quantized[l].gateUp,
                       parts: [(f, b.types.gate), (f, b.types.up)], output: s.gateUp)
                Kernels.geluGLUTable(s.gateUp, rows: t, ffn: f, out: s.act)
            } else {
                product(b.gateUp, dense: model.blocks[l].gateUp, rows: t, input: s.normed, output: s.gateUp, decoding: false)
                Kernels.geluGLU(s.gateUp, rows: t, ffn: f, out: s.act)
            }

            // The editing hook (FFNEdit.swift): observe x, let the editor choose, apply the edit.
            if observer != nil || editor?.layer == l {
                let x = ActivationRows(layer: l, positions: p0 ..< p0 + t, width: f, base: s.act, tokens: ids)
                observer?.observeFFNInput(x)
                if let editor, editor.layer == l {
                    activeEdit = editor.selectEdit(for: x).map { (l, $0) }
                }
            }
            if let active = activeEdit, active.layer == l {
                if !active.edit.replacesBaseOutput { down(b, layer: l, rows: t, exact: exact, quantized: quantized) }
                active.edit.apply(input: s.act, rows: t, ffnSize: f, output: s.proj, hiddenSize: d)
            } else {
                down(b, layer: l, rows: t, exact: exact, quantized: quantized)
            }
            b.postFFNNorm.withUnsafeBufferPointer { w in
                Kernels.rmsNorm(s.proj, rows: t, width: d, stride: d, weight: w.baseAddress!, eps: eps, out: s.proj, outStride: d)
            }
            Kernels.add(s.proj, into: s.hidden, count: t * d)
        }

        observer?.observeResidual(ActivationRows(layer: c.blockCount, positions: finalPositions, width: d, base: s.hidden))

        // Final norm of the requested rows, then logits against the tied embedding.
        model.outputNorm.withUnsafeBufferPointer { w in
            for (i, r) in finalRows.enumerated() {
                Kernels.rmsNorm(s.hidden + r * d, rows: 1, width: d, stride: d, weight: w.baseAddress!, eps: eps,
                                out: s.normed + i * d, outStride: d)
            }
        }
        if exact {
            // The tied output matrix is token_embd: its vec_dot_type rounding of the normed rows.
            let rounding = ActivationRounding(weightType: model.embeddingType)
            if let q = model.quantizedEmbedding, rounding == .q8_0, q.interleaved {
                q.matMulTQ8_0(s.normed, count: outputRows.count, into: logits, threads: model.threads)
                return
            }
            rounding.apply(s.normed, rows: outputRows.count, width: d)
        }
        if let q = model.tiedEmbedding {
            // A prompt's logits multiply the unrounded rows with the stored weights.
            if q.parts.count == 1, q.parts[0].type == .q8_0 {
                q.matMulTFloatQ8_0(s.normed, count: outputRows.count, into: logits, threads: model.threads)
            } else {
                model.embedding.matMulT(s.normed, count: outputRows.count, into: logits, threads: model.threads)
            }
            return
        }
        model.embedding.matMulT(s.normed, count: outputRows.count, into: logits, threads: model.threads)
    }

    /// output[t, W.rows] = input · Wᵀ in `.float32` numerics: a decode step multiplies the
    /// file's blocks with rounded inputs; a prompt uses the Float32 weights (dequantised per
    /// product, or the dense copy when the model holds one: the same bits either way).
    private func product(_ q: QuantizedMatrix?, dense: @autoclosure () -> Matrix, rows t: Int,
                         input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, decoding: Bool) {
        if let q, decoding || !model.hasDenseBlocks {
            if decoding {
                q.matMulT(input, count: t, into: output, threads: model.threads, scratch: quantScratch)
            } else {
                q.matMulTDequantized(input, count: t, into: output, threads: model.threads, scratch: quantScratch)
            }
            return
        }
        let w = dense()
        w.values.withUnsafeBufferPointer { p in
            BLAS.linear(rows: t, input: input, inputWidth: w.cols, weight: p.baseAddress!, outputWidth: w.rows,
                        output: output, threads: model.threads)
        }
    }

    /// proj ← act · W_downᵀ (the act buffer itself is left unrounded for editors and observers).
    @inline(__always)
    private func down(_ b: ForwardBlock, layer l: Int, rows t: Int, exact: Bool, quantized: [Int8BlockWeights]) {
        if exact {
            linear(rows: t, input: scratch.act, inputWidth: config.ffnSize, weight: model.blocks[l].down,
                   quantized: quantized.isEmpty ? nil : quantized[l].down,
                   parts: [(config.hiddenSize, b.types.down)], output: scratch.proj)
            return
        }
        product(b.down, dense: model.blocks[l].down, rows: t, input: scratch.act, output: scratch.proj, decoding: false)
    }

    /// output[t, W.rows] = round(input) · Wᵀ in llama.cpp numerics: `parts` lists consecutive
    /// row ranges of W (stacked GGUF tensors) with their storage types; the input is rounded to
    /// each part's vec_dot type (once per distinct rounding). The products use the quantised
    /// copy of W (ggml's kernels for its type and the row count) when there is one.
    private func linear(rows t: Int, input: UnsafePointer<Float>, inputWidth: Int, weight: Matrix,
                        quantized: Int8BlockMatrix?, parts: [(rows: Int, type: GGMLType)],
                        output: UnsafeMutablePointer<Float>) {
        let s = scratch
        let roundings = parts.map { ActivationRounding(weightType: $0.type) }
        if let first = roundings.first, roundings.allSatisfy({ $0 == first }) {
            if let q = quantized, first == .q8_0, q.interleaved {
                q.matMulTQ8_0(input, count: t, into: output, threads: model.threads)
                return
            }
            if let q = quantized, first == .q8_K, q.sourceType == .q4_K || q.sourceType == .q6_K {
                q.matMulTQ8_K(input, count: t, into: output, threads: model.threads)
                return
            }
            first.apply(input, rows: t, width: inputWidth, stride: inputWidth, out: s.rounded, outStride: inputWidth)
            if t == 1, let q = quantized {
                q.matMulT(s.rounded, count: 1, into: output, threads: model.threads)
            } else {
                weight.values.withUnsafeBufferPointer { w in
                    BLAS.linear(rows: t, input: s.rounded, inputWidth: inputWidth, weight: w.baseAddress!,
                                outputWidth: weight.rows, output: output, threads: model.threads)
                }
            }
            return
        }
        // Parts with different roundings: one product per part into its output columns.
        var row0 = 0
        weight.values.withUnsafeBufferPointer { w in
            for (i, part) in parts.enumerated() {
                roundings[i].apply(input, rows: t, width: inputWidth, stride: inputWidth, out: s.rounded, outStride: inputWidth)
                BLAS.gemmNT(m: t, n: part.rows, k: inputWidth, a: s.rounded, lda: inputWidth,
                            b: w.baseAddress! + row0 * inputWidth, ldb: inputWidth, c: output + row0, ldc: weight.rows)
                row0 += part.rows
            }
        }
    }

    /// One token's q | k | v row: per-head RMSNorm of q and k, RoPE at `position`, k and v into
    /// layer `l`'s cache at `position` (and llama.cpp's q scaling and F16 rounding when `exact`).
    private func storeKeyValue(_ row: UnsafeMutablePointer<Float>, block b: ForwardBlock, layer l: Int, position p: Int,
                               cos: UnsafePointer<Float>, sin: UnsafePointer<Float>, exact: Bool) {
        let c = config, e = c.headDim, hE = c.headCount * e, kE = c.kvHeadCount * e, half = e / 2
        b.queryNorm.withUnsafeBufferPointer { qn in
            Kernels.rmsNorm(row, rows: c.headCount, width: e, stride: e, weight: qn.baseAddress!, eps: c.rmsNormEps, out: row, outStride: e)
        }
        b.keyNorm.withUnsafeBufferPointer { kn in
            Kernels.rmsNorm(row + hE, rows: c.kvHeadCount, width: e, stride: e, weight: kn.baseAddress!, eps: c.rmsNormEps,
                            out: row + hE, outStride: e)
        }
        for h in 0..<(c.headCount + c.kvHeadCount) {
            if exact {
                Kernels.ropeFMA(row + h * e, half: half, cos: cos, sin: sin)
            } else {
                Kernels.rope(row + h * e, half: half, cos: cos, sin: sin)
            }
        }
        if exact {
            // llama.cpp: q scaled by 1/√E after RoPE, then converted to F16 for q·kᵀ against the
            // F16 key cache; k and v stored as F16.
            Kernels.scale(row, count: hE, by: c.queryScale)
            ActivationRounding.f16.apply(row, rows: 1, width: hE + 2 * kE)
        }
        (keyCache[l] + p * kE).update(from: row + hE, count: kE)
        (valueCache[l] + p * kE).update(from: row + hE + kE, count: kE)
        if exact {
            let vt = valueCacheT[l]
            for i in 0..<kE { vt[i * capacity + p] = row[hE + kE + i] }
        }
    }

    /// ggml_rope_cache_init with ext_factor 0, freq_scale 1, mscale 1: θ_i = p · thetaScale^i,
    /// accumulated in Float32.
    private func fillRope(p0: Int, rows: Int, thetaScale: Float, cos: UnsafeMutablePointer<Float>, sin: UnsafeMutablePointer<Float>) {
        let half = config.headDim / 2
        for r in 0..<rows {
            var theta = Float(p0 + r)
            for i in 0..<half {
                cos[r * half + i] = Foundation.cos(theta)
                sin[r * half + i] = Foundation.sin(theta)
                theta *= thetaScale
            }
        }
    }

    /// attn[t, h·E ..< (h+1)·E] = softmax(q_{t,h} · K_gᵀ · scale, masked) · V_g for the T rows of
    /// this call; g = h / (H/K). Keys visible to position p: 0…p (global) or p−W+1…p (local).
    /// `exact` (llama.cpp numerics) hands over to `attentionGGML`.
    private func attention(layer l: Int, global: Bool, rows t: Int, p0: Int, exact: Bool) {
        if exact { attentionGGML(layer: l, global: global, rows: t, p0: p0); return }
        let c = config, s = scratch
        let e = c.headDim, hE = c.headCount * e, kE = c.kvHeadCount * e, qkvWidth = c.qkvRows
        let group = c.headCount / c.kvHeadCount
        let window = c.slidingWindow
        let keys = keyCache[l], values = valueCache[l]
        let scale = c.queryScale

        if t == 1 {
            decodeAttention(layer: l, global: global, position: p0, query: s.qkv, out: s.attn)
            return
        }

        // Heads are independent: spread them over the threads, each with its own score tile.
        let qkv = SendablePointer(s.qkv), attn = SendablePointer(s.attn), scoreBase = SendablePointer(s.scores)
        let k = SendablePointer(keys), v = SendablePointer(values), capacity = capacity
        Parallel.forEach(c.headCount, threads: model.threads) { h in
            let g = h / group
            let scores = scoreBase.pointer + h * Self.attentionTile * capacity
            var t0 = 0
            while t0 < t {
                let t1 = min(t, t0 + Self.attentionTile), m = t1 - t0
                let kLo = global ? 0 : max(0, p0 + t0 - window + 1)
                let kHi = p0 + t1
                let n = kHi - kLo
                BLAS.gemmNT(m: m, n: n, k: e, alpha: scale, a: qkv.pointer + t0 * qkvWidth + h * e, lda: qkvWidth,
                            b: k.pointer + kLo * kE + g * e, ldb: kE, c: scores, ldc: n)
                for r in 0..<m {
                    let p = p0 + t0 + r
                    let first = (global ? 0 : max(0, p - window + 1)) - kLo, last = p - kLo
                    let row = scores + r * n
                    if first > 0 { row.update(repeating: 0, count: first) }
                    Kernels.softmax(row + first, count: last - first + 1)
                    if last + 1 < n { (row + last + 1).update(repeating: 0, count: n - last - 1) }
                }
                BLAS.gemmNN(m: m, n: e, k: n, a: scores, lda: n,
                            b: v.pointer + kLo * kE + g * e, ldb: kE, c: attn.pointer + t0 * hE + h * e, ldc: hE)
                t0 = t1
            }
        }
    }
}

extension GemmaSession {
    /// Appends `tokens[i]` to `sessions[i]` for every i in one batched step (`.float32`
    /// numerics): each product reads the weights once for all rows (the quantised decode
    /// kernels, inputs rounded to Q8 blocks), while each row keeps its own position, KV cache,
    /// observer and active edit (the edit's delta is applied to its row only). Every kernel
    /// computes a row on its own, in the same order whatever the batch holds, so a row's logits
    /// are the same bits with or without neighbours, and equal to `decodeInPlace` alone (which
    /// is this with one session). Afterwards each session's `withLastLogits` holds its logits.
    public static func decode(_ sessions: [GemmaSession], tokens: [Int32]) throws {
        guard sessions.count == tokens.count else {
            throw GemmaError.invalidArgument("\(sessions.count) sessions for \(tokens.count) tokens")
        }
        guard let lead = sessions.first else { return }
        if sessions.count > 1, Set(sessions.map(ObjectIdentifier.init)).count < sessions.count {
            throw GemmaError.invalidArgument("a session appears twice in a batch")
        }
        for (s, id) in zip(sessions, tokens) {
            guard s.model === lead.model else { throw GemmaError.invalidArgument("sessions of one batch share a model") }
            guard s.numerics == .float32 else { throw GemmaError.invalidArgument("batched decoding needs .float32 numerics") }
            guard s.position + 1 <= s.capacity else { throw GemmaError.contextFull(capacity: s.capacity) }
            guard id >= 0, Int(id) < s.config.vocabSize else { throw GemmaError.invalidToken(id) }
        }
        lead.decodeRows(sessions, tokens: tokens)
    }

    /// The batched step, in this (the first) session's scratch memory.
    private func decodeRows(_ sessions: [GemmaSession], tokens: [Int32]) {
        let n = sessions.count, c = config
        if scratch.rows < n { scratch = Scratch(config: c, rows: n, capacity: capacity) }
        let s = scratch
        let d = c.hiddenSize, f = c.ffnSize, e = c.headDim, half = e / 2, eps = c.rmsNormEps
        let qkvWidth = c.qkvRows, hE = c.headCount * e
        for (r, id) in tokens.enumerated() {
            if let q = model.tiedEmbedding {
                q.dequantize(rows: Int(id) ..< Int(id) + 1, into: s.hidden + r * d)
            } else {
                model.embedding.copyRow(Int(id), into: s.hidden + r * d)
            }
            fillRope(p0: sessions[r].position, rows: 1, thetaScale: thetaScaleLocal, cos: s.cosLocal + r * half, sin: s.sinLocal + r * half)
            fillRope(p0: sessions[r].position, rows: 1, thetaScale: thetaScaleGlobal, cos: s.cosGlobal + r * half, sin: s.sinGlobal + r * half)
        }
        Kernels.scale(s.hidden, count: n * d, by: c.embeddingScale)
        func observeResidual(_ layer: Int) {
            for (r, session) in sessions.enumerated() {
                session.observer?.observeResidual(ActivationRows(layer: layer, positions: session.position ..< session.position + 1,
                                                                 width: d, base: s.hidden + r * d))
            }
        }

        for (l, b) in model.forwardBlocks.enumerated() {
            observeResidual(l)
            let global = c.isGlobal(layer: l)
            let cosT = global ? s.cosGlobal : s.cosLocal, sinT = global ? s.sinGlobal : s.sinLocal
            b.attentionNorm.withUnsafeBufferPointer { w in
                Kernels.rmsNorm(s.hidden, rows: n, width: d, stride: d, weight: w.baseAddress!, eps: eps, out: s.normed, outStride: d)
            }
            product(b.qkv, dense: model.blocks[l].qkv, rows: n, input: s.normed, output: s.qkv, decoding: true)
            for (r, session) in sessions.enumerated() {
                session.storeKeyValue(s.qkv + r * qkvWidth, block: b, layer: l, position: session.position,
                                      cos: cosT + r * half, sin: sinT + r * half, exact: false)
            }
            if n == 1 {
                decodeAttention(layer: l, global: global, position: position, query: s.qkv, out: s.attn)
            } else {
                // Every (sequence, head) pair of the batch in one parallel job, each in its own
                // session's score buffer: the same arithmetic per head as alone.
                let heads = c.headCount, qkv = SendablePointer(s.qkv), attn = SendablePointer(s.attn)
                nonisolated(unsafe) let sessions = sessions  // each job touches its own session's scores
                Parallel.forEach(n * heads, threads: model.threads) { job in
                    let r = job / heads, session = sessions[r]
                    session.attendHead(job % heads, layer: l, global: global, position: session.position,
                                       query: qkv.pointer + r * qkvWidth, out: attn.pointer + r * hE)
                }
            }
            product(b.attentionOutput, dense: model.blocks[l].attentionOutput, rows: n, input: s.attn, output: s.proj, decoding: true)
            b.postAttentionNorm.withUnsafeBufferPointer { w in
                Kernels.rmsNorm(s.proj, rows: n, width: d, stride: d, weight: w.baseAddress!, eps: eps, out: s.proj, outStride: d)
            }
            Kernels.add(s.proj, into: s.hidden, count: n * d)

            b.ffnNorm.withUnsafeBufferPointer { w in
                Kernels.rmsNorm(s.hidden, rows: n, width: d, stride: d, weight: w.baseAddress!, eps: eps, out: s.normed, outStride: d)
            }
            product(b.gateUp, dense: model.blocks[l].gateUp, rows: n, input: s.normed, output: s.gateUp, decoding: true)
            Kernels.geluGLU(s.gateUp, rows: n, ffn: f, out: s.act)
            for (r, session) in sessions.enumerated() where session.observer != nil {
                session.observer?.observeFFNInput(ActivationRows(layer: l, positions: session.position ..< session.position + 1,
                                                                 width: f, base: s.act + r * f, tokens: [tokens[r]]))
            }
            // The base product for every row (a replacing edit overwrites its row afterwards).
            product(b.down, dense: model.blocks[l].down, rows: n, input: s.act, output: s.proj, decoding: true)
            for (r, session) in sessions.enumerated() {
                if let active = session.activeEdit, active.layer == l {
                    active.edit.apply(input: s.act + r * f, rows: 1, ffnSize: f, output: s.proj + r * d, hiddenSize: d)
                }
            }
            b.postFFNNorm.withUnsafeBufferPointer { w in
                Kernels.rmsNorm(s.proj, rows: n, width: d, stride: d, weight: w.baseAddress!, eps: eps, out: s.proj, outStride: d)
            }
            Kernels.add(s.proj, into: s.hidden, count: n * d)
        }
        observeResidual(c.blockCount)

        model.outputNorm.withUnsafeBufferPointer { w in
            Kernels.rmsNorm(s.hidden, rows: n, width: d, stride: d, weight: w.baseAddress!, eps: eps, out: s.normed, outStride: d)
        }
        let v = c.vocabSize
        let out = batchLogits(rows: n)
        if let q = model.tiedEmbedding {
            q.matMulT(s.normed, count: n, into: out, threads: model.threads, scratch: quantScratch)
        } else {
            model.embedding.matMulT(s.normed, count: n, into: out, threads: model.threads)
        }
        for (r, session) in sessions.enumerated() {
            if session !== self || n > 1 { session.logits.update(from: out + r * v, count: v) }
            session.position += 1
            session.logitRowCount = 1
        }
    }

    /// [rows, V] logits of a batched step: the session's own buffer for one row, a batch buffer
    /// (kept, grown on demand) for more.
    private func batchLogits(rows: Int) -> UnsafeMutablePointer<Float> {
        if rows == 1 { return logits }
        if batchLogitRows < rows {
            batchLogitBuffer?.deallocate()
            batchLogitBuffer = .allocate(capacity: rows * config.vocabSize)
            batchLogitRows = rows
        }
        return batchLogitBuffer!
    }
}

extension GemmaSession {
    /// One token's attention at `position` (its k and v already cached): one query row per head
    /// against the cached keys, the heads over the threads. `query` is its q | k | v row.
    fileprivate func decodeAttention(layer l: Int, global: Bool, position p: Int, query: UnsafePointer<Float>,
                                     out: UnsafeMutablePointer<Float>) {
        let n = p - (global ? 0 : max(0, p - config.slidingWindow + 1)) + 1
        let q = SendablePointer(query), o = SendablePointer(out)
        nonisolated(unsafe) let session = self  // each head writes its own rows of the score buffer
        Parallel.forEach(config.headCount, threads: n >= 64 ? model.threads : 1) { h in
            session.attendHead(h, layer: l, global: global, position: p, query: q.pointer, out: o.pointer)
        }
    }

    /// Head h of one token's attention (see `decodeAttention`), in this session's score buffer.
    fileprivate func attendHead(_ h: Int, layer l: Int, global: Bool, position p: Int, query: UnsafePointer<Float>,
                                out: UnsafeMutablePointer<Float>) {
        let c = config, e = c.headDim, kE = c.kvHeadCount * e, g = h / (c.headCount / c.kvHeadCount)
        let lo = global ? 0 : max(0, p - c.slidingWindow + 1)
        let n = p - lo + 1
        let scores = scratch.scores + h * Self.attentionTile * capacity
        BLAS.gemv(m: n, n: e, alpha: c.queryScale, a: keyCacheBase(l) + lo * kE + g * e, lda: kE, x: query + h * e, y: scores)
        Kernels.softmax(scores, count: n)
        BLAS.gemvT(m: n, n: e, a: valueCache[l] + lo * kE + g * e, lda: kE, x: scores, y: out + h * e)
    }

    /// llama.cpp's attention without flash attention, operation for operation: scores q16·k16,
    /// masked softmax (ggml's soft_max), probabilities to F16, then each output value as a dot
    /// of the transposed F16 V with them; the dots in tinyBLAS's 16-lane order for several query
    /// rows, in `vec_dot_f16`'s order for one. KV cells are positions here, so the 16-lane
    /// groups are aligned to multiples of 16 positions as there.
    fileprivate func attentionGGML(layer l: Int, global: Bool, rows t: Int, p0: Int) {
        let c = config, s = scratch
        let e = c.headDim, hE = c.headCount * e, kE = c.kvHeadCount * e, qkvWidth = c.qkvRows
        let group = c.headCount / c.kvHeadCount
        let keys = SendablePointer(keyCacheBase(l)), valuesT = SendablePointer(valueCacheTBase(l))
        let qkv = SendablePointer(s.qkv), attn = SendablePointer(s.attn), scores = SendablePointer(s.scores)
        let capacity = capacity, heads = c.headCount, window = c.slidingWindow
        let local = !(c.isGlobal(layer: l) || global)
        // (row, head) pairs are independent; each worker uses its own row of the score buffer.
        let parts = min(model.threads, GemmaSession.attentionTile, t * heads)
        let work: @Sendable (Int) -> Void = { part in
            let sc = scores.pointer + part * capacity
            var job = part
            while job < t * heads {
                let r = job / heads, h = job % heads
                job += parts
                let p = p0 + r
                let lo = local ? max(0, p - window + 1) : 0
                let n = p - lo + 1
                let g = h / group
                let q = qkv.pointer + r * qkvWidth + h * e
                if t == 1 {
                    // One token: ggml's own vec_dot_f16 (llamafile's tinyBLAS declines n = 1).
                    for j in 0..<n { sc[j] = Kernels.dotF16GGML(q, keys.pointer + (lo + j) * kE + g * e, offset: 0, count: e) }
                } else {
                    for j in 0..<n { sc[j] = Kernels.dotTinyBLAS(q, keys.pointer + (lo + j) * kE + g * e, count: e) }
                }
                Kernels.softmaxGGML(sc, count: n, phase: lo % 16)
                ActivationRounding.f16.apply(sc, rows: 1, width: n)
                let out = attn.pointer + r * hE + h * e
                for d in 0..<e {
                    if t == 1 {
                        out[d] = Kernels.dotF16GGML(valuesT.pointer + (g * e + d) * capacity + lo, sc, offset: lo, count: n)
                    } else {
                        out[d] = Kernels.dotTinyBLAS(valuesT.pointer + (g * e + d) * capacity + lo, sc, count: n, phase: lo % 16)
                    }
                }
            }
        }
        if parts <= 1 { work(0) } else { DispatchQueue.concurrentPerform(iterations: parts, execute: work) }
    }
}

/// Per-session scratch buffers for up to `rows` tokens per forward call.
private final class Scratch {
    let rows: Int
    /// [rows, D] residual stream h.
    let hidden: UnsafeMutablePointer<Float>
    /// [rows, D] normalised h (attention / FFN input; first rows reused for the final norm).
    let normed: UnsafeMutablePointer<Float>
    /// [rows, H·E + 2·K·E] q | k | v.
    let qkv: UnsafeMutablePointer<Float>
    /// [rows, H·E] attention output before W_o.
    let attn: UnsafeMutablePointer<Float>
    /// [rows, D] output of W_o or W_down.
    let proj: UnsafeMutablePointer<Float>
    /// [rows, 2F] gate | up.
    let gateUp: UnsafeMutablePointer<Float>
    /// [rows, F] x = gelu(gate) ⊙ up.
    let act: UnsafeMutablePointer<Float>
    /// [max(tile · H, H/K), capacity] attention scores (a tile per query head).
    let scores: UnsafeMutablePointer<Float>
    /// [rows, max(D, F, H·E)] a product's input rounded as llama.cpp rounds it.
    let rounded: UnsafeMutablePointer<Float>
    /// [rows, E/2] RoPE tables per layer type.
    let cosLocal, sinLocal, cosGlobal, sinGlobal: UnsafeMutablePointer<Float>
    private let all: UnsafeMutablePointer<Float>

    init(config c: GemmaConfig, rows: Int, capacity: Int) {
        self.rows = rows
        let d = c.hiddenSize, f = c.ffnSize, e = c.headDim
        let sizes = [rows * d, rows * d, rows * c.qkvRows, rows * c.headCount * e, rows * d,
                     rows * 2 * f, rows * f,
                     max(GemmaSession.attentionTile * c.headCount, c.headCount / c.kvHeadCount) * capacity,
                     rows * e / 2, rows * e / 2, rows * e / 2, rows * e / 2,
                     rows * max(d, f, c.headCount * e)]
        // Each buffer starts on a 64-byte boundary.
        let padded = sizes.map { ($0 + 15) / 16 * 16 }
        let total = padded.reduce(0, +)
        all = .allocate(capacity: total)
        all.initialize(repeating: 0, count: total)
        var offsets: [Int] = []
        var o = 0
        for p in padded { offsets.append(o); o += p }
        hidden = all + offsets[0]; normed = all + offsets[1]; qkv = all + offsets[2]; attn = all + offsets[3]
        proj = all + offsets[4]; gateUp = all + offsets[5]; act = all + offsets[6]; scores = all + offsets[7]
        cosLocal = all + offsets[8]; sinLocal = all + offsets[9]; cosGlobal = all + offsets[10]; sinGlobal = all + offsets[11]
        rounded = all + offsets[12]
    }

    deinit { all.deallocate() }
}
