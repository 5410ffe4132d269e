// The training forward and backward of Gemma 3 from layer L's FFN down-projection output y to
// the loss (mean cross-entropy of target tokens at the N rows that predict them). Blocks below L
// and block L up to its FFN input x do not depend on the expert: they run once, at init, and
// only h1 (block L's residual after attention) and x are kept. Each step then runs
//   h = h1 + RMSNorm(y)·post_ffw_norm_L → blocks L+1 … N−1 → final norm → logits at N rows
// and back. Block weights are frozen: only dy [T, D] is returned; the expert turns it into its
// parameter gradients (SCEN/Expert.swift).

import Foundation

public final class DownProjectionTrainingStack {
    public let model: GemmaModel
    /// L: the edited block.
    public let layer: Int
    /// The sequence (BOS, prompt, target) [T].
    public let tokens: [Int32]
    public let targets: [TargetToken]
    public var rows: Int { tokens.count }
    /// x [T, F]: layer L's down-projection input (frozen).
    public let ffnInput: [Float]
    /// h1 [T, D]: layer L's residual stream after attention (frozen).
    public let residualAfterAttention: [Float]
    /// RoPE tables [T, E/2] of local and global layers.
    let ropeLocal: (cos: [Float], sin: [Float])
    let ropeGlobal: (cos: [Float], sin: [Float])
    /// Block L's saved activations up to x (for the post_ffw_norm backward).
    private var edited: BlockActivations

    /// Runs the frozen part (blocks 0 … L−1 and block L up to x) once.
    public init(model: GemmaModel, layer: Int, tokens: [Int32], targets: [TargetToken]) throws {
        let c = model.config
        guard layer >= 0 && layer < c.blockCount else { throw GemmaError.badConfig("edit layer \(layer) out of range") }
        guard !tokens.isEmpty else { throw GemmaError.emptyInput }
        for id in tokens where id < 0 || Int(id) >= c.vocabSize { throw GemmaError.invalidToken(id) }
        for t in targets where t.row < 0 || t.row >= tokens.count || t.token < 0 || Int(t.token) >= c.vocabSize {
            throw GemmaError.badConfig("target \(t) outside the sequence or vocabulary")
        }
        self.model = model
        self.layer = layer
        self.tokens = tokens
        self.targets = targets
        let t = tokens.count, d = c.hiddenSize
        ropeLocal = RoPELayer.tables(rows: t, headDim: c.headDim, base: c.ropeBaseLocal)
        ropeGlobal = RoPELayer.tables(rows: t, headDim: c.headDim, base: c.ropeBaseGlobal)
        var h = [Float](repeating: 0, count: t * d)
        h.withUnsafeMutableBufferPointer { p in
            for (r, id) in tokens.enumerated() { model.embedding.copyRow(Int(id), into: p.baseAddress! + r * d) }
            Kernels.scale(p.baseAddress!, count: t * d, by: c.embeddingScale)
        }
        let rl = ropeLocal, rg = ropeGlobal
        for l in 0..<layer {
            h = BlockLayer.forward(h, rows: t, layer: l, model: model, rope: c.isGlobal(layer: l) ? rg : rl).h2
        }
        edited = BlockLayer.forwardToFFNInput(h, rows: t, layer: layer, model: model, rope: c.isGlobal(layer: layer) ? rg : rl)
        ffnInput = edited.x
        residualAfterAttention = edited.h1
    }

    func rope(_ l: Int) -> (cos: [Float], sin: [Float]) { model.config.isGlobal(layer: l) ? ropeGlobal : ropeLocal }

    /// y [T, D] of the base W_down (the unedited model).
    public func baseDownOutput() -> [Float] {
        LinearLayer.forward(ffnInput, rows: rows, weight: model.blocks[layer].down, threads: model.threads)
    }

    /// The loss with down-projection output y [T, D] at layer L (over the shortlist's tokens only, if given).
    public func loss(downOutput y: [Float], shortlist: TiedOutputCrossEntropy.Shortlist? = nil) -> TiedOutputCrossEntropy.Result {
        var s = edited
        var h = BlockLayer.finish(&s, downOutput: y, layer: layer, model: model)
        for l in (layer + 1)..<model.config.blockCount {
            h = BlockLayer.forward(h, rows: rows, layer: l, model: model, rope: rope(l)).h2
        }
        return h.withUnsafeBufferPointer { hp in
            TiedOutputCrossEntropy.forward(hidden: hp.baseAddress!, width: model.config.hiddenSize, targets: targets, model: model,
                                           shortlist: shortlist).0
        }
    }

    /// The loss and dLoss/dy [T, D] with down-projection output y [T, D] at layer L.
    public func lossAndGradient(downOutput y: [Float]) -> (result: TiedOutputCrossEntropy.Result, dDownOutput: [Float]) {
        let step = trainingStep(downOutput: y)
        return (step.result, step.dDownOutput)
    }

    /// One training step's loss and dLoss/dy [T, D]: over the shortlist's tokens if given; else over
    /// the whole vocabulary, and then with `shortlistPerRow` > 0 also the shortlist of this pass's
    /// most probable tokens (`TiedOutputCrossEntropy.Shortlist.top`) for the steps that follow.
    /// `hidden` is the final residual stream [T, D] (for `headLoss`).
    public func trainingStep(downOutput y: [Float], shortlist: TiedOutputCrossEntropy.Shortlist? = nil, shortlistPerRow: Int = 0)
        -> (result: TiedOutputCrossEntropy.Result, dDownOutput: [Float], shortlist: TiedOutputCrossEntropy.Shortlist?, hidden: [Float]) {
        let c = model.config, d = c.hiddenSize, t = rows
        var s = edited
        var h = BlockLayer.finish(&s, downOutput: y, layer: layer, model: model)
        var saved: [BlockActivations] = []
        saved.reserveCapacity(c.blockCount - layer - 1)
        for l in (layer + 1)..<c.blockCount {
            let out = BlockLayer.forward(h, rows: t, layer: l, model: model, rope: rope(l))
            h = out.h2
            saved.append(out.saved)
        }
        let (result, head) = h.withUnsafeBufferPointer { hp in
            TiedOutputCrossEntropy.forward(hidden: hp.baseAddress!, width: d, targets: targets, model: model, shortlist: shortlist)
        }
        let next = shortlist ?? (shortlistPerRow > 0
            ? TiedOutputCrossEntropy.Shortlist.top(head, perRow: shortlistPerRow, targets: targets, model: model) : nil)
        var dh = [Float](repeating: 0, count: t * d)
        dh.withUnsafeMutableBufferPointer { g in
            TiedOutputCrossEntropy.backward(head, targets: targets, rows: t, width: d, model: model, dHidden: g.baseAddress!)
        }
        for l in stride(from: c.blockCount - 1, to: layer, by: -1) {
            let sv = saved[l - layer - 1]
            let dy = BlockLayer.backwardToDownOutput(dh, saved: sv, layer: l, model: model)
            dh = BlockLayer.backward(dh2: dh, dDownOutput: dy, saved: sv, layer: l, model: model, rope: rope(l))
        }
        return (result, BlockLayer.backwardToDownOutput(dh, saved: s, layer: layer, model: model), next, h)
    }

    /// The loss over the whole vocabulary of a final residual stream h [T, D] a step returned
    /// (the blocks above L are not run again).
    public func headLoss(hidden h: [Float]) -> TiedOutputCrossEntropy.Result {
        h.withUnsafeBufferPointer { hp in
            TiedOutputCrossEntropy.forward(hidden: hp.baseAddress!, width: model.config.hiddenSize, targets: targets, model: model).0
        }
    }
}
