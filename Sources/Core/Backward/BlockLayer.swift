// One Gemma 3 block as a training forward that saves exactly what its backward needs, and that
// backward (input gradient only: block weights are frozen). Same maths as GemmaSession's
// forward (see the header of GemmaSession.swift), written as explicit layer pairs:
//   a = RMSNorm(h0)·attn_norm;  q,k,v = a·W_qkvᵀ;  q,k ← RoPE(RMSNorm_head(·))
//   o = Attention(q,k,v);  h1 = h0 + RMSNorm(o·W_oᵀ)·post_attention_norm
//   b = RMSNorm(h1)·ffn_norm;  x = gelu(b·W_gateᵀ) ⊙ (b·W_upᵀ);  y = x·W_downᵀ (or the expert)
//   h2 = h1 + RMSNorm(y)·post_ffw_norm
// The forward is split at y so that the edited block can take y from the expert.

import Foundation

/// Activations of one block saved by `forwardToFFNInput`/`finish` for `backward`. Row-major.
public struct BlockActivations {
    public let rows: Int
    /// h0 [T, D] input residual, s [T] of attn_norm.
    var h0: [Float] = [], sAttn: [Float] = []
    /// a [T, D] attention input.
    var a: [Float] = []
    /// Raw q | k | v [T, H·E + 2K·E] before the head norms; s [T·H] and [T·K] of the head norms.
    var qkvRaw: [Float] = [], sQ: [Float] = [], sK: [Float] = []
    /// q, k after norm and RoPE, v: [T, H·E], [T, K·E], [T, K·E].
    var q: [Float] = [], k: [Float] = [], v: [Float] = []
    /// Attention probabilities [H, T, T], attention output [T, H·E].
    var probs: [Float] = [], att: [Float] = []
    /// o·W_oᵀ [T, D] and its post-attention-norm s [T].
    var o: [Float] = [], sO: [Float] = []
    /// h1 [T, D] residual after attention, s [T] of ffn_norm, b [T, D].
    public internal(set) var h1: [Float] = []
    var sFFN: [Float] = [], b: [Float] = []
    /// gu [T, 2F] gate | up, x [T, F] down-projection input.
    var gu: [Float] = []
    public internal(set) var x: [Float] = []
    /// y [T, D] down-projection output, s [T] of post_ffw_norm.
    var y: [Float] = [], sY: [Float] = []
}

public enum BlockLayer {
    /// Runs block `l` from h0 [T, D] up to x [T, F]; the returned activations hold h1 and x.
    public static func forwardToFFNInput(_ h0: [Float], rows t: Int, layer l: Int, model: GemmaModel,
                                         rope: (cos: [Float], sin: [Float])) -> BlockActivations {
        let c = model.config, w = model.blocks[l]
        let d = c.hiddenSize, f = c.ffnSize, e = c.headDim
        let hE = c.headCount * e, kE = c.kvHeadCount * e, qkvW = c.qkvRows, eps = c.rmsNormEps
        var s = BlockActivations(rows: t)
        s.h0 = h0
        (s.a, s.sAttn) = RMSNormLayer.forward(h0, rows: t, weight: w.attentionNorm, eps: eps)
        s.qkvRaw = LinearLayer.forward(s.a, rows: t, weight: w.qkv, threads: model.threads)
        // Per-head norms, then RoPE, into dense q, k, v.
        var qkv = s.qkvRaw
        s.sQ = [Float](repeating: 0, count: t * c.headCount)
        s.sK = [Float](repeating: 0, count: t * c.kvHeadCount)
        qkv.withUnsafeMutableBufferPointer { p in
            w.queryNorm.withUnsafeBufferPointer { qn in w.keyNorm.withUnsafeBufferPointer { kn in
                for r in 0..<t {
                    let row = p.baseAddress! + r * qkvW
                    let sq = RMSNormLayer.forward(row, rows: c.headCount, width: e, weight: qn.baseAddress!, eps: eps, out: row)
                    let sk = RMSNormLayer.forward(row + hE, rows: c.kvHeadCount, width: e, weight: kn.baseAddress!, eps: eps, out: row + hE)
                    for h in 0..<c.headCount { s.sQ[r * c.headCount + h] = sq[h] }
                    for h in 0..<c.kvHeadCount { s.sK[r * c.kvHeadCount + h] = sk[h] }
                }
            } }
            rope.cos.withUnsafeBufferPointer { cp in rope.sin.withUnsafeBufferPointer { sp in
                RoPELayer.forward(p.baseAddress!, rows: t, heads: c.headCount + c.kvHeadCount, headDim: e, stride: qkvW,
                                  cos: cp.baseAddress!, sin: sp.baseAddress!)
            } }
        }
        s.q = [Float](repeating: 0, count: t * hE); s.k = [Float](repeating: 0, count: t * kE); s.v = s.k
        for r in 0..<t {
            for i in 0..<hE { s.q[r * hE + i] = qkv[r * qkvW + i] }
            for i in 0..<kE { s.k[r * kE + i] = qkv[r * qkvW + hE + i]; s.v[r * kE + i] = qkv[r * qkvW + hE + kE + i] }
        }
        let shape = attentionShape(c, layer: l, rows: t)
        s.att = [Float](repeating: 0, count: t * hE)
        s.probs = s.q.withUnsafeBufferPointer { q in s.k.withUnsafeBufferPointer { k in s.v.withUnsafeBufferPointer { v in
            s.att.withUnsafeMutableBufferPointer { o in
                AttentionLayer.forward(q: q.baseAddress!, qStride: hE, k: k.baseAddress!, kStride: kE, v: v.baseAddress!, vStride: kE,
                                       shape: shape, out: o.baseAddress!)
            } } } }
        s.o = LinearLayer.forward(s.att, rows: t, weight: w.attentionOutput, threads: model.threads)
        let po: [Float]
        (po, s.sO) = RMSNormLayer.forward(s.o, rows: t, weight: w.postAttentionNorm, eps: eps)
        s.h1 = h0
        for i in 0..<(t * d) { s.h1[i] += po[i] }
        (s.b, s.sFFN) = RMSNormLayer.forward(s.h1, rows: t, weight: w.ffnNorm, eps: eps)
        s.gu = LinearLayer.forward(s.b, rows: t, weight: w.gateUp, threads: model.threads)
        s.x = [Float](repeating: 0, count: t * f)
        s.gu.withUnsafeBufferPointer { g in s.x.withUnsafeMutableBufferPointer { x in
            GeluGLULayer.forward(g.baseAddress!, rows: t, ffn: f, out: x.baseAddress!)
        } }
        return s
    }

