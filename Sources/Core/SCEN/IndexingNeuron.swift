// SCEN stage 2 (arXiv 2404.02699 §3.3): the indexing neuron of one edit, score = sigmoid(w·k + b)
// on the routing key k [F] of layer L's down-projection input (RoutingKey.swift), trained with Adam to fire on
// the edit's keys (positives) and stay silent on negatives (earlier edits' stored keys and a
// fixed pool of generic prompts). Official code: TAL-auroraX/SCEN main_neruals.py (its loss is
// `NeuronLoss.scen`). Training runs on standardised keys z = (k − μ)/σ (μ, σ from the pool);
// the result is folded back (w = w_z/σ, b = b_z − Σ w_z μ/σ) so routing is one mat-vec on raw keys.

import Foundation

/// A trained indexing neuron and the keys it was trained to fire on. Shapes: w [F], keys [P, F].
public struct IndexingNeuron: Sendable {
    /// w [F] in raw-key space.
    public var weight: [Float]
    /// b (0 when the hyperparameters disable the bias).
    public var bias: Float
    /// k [F]: the edit prompt's routing key.
    public var key: [Float]
    /// Keys of extra positives (rephrases given with the edit) [P−1][F]; usually empty.
    public var extraKeys: [[Float]]

    public init(weight: [Float], bias: Float, key: [Float], extraKeys: [[Float]] = []) {
        self.weight = weight; self.bias = bias; self.key = key; self.extraKeys = extraKeys
    }

    public var positiveKeys: [[Float]] { [key] + extraKeys }

    /// w·k + b.
    public func logit(_ k: [Float]) -> Float {
        weight.withUnsafeBufferPointer { w in k.withUnsafeBufferPointer { Kernels.dot(w.baseAddress!, $0.baseAddress!, count: w.count) } } + bias
    }

    public func score(_ k: [Float]) -> Float { 1 / (1 + expf(-logit(k))) }

    /// Stored bytes in Float32: w, b, key and extra keys.
    public var byteCount: Int { 4 * (weight.count + 1 + key.count * (1 + extraKeys.count)) }
}

/// Per-dimension mean μ [F] and spread σ [F] of the negative pool's keys.
public struct KeyStandardizer: Sendable {
    public let mean: [Float]
    public let spread: [Float]

    public init(mean: [Float], spread: [Float]) { self.mean = mean; self.spread = spread }

    /// Statistics of `keys` [N][F]; σ_i = std_i + 1e-2 · mean std (no dimension is blown up).
    public init(keys: [[Float]]) {
        let f = keys.first?.count ?? 0, n = Float(max(keys.count, 1))
        var mu = [Float](repeating: 0, count: f), va = mu
        for k in keys { for i in 0..<f { mu[i] += k[i] / n } }
        for k in keys { for i in 0..<f { let dv = k[i] - mu[i]; va[i] += dv * dv / n } }
        let sd = va.map { $0.squareRoot() }
        let floor = 1e-2 * sd.reduce(0, +) / Float(max(f, 1)) + 1e-12
        self.init(mean: mu, spread: sd.map { $0 + floor })
    }

    /// The identity (no standardisation).
    public static func identity(width f: Int) -> KeyStandardizer {
        KeyStandardizer(mean: [Float](repeating: 0, count: f), spread: [Float](repeating: 1, count: f))
    }

    public func apply(_ k: [Float]) -> [Float] { (0..<k.count).map { (k[$0] - mean[$0]) / spread[$0] } }

    /// Raw-space (w, b) of a z-space neuron.
    func fold(weight wz: [Float], bias bz: Float) -> ([Float], Float) {
        var w = wz, shift: Float = 0
        for i in 0..<w.count { w[i] = wz[i] / spread[i]; shift += w[i] * mean[i] }
        return (w, bz - shift)
    }

    /// z-space (w_z, b_z) of a raw-space neuron.
    func unfold(weight w: [Float], bias b: Float) -> ([Float], Float) {
        var wz = w, shift: Float = 0
        for i in 0..<w.count { wz[i] = w[i] * spread[i]; shift += w[i] * mean[i] }
        return (wz, b + shift)
    }
}

