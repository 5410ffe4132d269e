// The head of the training loss: final RMSNorm of the rows that predict target tokens, logits
// against the tied Float16 embedding (only at those N rows: N mat-vecs over V), softmax cross-
// entropy averaged over the N targets; backward gives dh [T, D] (zero on other rows).
// Reference: llm.c `crossentropy_softmax_backward` + `matmul_backward` restricted to N rows.
//
// With a `Shortlist` the softmax runs over C ≪ V candidate tokens only (sampled softmax, Jean
// et al. 2015): the logits are N·C dot products against a Float32 copy of those C rows instead of
// N·V against the 335 MB Float16 embedding, which is most of a training step's memory traffic.
// The loss is then a bound from below on the full one (fewer terms in the partition); callers
// that stop on it confirm with a full-vocabulary pass (SCEN/Expert.swift).

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
        /// softmax probabilities [N, V], or [N, C] over the shortlist.
        var probs: [Float]
        var shortlist: Shortlist?
    }

    /// C candidate tokens and their embedding rows: what a shortlisted head computes logits for.
    public struct Shortlist: Sendable {
        /// The candidates, ascending [C].
        public let tokens: [Int32]
        /// Their rows of the tied embedding as Float32 [C, D].
        let rows: [Float]
        /// Position in `tokens` of each candidate.
        private let position: [Int32: Int]

        public init(tokens: some Sequence<Int32>, model: GemmaModel) {
            let sorted = Array(Set(tokens)).sorted()
            let d = model.config.hiddenSize
            var rows = [Float](repeating: 0, count: sorted.count * d)
            rows.withUnsafeMutableBufferPointer { r in
                for (i, t) in sorted.enumerated() { model.embedding.copyRow(Int(t), into: r.baseAddress! + i * d) }
            }
            self.tokens = sorted
            self.rows = rows
            self.position = Dictionary(uniqueKeysWithValues: sorted.enumerated().map { ($1, $0) })
        }

        public var count: Int { tokens.count }

        /// Index of `token` among the candidates (every target must be one).
        func index(of token: Int32) -> Int {
            guard let i = position[token] else { preconditionFailure("token \(token) is not in the shortlist") }
            return i
        }

        /// The targets and, of each target row of a full-vocabulary pass, its `perRow` most probable tokens.
        public static func top(_ saved: Saved, perRow k: Int, targets: [TargetToken], model: GemmaModel) -> Shortlist {
            let v = model.config.vocabSize
            precondition(saved.shortlist == nil && saved.probs.count == targets.count * v, "needs a full-vocabulary pass")
            var chosen = targets.map(\.token)
            saved.probs.withUnsafeBufferPointer { p in
                for i in targets.indices { chosen += Kernels.topIndices(p.baseAddress! + i * v, count: v, k: k).map { Int32($0) } }
            }
            return Shortlist(tokens: chosen, model: model)
        }
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
                               model: GemmaModel, shortlist: Shortlist? = nil) -> (Result, Saved) {
        let n = targets.count, v = shortlist?.count ?? model.config.vocabSize
        var input = [Float](repeating: 0, count: n * d)
        for (i, t) in targets.enumerated() {
            for c in 0..<d { input[i * d + c] = h[t.row * d + c] }
        }
        let (normed, scales) = RMSNormLayer.forward(input, rows: n, weight: model.outputNorm, eps: model.config.rmsNormEps)
        var probs = [Float](repeating: 0, count: n * v)
        normed.withUnsafeBufferPointer { x in probs.withUnsafeMutableBufferPointer { p in
            if let shortlist {
                shortlist.rows.withUnsafeBufferPointer { e in
                    BLAS.linear(rows: n, input: x.baseAddress!, inputWidth: d, weight: e.baseAddress!, outputWidth: v,
                                output: p.baseAddress!, threads: model.threads)
                }
            } else {
                model.embedding.matMulT(x.baseAddress!, count: n, into: p.baseAddress!, threads: model.threads)
            }
        } }
        var losses = [Float](repeating: 0, count: n), correct = [Bool](repeating: false, count: n)
        probs.withUnsafeMutableBufferPointer { pb in
            for (i, t) in targets.enumerated() {
                let z = pb.baseAddress! + i * v
                let top = Kernels.argmax(z, count: v)
                let column = shortlist?.index(of: t.token) ?? Int(t.token)
                correct[i] = top == column
                let m = z[top]
                let zt = z[column]
                Kernels.softmax(z, count: v)
                // log p_t = z_t − m − log Σ exp(z − m); Σ exp(z − m) = exp(z_top − m)/p_top = 1/p_top.
                losses[i] = -(zt - m) - logf(z[top])
            }
        }
        let loss = losses.reduce(0, +) / Float(max(n, 1))
        return (Result(loss: loss, tokenLosses: losses, argmaxCorrect: correct), Saved(input: input, scales: scales, probs: probs, shortlist: shortlist))
    }

    /// dh [T, D] (overwritten; zero outside target rows) of the mean loss.
    public static func backward(_ saved: Saved, targets: [TargetToken], rows t: Int, width d: Int, model: GemmaModel,
                                dHidden dh: UnsafeMutablePointer<Float>) {
        let shortlist = saved.shortlist
        let n = targets.count, v = shortlist?.count ?? model.config.vocabSize
        var dlogits = saved.probs
        let inv = 1 / Float(n)
        dlogits.withUnsafeMutableBufferPointer { g in
            Kernels.scale(g.baseAddress!, count: n * v, by: inv)
            for (i, tk) in targets.enumerated() { g[i * v + (shortlist?.index(of: tk.token) ?? Int(tk.token))] -= inv }
        }
        var dnormed = [Float](repeating: 0, count: n * d)
        dlogits.withUnsafeBufferPointer { g in dnormed.withUnsafeMutableBufferPointer { y in
            if let shortlist {
                shortlist.rows.withUnsafeBufferPointer { e in
                    LinearLayer.backwardInput(dOut: g.baseAddress!, rows: n, inputWidth: d, weight: e.baseAddress!, outputWidth: v,
                                              dInput: y.baseAddress!, threads: model.threads)
                }
            } else {
                model.embedding.matMul(g.baseAddress!, count: n, into: y.baseAddress!, threads: model.threads)
            }
        } }
        let dinput = RMSNormLayer.backward(dOut: dnormed, input: saved.input, scales: saved.scales, weight: model.outputNorm)
        dh.update(repeating: 0, count: t * d)
        for (i, tk) in targets.enumerated() {
            for c in 0..<d { dh[tk.row * d + c] += dinput[i * d + c] }
        }
    }
}