    /// h2 [T, D] = h1 + RMSNorm(y)·post_ffw_norm, saving y.
    public static func finish(_ s: inout BlockActivations, downOutput y: [Float], layer l: Int, model: GemmaModel) -> [Float] {
        let w = model.blocks[l]
        s.y = y
        let py: [Float]
        (py, s.sY) = RMSNormLayer.forward(y, rows: s.rows, weight: w.postFFNNorm, eps: model.config.rmsNormEps)
        var h2 = s.h1
        for i in h2.indices { h2[i] += py[i] }
        return h2
    }

    /// The whole block with the base W_down: h0 → h2.
    public static func forward(_ h0: [Float], rows t: Int, layer l: Int, model: GemmaModel,
                               rope: (cos: [Float], sin: [Float])) -> (h2: [Float], saved: BlockActivations) {
        var s = forwardToFFNInput(h0, rows: t, layer: l, model: model, rope: rope)
        let y = LinearLayer.forward(s.x, rows: t, weight: model.blocks[l].down, threads: model.threads)
        let h2 = finish(&s, downOutput: y, layer: l, model: model)
        return (h2, s)
    }

    /// dy [T, D] of the down-projection output from dh2 [T, D] (through post_ffw_norm).
    public static func backwardToDownOutput(_ dh2: [Float], saved s: BlockActivations, layer l: Int, model: GemmaModel) -> [Float] {
        RMSNormLayer.backward(dOut: dh2, input: s.y, scales: s.sY, weight: model.blocks[l].postFFNNorm)
    }

