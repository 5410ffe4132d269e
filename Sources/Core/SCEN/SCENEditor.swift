// One edit from request to routable: stage 1 (the expert, Expert.swift), stage 2 (the indexing
// neuron, IndexingNeuron.swift) against the current index's stored keys and the negative pool,
// then — beyond SCEN, which never revisits earlier neurons — refinement of earlier neurons that
// fire on the new key (vector work only). This is the API the Trainer service calls.

import Foundation

/// An edit: the prompt exactly as a user sends it, the corrected completion, optional rephrases
/// (extra positives for both stages).
public struct EditRequest: Sendable, Codable, Equatable {
    public var id: String
    public var prompt: String
    public var target: String
    public var rephrases: [String]

    public init(id: String, prompt: String, target: String, rephrases: [String] = []) {
        self.id = id; self.prompt = prompt; self.target = target; self.rephrases = rephrases
    }
}

public struct EditOutcome: Sendable {
    /// The new active edit (persist its expert and neuron).
    public var entry: EditEntry
    /// The next snapshot: the edit added, superseded edits removed, refined neurons replaced.
    public var index: EditIndex
    /// Earlier neurons changed by refinement, by edit id (persist them too).
    public var refinedNeurons: [String: IndexingNeuron]
    /// Edits of the same prompt that this one superseded.
    public var supersededEditIDs: [String]
    /// Wall-clock seconds: total (request to routable), stage 1, stage 2 + refinement.
    public var seconds: Double, expertSeconds: Double, neuronSeconds: Double
    public var expertSteps: Int
    public var expertInitialLoss: Float, expertFinalLoss: Float
    /// Model forwards (frozen-prefix runs) this edit cost: 1 per positive sequence, never per earlier edit.
    public var prefixForwards: Int
}

public final class SCENEditor {
    public let model: GemmaModel
    public let tokenizer: GemmaTokenizer
    public let hyperparameters: SCENHyperparameters
    public let pool: NegativePool
    /// Frozen-prefix forwards run by this editor so far (all edits).
    public private(set) var prefixForwardCount = 0

    /// `progress(done, total)` reports the negative pool's first computation for this model and layer.
    public init(model: GemmaModel, tokenizer: GemmaTokenizer, hyperparameters: SCENHyperparameters,
                pool: NegativePool? = nil, progress: ((Int, Int) -> Void)? = nil) throws {
        try hyperparameters.validate(for: model.config)
        self.model = model
        self.tokenizer = tokenizer
        self.hyperparameters = hyperparameters
        self.pool = try pool ?? NegativePool.shared(model: model, tokenizer: tokenizer, layer: hyperparameters.layer,
                                                    standardize: hyperparameters.standardizeKeys, progress: progress)
        guard self.pool.layer == hyperparameters.layer else {
            throw SCENError.layerMismatch(expected: hyperparameters.layer, found: self.pool.layer)
        }
    }

    /// An empty index for this editor's layer, θ and key gate.
    public func emptyIndex() -> EditIndex {
        EditIndex(hyperparameters: hyperparameters, pool: pool, ffnSize: model.config.ffnSize)
    }

    /// Trains `request` against `index` and returns the outcome with the next snapshot.
    public func edit(_ request: EditRequest, index: EditIndex) throws -> EditOutcome {
        let hp = hyperparameters
        guard index.layer == hp.layer else { throw SCENError.layerMismatch(expected: hp.layer, found: index.layer) }
        let start = DispatchTime.now().uptimeNanoseconds
        func since(_ t: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9 }

        // Stage 1: the expert (and, for free, the keys of the prompt and rephrases).
        let sequences = try ([request.prompt] + request.rephrases).map {
            try TrainingSequence(tokenizer: tokenizer, prompt: $0, target: request.target)
                .withAnswerEnd(hp, model: model, tokenizer: tokenizer)
        }
        var forwards = 0
        let trained = try ExpertTrainer.train(model: model, hyperparameters: hp, sequences: sequences,
                                              seed: hp.seed ^ SplitMix64.hash(request.id), prefixForwards: &forwards)
        prefixForwardCount += forwards
        let expertSeconds = since(start)

        // Stage 2: the neuron; negatives = pool + stored keys of the other active edits.
        let t2 = DispatchTime.now().uptimeNanoseconds
        let superseded = index.entries.filter { $0.prompt == request.prompt || $0.editID == request.id }.map(\.editID)
        let base = index.superseding(prompt: request.prompt).removing(editID: request.id)
        let std = pool.standardizer
        let positives = trained.keys.map(std.apply)
        let earlier = base.entries.map { $0.neuron.positiveKeys.map(std.apply) }
        let negatives = pool.standardizedKeys + earlier.flatMap { $0 }
        let z = IndexingNeuronTrainer.train(positives: positives, negatives: negatives, hyperparameters: hp, steps: hp.neuronSteps)
        let (w, b) = std.fold(weight: z.weight, bias: z.bias)
        let neuron = IndexingNeuron(weight: w, bias: b, key: trained.keys[0], extraKeys: Array(trained.keys.dropFirst()))
        let entry = EditEntry(editID: request.id, prompt: request.prompt, target: request.target, expert: trained.expert, neuron: neuron)

        // Beyond SCEN: earlier neurons that (nearly) fire on the new keys learn them as negatives.
        var refined: [String: IndexingNeuron] = [:]
        if hp.refineEarlierNeurons && hp.refineSteps > 0 && !base.isEmpty {
            let firing = Set(trained.keys.flatMap { k in
                base.scores(key: k).enumerated().filter { $0.element > hp.theta - hp.refineMargin }.map(\.offset)
            })
            for i in firing.sorted() {
                let old = base.entries[i].neuron
                let others = earlier.enumerated().filter { $0.offset != i }.flatMap(\.element)
                let start = std.unfold(weight: old.weight, bias: old.bias)
                let r = IndexingNeuronTrainer.train(positives: earlier[i], negatives: pool.standardizedKeys + others + positives,
                                                    hyperparameters: hp, steps: hp.refineSteps, start: start)
                var n = old
                (n.weight, n.bias) = std.fold(weight: r.weight, bias: r.bias)
                refined[base.entries[i].editID] = n
            }
        }
        let next = try base.replacingNeurons(refined).adding(entry)
        return EditOutcome(entry: entry, index: next, refinedNeurons: refined, supersededEditIDs: superseded,
                           seconds: since(start), expertSeconds: expertSeconds, neuronSeconds: since(t2),
                           expertSteps: trained.steps, expertInitialLoss: trained.initialLoss,
                           expertFinalLoss: trained.finalLoss, prefixForwards: forwards)
    }
}
