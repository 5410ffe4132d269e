// The head of the training loss: final RMSNorm of the rows that predict target tokens, logits
// against the tied Float16 embedding (only at those N rows: N mat-vecs over V), softmax cross-
// entropy averaged over the N targets; backward gives dh [T, D] (zero on other rows).
// Reference: llm.c `crossentropy_softmax_backward` + `matmul_backward` restricted to N rows.

import Foundation

public struct TargetToken: Sendable, Equatable {
    /// Row of the sequence whose logits predict `token` (the token's index − 1).
    public var row: Int
    public var token: Int32
    public init(row: Int, token: Int32) { self.row = row; self.token = token }
}

public enum TiedOutputCrossEntropy {
    /// Saved by forward for backward.
    public struct Saved {
        /// Normalised rows [N, D] and their input rows [N, D], RMS scales [N].
        var input: [Float], scales: [Float]
        /// softmax probabilities [N, V].
        var probs: [Float]
    }

    public struct Result {
        /// Mean over the N targets of −log p(target).
        public var loss: Float
        /// −log p per target [N].
        public var tokenLosses: [Float]
        /// Whether the argmax of each target's logits is the target [N].
        public var argmaxCorrect: [Bool]
    }

    /// h [T, D] (final residual stream) → loss; `saved` for backward.
    public static func forward(hidden h: UnsafePointer<Float>, width d: Int, targets: [TargetToken],
                               model: GemmaModel) -> (Result, Saved) {
        let n = targets.count, v = model.config.vocabSize
        var input = [Float](repeating: 0, count: n * d)
        for (i, t) in targets.enumerated() {
            for c in 0..<d { input[i * d + c] = h[t.row * d + c] }
        }
        let (normed, scales) = RMSNormLayer.forward(input, rows: n, weight: model.outputNorm, eps: model.config.rmsNormEps)
        var probs = [Float](repeating: 0, count: n * v)
        normed.withUnsafeBufferPointer { x in probs.withUnsafeMutableBufferPointer { p in
            model.embedding.matMulT(x.baseAddress!, count: n, into: p.baseAddress!, threads: model.threads)
        } }
        var losses = [Float](repeating: 0, count: n), correct = [Bool](repeating: false, count: n)
        probs.withUnsafeMutableBufferPointer { pb in
            for (i, t) in targets.enumerated() {
                let z = pb.baseAddress! + i * v
                let top = Kernels.argmax(z, count: v)
                correct[i] = top == Int(t.token)
                let m = z[top]
                let zt = z[Int(t.token)]
                Kernels.softmax(z, count: v)
                // log p_t = z_t − m − log Σ exp(z − m); Σ exp(z − m) = exp(z_top − m)/p_top = 1/p_top.
                losses[i] = -(zt - m) - logf(z[top])
            }
        }
        let loss = losses.reduce(0, +) / Float(max(n, 1))
        return (Result(loss: loss, tokenLosses: losses, argmaxCorrect: correct), Saved(input: input, scales: scales, probs: probs))
    }

    /// dh [T, D] (overwritten; zero outside target rows) of the mean loss.
    public static func backward(_ saved: Saved, targets: [TargetToken], rows t: Int, width d: Int, model: GemmaModel,
                                dHidden dh: UnsafeMutablePointer<Float>) {
        let n = targets.count, v = model.config.vocabSize
        var dlogits = saved.probs
        let inv = 1 / Float(n)
        dlogits.withUnsafeMutableBufferPointer { g in
            Kernels.scale(g.baseAddress!, count: n * v, by: inv)
            for (i, tk) in targets.enumerated() { g[i * v + Int(tk.token)] -= inv }
        }
        var dnormed = [Float](repeating: 0, count: n * d)
        dlogits.withUnsafeBufferPointer { g in dnormed.withUnsafeMutableBufferPointer { y in
            model.embedding.matMul(g.baseAddress!, count: n, into: y.baseAddress!, threads: model.threads)
        } }
        let dinput = RMSNormLayer.backward(dOut: dnormed, input: saved.input, scales: saved.scales, weight: model.outputNorm)
        dh.update(repeating: 0, count: t * d)
        for (i, tk) in targets.enumerated() {
            for c in 0..<d { dh[tk.row * d + c] += dinput[i * d + c] }
        }
    }
}
