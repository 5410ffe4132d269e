// The keys (layer L's down-projection input at the last prompt token) of the generic prompt pool
// (GenericPrompts.swift), computed once per model and layer and cached in memory, with the key
// standardiser derived from them. Stage 2 uses them as every neuron's standing negatives.

import Foundation

public final class NegativePool: @unchecked Sendable {
    public let layer: Int
    public let prompts: [String]
    /// Raw keys [N][F].
    public let keys: [[Float]]
    /// μ, σ of `keys` (identity when standardisation is off).
    public let standardizer: KeyStandardizer
    /// Standardised keys [N][F].
    public let standardizedKeys: [[Float]]

    /// Runs the frozen prefix (blocks ≤ L) over each prompt; `progress(done, total)` after each.
    public init(model: GemmaModel, tokenizer: GemmaTokenizer, layer: Int, prompts: [String] = GenericPrompts.all,
                standardize: Bool = true, progress: ((Int, Int) -> Void)? = nil) throws {
        self.layer = layer
        self.prompts = prompts
        var keys: [[Float]] = []
        keys.reserveCapacity(prompts.count)
        for (i, p) in prompts.enumerated() {
            keys.append(try Self.key(model: model, tokens: tokenizer.encode(p, addBOS: true), layer: layer))
            progress?(i + 1, prompts.count)
        }
        self.keys = keys
        standardizer = standardize ? KeyStandardizer(keys: keys) : .identity(width: model.config.ffnSize)
        standardizedKeys = keys.map(standardizer.apply)
    }

    /// Layer L's down-projection input at the last of `tokens` (one frozen prefix forward).
    public static func key(model: GemmaModel, tokens: [Int32], layer: Int) throws -> [Float] {
        let stack = try DownProjectionTrainingStack(model: model, layer: layer, tokens: tokens, targets: [])
        let f = model.config.ffnSize
        return Array(stack.ffnInput[(tokens.count - 1) * f ..< tokens.count * f])
    }

    // MARK: Cache per model and layer

    nonisolated(unsafe) private static var cache: [String: NegativePool] = [:]
    private static let lock = NSLock()

    /// The cached pool of `model` at `layer`, computed on first use.
    public static func shared(model: GemmaModel, tokenizer: GemmaTokenizer, layer: Int, standardize: Bool = true,
                              progress: ((Int, Int) -> Void)? = nil) throws -> NegativePool {
        let id = "\(ObjectIdentifier(model).hashValue)/\(layer)/\(standardize)"
        lock.lock()
        defer { lock.unlock() }
        if let p = cache[id] { return p }
        let p = try NegativePool(model: model, tokenizer: tokenizer, layer: layer, standardize: standardize, progress: progress)
        cache[id] = p
        return p
    }
}