public enum IndexingNeuronTrainer {
    /// Trains (or, given `start`, refines) a neuron. `positives` [P][F] and `negatives` [N][F] are
    /// standardised keys (z-space); `start` is a z-space (w_z, b_z). Returns z-space (w_z, b_z).
    /// Cost: O(steps · (N + P) · F) vector work; no model forward.
    public static func train(positives: [[Float]], negatives: [[Float]], hyperparameters hp: SCENHyperparameters,
                             steps: Int, start: (weight: [Float], bias: Float)? = nil) -> (weight: [Float], bias: Float) {
        let f = positives[0].count
        let pos = positives.flatMap { $0 }, neg = negatives.flatMap { $0 }
        let np = positives.count, nn = negatives.count
        var theta = start.map { $0.weight + [$0.bias] }
            ?? (hp.neuronPrototypeInit ? prototype(positives: positives, negatives: negatives, bias: hp.neuronBias)
                                       : [Float](repeating: 0, count: f + 1))
        var adam = AdamState(count: f + 1, learningRate: hp.neuronLearningRate)
        var sPos = [Float](repeating: 0, count: np), sNeg = [Float](repeating: 0, count: nn)
        for _ in 0..<steps {
            logits(pos, rows: np, theta: theta, f: f, into: &sPos)
            logits(neg, rows: nn, theta: theta, f: f, into: &sNeg)
            let (_, gPos, gNeg) = lossAndGradient(positives: sPos, negatives: sNeg, hyperparameters: hp)
            var grad = [Float](repeating: 0, count: f + 1)
            accumulate(pos, rows: np, coefficients: gPos, f: f, into: &grad)
            accumulate(neg, rows: nn, coefficients: gNeg, f: f, into: &grad)
            if !hp.neuronBias { grad[f] = 0 }
            if hp.neuronWeightDecay > 0 { for i in 0..<f { grad[i] += hp.neuronWeightDecay * theta[i] } }
            adam.update(&theta, gradient: grad)
        }
        return (Array(theta[0..<f]), hp.neuronBias ? theta[f] : 0)
    }

    /// The neuron loss of `hp.neuronLoss` on the logits s⁺ [P] and s⁻ [N], and its gradient with
    /// respect to each logit (averaged over positives).
    public static func lossAndGradient(positives sPos: [Float], negatives sNeg: [Float], hyperparameters hp: SCENHyperparameters)
        -> (loss: Float, positives: [Float], negatives: [Float]) {
        let np = sPos.count, nn = sNeg.count
        var gPos = [Float](repeating: 0, count: np), gNeg = [Float](repeating: 0, count: nn)
        var loss: Float = 0
        let negMean: ([Float]) -> Float = { nn > 0 ? $0.reduce(0, +) / Float(nn) : 0 }
        switch hp.neuronLoss {
        case .scen:
            // L = exp(−σ⁺) + mean(exp(σ⁻) + 0.7) + mean(exp(σ⁻) − σ⁺ + 0.3), σ = sigmoid(s),
            // averaged over positives; dL/ds = dL/dσ · σ(1 − σ).
            let qNeg = sNeg.map(sigmoid)
            let e = negMean(qNeg.map { expf($0) })
            for p in 0..<np {
                let q = sigmoid(sPos[p])
                loss += (expf(-q) + (nn > 0 ? 2 * e + 1 - q : 0)) / Float(np)
                gPos[p] = (-expf(-q) - (nn > 0 ? 1 : 0)) * q * (1 - q) / Float(np)
            }
            for n in 0..<nn { gNeg[n] = 2 * expf(qNeg[n]) * qNeg[n] * (1 - qNeg[n]) / Float(nn) }
        case .scenLogit:
            // The same formula on the logits: exp(−s⁺) + mean(exp(s⁻) + 0.7) + mean(exp(s⁻) − s⁺ + 0.3).
            let e = negMean(sNeg.map { expf(min($0, 30)) })
            for p in 0..<np {
                loss += (expf(min(-sPos[p], 30)) + (nn > 0 ? 2 * e + 1 - sPos[p] : 0)) / Float(np)
                gPos[p] = -expf(min(-sPos[p], 30)) / Float(np) - (nn > 0 ? 1 / Float(np) : 0)
            }
            for n in 0..<nn { gNeg[n] = 2 * expf(min(sNeg[n], 30)) / Float(nn) }
        case .logisticMargin:
            // softplus(m − s⁺) (mean over positives) + mean softplus(s⁻ + m) + mean over the k
            // highest negatives of softplus(s⁻ + m).
            let m = hp.neuronMargin
            func softplus(_ x: Float) -> Float { x > 20 ? x : log1pf(expf(x)) }
            for p in 0..<np { loss += softplus(m - sPos[p]) / Float(np); gPos[p] = -sigmoid(m - sPos[p]) / Float(np) }
            for n in 0..<nn { loss += softplus(sNeg[n] + m) / Float(nn); gNeg[n] = sigmoid(sNeg[n] + m) / Float(nn) }
            let k = min(hp.neuronHardNegatives, nn)
            if k > 0 {
                for n in topIndices(sNeg, k) { loss += softplus(sNeg[n] + m) / Float(k); gNeg[n] += sigmoid(sNeg[n] + m) / Float(k) }
            }
        }
        return (loss, gPos, gNeg)
    }

