// The routing keys (`KeyPooling` of layer L's down-projection input) of the generic prompt pool
// (GenericPrompts.swift), computed once per model and layer and cached in memory, with the key
// standardiser derived from them. Stage 2 uses them as every neuron's standing negatives.

import Foundation

public final class NegativePool: @unchecked Sendable {
    public let layer: Int
    public let pooling: KeyPooling
    /// The token weights of `weighted` keys, measured on the pool's untemplated prompts (nil for
    /// the other poolings).
    public let tokenWeights: TokenWeights?
    public let prompts: [String]
    /// Raw keys [N][F].
    public let keys: [[Float]]
    /// μ, σ of `keys` (identity when standardisation is off).
    public let standardizer: KeyStandardizer
    /// Standardised keys [N][F].
    public let standardizedKeys: [[Float]]
    /// Mean over the prompts of layer L's down-projection input at the last token [F]: the centre
    /// of `SameFact`'s question test.
    public let lastTokenMean: [Float]

    /// Runs the frozen prefix (blocks ≤ L) over each prompt; `progress(done, total)` after each.
    public init(model: GemmaModel, tokenizer: GemmaTokenizer, layer: Int, pooling: KeyPooling,
                prompts: [String] = GenericPrompts.all, standardize: Bool = true, progress: ((Int, Int) -> Void)? = nil) throws {
        self.layer = layer
        self.pooling = pooling
        self.prompts = prompts
        let texts = pooling == .weighted ? GenericPrompts.untemplated : []
        let weights = pooling == .weighted
            ? try TokenWeights.surprisal(model: model, tokenizer: tokenizer, texts: texts) { done, _ in progress?(done, texts.count + prompts.count) }
            : nil
        tokenWeights = weights
        var keys: [[Float]] = []
        keys.reserveCapacity(prompts.count)
        let f = model.config.ffnSize
        var last = [Float](repeating: 0, count: f)
        for (i, p) in prompts.enumerated() {
            let (key, lastRow) = try Self.read(model: model, tokens: tokenizer.encode(p, addBOS: true), layer: layer, pooling: pooling,
                                               weights: weights)
            keys.append(key)
            for j in 0..<f { last[j] += lastRow[j] / Float(prompts.count) }
            progress?(texts.count + i + 1, texts.count + prompts.count)
        }
        self.keys = keys
        lastTokenMean = last
        standardizer = standardize ? KeyStandardizer(keys: keys) : .identity(width: model.config.ffnSize)
        standardizedKeys = keys.map(standardizer.apply)
    }

    /// The routing key of the prompt `tokens` and its last token's row of the down-projection
    /// input (one frozen prefix forward).
    static func read(model: GemmaModel, tokens: [Int32], layer: Int, pooling: KeyPooling,
                     weights: TokenWeights?) throws -> (key: [Float], lastRow: [Float]) {
        let stack = try DownProjectionTrainingStack(model: model, layer: layer, tokens: tokens, targets: [])
        let f = model.config.ffnSize, t = tokens.count
        return (pooling.key(ffnInput: stack.ffnInput, tokens: tokens, promptCount: t, width: f, weights: weights),
                Array(stack.ffnInput[(t - 1) * f ..< t * f]))
    }

    /// The routing key of the prompt `tokens` (one frozen prefix forward).
    public static func key(model: GemmaModel, tokens: [Int32], layer: Int, pooling: KeyPooling, weights: TokenWeights?) throws -> [Float] {
        try read(model: model, tokens: tokens, layer: layer, pooling: pooling, weights: weights).key
    }

    /// The routing key of the prompt `tokens`, read the way this pool's keys are.
    public func key(model: GemmaModel, tokens: [Int32]) throws -> [Float] {
        try Self.key(model: model, tokens: tokens, layer: layer, pooling: pooling, weights: tokenWeights)
    }

    // MARK: Cache per model and layer

    nonisolated(unsafe) private static var cache: [String: NegativePool] = [:]
    private static let lock = NSLock()

    /// The cached pool of `model` at `layer`, computed on first use.
    public static func shared(model: GemmaModel, tokenizer: GemmaTokenizer, layer: Int, pooling: KeyPooling,
                              standardize: Bool = true, progress: ((Int, Int) -> Void)? = nil) throws -> NegativePool {
        let id = "\(ObjectIdentifier(model).hashValue)/\(layer)/\(pooling.rawValue)/\(standardize)"
        lock.lock()
        defer { lock.unlock() }
        if let p = cache[id] { return p }
        let p = try NegativePool(model: model, tokenizer: tokenizer, layer: layer, pooling: pooling, standardize: standardize, progress: progress)
        cache[id] = p
        return p
    }
}
