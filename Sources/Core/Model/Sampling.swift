// Choosing the next token from the logits: greedy (the default, and what every fixture and
// evaluation uses) or sampled with temperature, top-k and top-p (nucleus) from a seeded
// generator, so that one seed gives one output.
//
// Sampling over all 262,144 logits would sort them for every token. Tokens whose probability
// is below e⁻²⁰ (2·10⁻⁹) of the most probable one's are left out first: together they hold at
// most 262,144 · 2·10⁻⁹ ≈ 5·10⁻⁴ of the mass. What remains is sorted only for top-k and top-p
// (at temperature 1 a few hundred tokens, at 2 many thousands).

import Foundation

public struct SamplingParameters: Sendable, Equatable {
    /// 0: greedy (argmax). Logits are divided by it before the softmax.
    public var temperature: Float
    /// Keep only the k most probable tokens (0: no limit).
    public var topK: Int
    /// Keep the smallest set of most probable tokens whose mass reaches p (1: no limit).
    public var topP: Float
    /// The generator's seed (nil: a random one per request).
    public var seed: UInt64?

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, seed: UInt64? = nil) {
        self.temperature = temperature; self.topK = topK; self.topP = topP; self.seed = seed
    }

    public static let greedy = SamplingParameters()

    /// Greedy whenever only the argmax can come out.
    public var isGreedy: Bool { temperature == 0 || topK == 1 }

    /// nil when every value is usable, else what is wrong (for a 400).
    public var problem: String? {
        if !(temperature >= 0 && temperature <= 2) { return "temperature must be in 0…2" }
        if topK < 0 { return "top_k must be ≥ 0" }
        if !(topP > 0 && topP <= 1) { return "top_p must be in (0, 1]" }
        return nil
    }
}

public struct TokenSampler: Sendable {
    public let parameters: SamplingParameters
    private var rng: SplitMix64
    private var candidates: [(id: Int32, logit: Float)] = []

    public init(_ parameters: SamplingParameters) {
        self.parameters = parameters
        rng = SplitMix64(seed: parameters.seed ?? UInt64.random(in: .min ... .max))
    }

    /// The next token for these logits [V].
    public mutating func next(_ logits: UnsafeBufferPointer<Float>) -> Int32 {
        let best = Kernels.argmax(logits.baseAddress!, count: logits.count)
        if parameters.isGreedy || !logits[best].isFinite { return Int32(best) }
        let t = parameters.temperature
        let floor = logits[best] - 20 * t
        candidates.removeAll(keepingCapacity: true)
        for (i, l) in logits.enumerated() where l >= floor { candidates.append((Int32(i), l)) }
        if parameters.topK > 0 || parameters.topP < 1 {
            candidates.sort { $0.logit != $1.logit ? $0.logit > $1.logit : $0.id < $1.id }
        }
        if parameters.topK > 0 && candidates.count > parameters.topK { candidates.removeLast(candidates.count - parameters.topK) }
        let top = logits[best]
        var weights = candidates.map { expf(($0.logit - top) / t) }
        let total = weights.reduce(0, +)
        if parameters.topP < 1 {
            var mass: Float = 0, keep = 0
            while keep < weights.count {
                mass += weights[keep] / total
                keep += 1
                if mass >= parameters.topP { break }
            }
            weights.removeLast(weights.count - keep)
        }
        let kept = weights.reduce(0, +)
        // A uniform draw in [0, kept) from the top 24 bits of the generator.
        var u = Float(rng.next() >> 40) / Float(1 << 24) * kept
        for (i, w) in weights.enumerated() {
            u -= w
            if u < 0 { return candidates[i].id }
        }
        return candidates[weights.count - 1].id
    }

    public mutating func next(_ logits: [Float]) -> Int32 { logits.withUnsafeBufferPointer { next($0) } }
}