    /// Beyond SCEN's random start: w along the positives' mean minus the negatives' mean
    /// (unit direction u), scaled and biased so the positive sits at logit +4 and the hardest
    /// negative at −4. Unseen keys then score near the bias (silent) instead of at random.
    static func prototype(positives: [[Float]], negatives: [[Float]], bias: Bool) -> [Float] {
        let f = positives[0].count
        var u = [Float](repeating: 0, count: f)
        for p in positives { for i in 0..<f { u[i] += p[i] / Float(positives.count) } }
        if !negatives.isEmpty { for n in negatives { for i in 0..<f { u[i] -= n[i] / Float(negatives.count) } } }
        let norm = max(u.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
        u = u.map { $0 / norm }
        func dot(_ a: [Float]) -> Float { zip(u, a).reduce(0) { $0 + $1.0 * $1.1 } }
        let pos = positives.map(dot).min()!
        guard bias, let neg = negatives.map(dot).max(), pos > neg else { return u.map { $0 * 4 / max(pos, 1e-6) } + [0] }
        let kappa = 8 / (pos - neg)
        return u.map { $0 * kappa } + [-kappa * (pos + neg) / 2]
    }

    @inline(__always) static func sigmoid(_ x: Float) -> Float { 1 / (1 + expf(-x)) }

    /// s [rows] = K [rows, F] · w + b.
    static func logits(_ keys: [Float], rows: Int, theta: [Float], f: Int, into s: inout [Float]) {
        guard rows > 0 else { return }
        keys.withUnsafeBufferPointer { k in theta.withUnsafeBufferPointer { w in s.withUnsafeMutableBufferPointer { o in
            BLAS.gemv(m: rows, n: f, a: k.baseAddress!, lda: f, x: w.baseAddress!, y: o.baseAddress!)
        } } }
        for i in 0..<rows { s[i] += theta[f] }
    }

    /// grad[0..<F] += Kᵀ · g, grad[F] += Σ g.
    static func accumulate(_ keys: [Float], rows: Int, coefficients g: [Float], f: Int, into grad: inout [Float]) {
        guard rows > 0 else { return }
        keys.withUnsafeBufferPointer { k in g.withUnsafeBufferPointer { gp in grad.withUnsafeMutableBufferPointer { o in
            BLAS.gemvT(m: rows, n: f, a: k.baseAddress!, lda: f, x: gp.baseAddress!, beta: 1, y: o.baseAddress!)
        } } }
        grad[f] += g.reduce(0, +)
    }

    static func topIndices(_ s: [Float], _ k: Int) -> [Int] {
        s.withUnsafeBufferPointer { p in p.baseAddress.map { Kernels.topIndices($0, count: s.count, k: k) } ?? [] }
    }
}