    /// dh0 [T, D] from dh2 [T, D] (the residual path) and dy [T, D] (the down-projection output path).
    public static func backward(dh2: [Float], dDownOutput dy: [Float], saved s: BlockActivations, layer l: Int,
                                model: GemmaModel, rope: (cos: [Float], sin: [Float])) -> [Float] {
        let c = model.config, w = model.blocks[l], t = s.rows
        let d = c.hiddenSize, f = c.ffnSize, e = c.headDim
        let hE = c.headCount * e, kE = c.kvHeadCount * e, qkvW = c.qkvRows
        // FFN: dx = dy·W_down, dgu, db, then through ffn_norm into dh1.
        let dx = inputGradient(dy, rows: t, weight: w.down, threads: model.threads)
        var dgu = [Float](repeating: 0, count: t * 2 * f)
        dx.withUnsafeBufferPointer { g in s.gu.withUnsafeBufferPointer { gu in dgu.withUnsafeMutableBufferPointer { o in
            GeluGLULayer.backward(dOut: g.baseAddress!, input: gu.baseAddress!, rows: t, ffn: f, dInput: o.baseAddress!)
        } } }
        let db = inputGradient(dgu, rows: t, weight: w.gateUp, threads: model.threads)
        var dh1 = dh2
        let dh1FFN = RMSNormLayer.backward(dOut: db, input: s.h1, scales: s.sFFN, weight: w.ffnNorm)
        for i in 0..<(t * d) { dh1[i] += dh1FFN[i] }
        // Attention: through post_attention_norm, W_o, attention, RoPE, head norms, W_qkv, attn_norm.
        let dO = RMSNormLayer.backward(dOut: dh1, input: s.o, scales: s.sO, weight: w.postAttentionNorm)
        let dAtt = inputGradient(dO, rows: t, weight: w.attentionOutput, threads: model.threads)
        var dq = [Float](repeating: 0, count: t * hE), dk = [Float](repeating: 0, count: t * kE), dv = dk
        let shape = attentionShape(c, layer: l, rows: t)
        dAtt.withUnsafeBufferPointer { g in s.q.withUnsafeBufferPointer { q in s.k.withUnsafeBufferPointer { k in
            s.v.withUnsafeBufferPointer { v in dq.withUnsafeMutableBufferPointer { dqp in dk.withUnsafeMutableBufferPointer { dkp in
                dv.withUnsafeMutableBufferPointer { dvp in
                    AttentionLayer.backward(dOut: g.baseAddress!, q: q.baseAddress!, qStride: hE, k: k.baseAddress!, kStride: kE,
                                            v: v.baseAddress!, vStride: kE, probs: s.probs, shape: shape,
                                            dq: dqp.baseAddress!, dk: dkp.baseAddress!, dv: dvp.baseAddress!)
                } } } } } } }
        // Reassemble [T, qkvW] gradients, undo RoPE, then the head norms (in place, row by row).
        var dqkv = [Float](repeating: 0, count: t * qkvW)
        for r in 0..<t {
            for i in 0..<hE { dqkv[r * qkvW + i] = dq[r * hE + i] }
            for i in 0..<kE { dqkv[r * qkvW + hE + i] = dk[r * kE + i]; dqkv[r * qkvW + hE + kE + i] = dv[r * kE + i] }
        }
        dqkv.withUnsafeMutableBufferPointer { g in
            rope.cos.withUnsafeBufferPointer { cp in rope.sin.withUnsafeBufferPointer { sp in
                RoPELayer.backward(g.baseAddress!, rows: t, heads: c.headCount + c.kvHeadCount, headDim: e, stride: qkvW,
                                   cos: cp.baseAddress!, sin: sp.baseAddress!)
            } }
            s.qkvRaw.withUnsafeBufferPointer { raw in w.queryNorm.withUnsafeBufferPointer { qn in w.keyNorm.withUnsafeBufferPointer { kn in
                for r in 0..<t {
                    let gr = g.baseAddress! + r * qkvW, xr = raw.baseAddress! + r * qkvW
                    let sq = Array(s.sQ[r * c.headCount ..< (r + 1) * c.headCount])
                    let sk = Array(s.sK[r * c.kvHeadCount ..< (r + 1) * c.kvHeadCount])
                    RMSNormLayer.backward(dOut: gr, input: xr, scales: sq, rows: c.headCount, width: e, weight: qn.baseAddress!,
                                          dInput: gr, accumulate: false)
                    RMSNormLayer.backward(dOut: gr + hE, input: xr + hE, scales: sk, rows: c.kvHeadCount, width: e,
                                          weight: kn.baseAddress!, dInput: gr + hE, accumulate: false)
                }
            } } }
        }
        let da = inputGradient(dqkv, rows: t, weight: w.qkv, threads: model.threads)
        var dh0 = dh1
        let dh0Attn = RMSNormLayer.backward(dOut: da, input: s.h0, scales: s.sAttn, weight: w.attentionNorm)
        for i in 0..<(t * d) { dh0[i] += dh0Attn[i] }
        return dh0
    }

    static func attentionShape(_ c: GemmaConfig, layer l: Int, rows t: Int) -> AttentionLayer.Shape {
        AttentionLayer.Shape(rows: t, heads: c.headCount, kvHeads: c.kvHeadCount, headDim: c.headDim,
                             window: c.isGlobal(layer: l) ? nil : c.slidingWindow, scale: c.queryScale)
    }

    /// dx [T, in] = dy [T, out] · W [out, in].
    static func inputGradient(_ dy: [Float], rows t: Int, weight: Matrix, threads: Int) -> [Float] {
        var dx = [Float](repeating: 0, count: t * weight.cols)
        dy.withUnsafeBufferPointer { g in weight.values.withUnsafeBufferPointer { wp in dx.withUnsafeMutableBufferPointer { d in
            LinearLayer.backwardInput(dOut: g.baseAddress!, rows: t, inputWidth: weight.cols, weight: wp.baseAddress!,
                                      outputWidth: weight.rows, dInput: d.baseAddress!, threads: threads)
        } } }
        return dx
    }
}
