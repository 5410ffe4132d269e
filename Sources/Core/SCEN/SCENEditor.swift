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

/// Keys of prompts the deployment serves (the router's reservoir; RoutingKey.swift), raw [N][F].
/// Only keys, never text. `ids` name each key's version (reservoir slot and write), so an editor
/// checks earlier neurons only against keys it has not seen yet.
public struct TrafficKeys: Sendable {
    public var keys: [[Float]]
    public var ids: [Int64]

    public init(keys: [[Float]], ids: [Int64]? = nil) {
        self.keys = keys
        self.ids = ids ?? keys.indices.map(Int64.init)
    }

    public static let none = TrafficKeys(keys: [])
}

/// How broadly a new edit would fire, measured before activation.
public struct BlastRadius: Sendable, Codable, Equatable {
    /// Traffic keys it would answer (score > θ and key gate), out of all the reservoir's keys. Its
    /// own question asked before the correction arrived counts too: that is traffic whose answer
    /// changes. `trafficOwn`: keys that close to the edit's own (cosine ≥ `trafficOwnCosine`).
    public var trafficFired: Int, trafficMeasured: Int, trafficOwn: Int
    /// Other active edits' stored keys it would answer (their prompts would get its expert, if it
    /// outscores their own neurons).
    public var editsFired: Int, editsMeasured: Int

    public var trafficShare: Double { trafficMeasured > 0 ? Double(trafficFired) / Double(trafficMeasured) : 0 }
    public var editsShare: Double { editsMeasured > 0 ? Double(editsFired) / Double(editsMeasured) : 0 }
}

public struct EditOutcome: Sendable {
    /// The new edit (persist its expert and neuron).
    public var entry: EditEntry
    /// The next snapshot: the edit added, superseded edits removed, refined neurons replaced. When
    /// the edit is held for review, the input snapshot with only the refinements.
    public var index: EditIndex
    /// Earlier neurons changed by refinement, by edit id (persist them too).
    public var refinedNeurons: [String: IndexingNeuron]
    /// Edits this one superseded: the same prompt, or the same fact by meaning (`supersedeCosine`).
    public var supersededEditIDs: [String]
    /// Of those, the ones superseded by meaning (not byte-identical prompt).
    public var supersededByMeaning: [String]
    /// Fire rates on traffic and on other edits, measured before activation.
    public var blastRadius: BlastRadius
    /// Why the edit was not activated (its blast radius is over `blastRadiusLimit`); nil: active.
    public var heldReason: String?
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
    /// Traffic key ids earlier neurons have already been checked against.
    private var checkedTraffic: Set<Int64> = []

    /// `progress(done, total)` reports the negative pool's first computation for this model and layer.
    public init(model: GemmaModel, tokenizer: GemmaTokenizer, hyperparameters: SCENHyperparameters,
                pool: NegativePool? = nil, progress: ((Int, Int) -> Void)? = nil) throws {
        try hyperparameters.validate(for: model.config)
        self.model = model
        self.tokenizer = tokenizer
        self.hyperparameters = hyperparameters
        self.pool = try pool ?? NegativePool.shared(model: model, tokenizer: tokenizer, layer: hyperparameters.layer,
                                                    pooling: hyperparameters.keyPooling,
                                                    standardize: hyperparameters.standardizeKeys, progress: progress)
        guard self.pool.layer == hyperparameters.layer else {
            throw SCENError.layerMismatch(expected: hyperparameters.layer, found: self.pool.layer)
        }
        guard self.pool.pooling == hyperparameters.keyPooling else {
            throw SCENError.invalidHyperparameters("negative pool keys are \(self.pool.pooling.rawValue), not \(hyperparameters.keyPooling.rawValue)")
        }
    }

    /// An empty index for this editor's layer, θ and key gate.
    public func emptyIndex() -> EditIndex {
        EditIndex(hyperparameters: hyperparameters, pool: pool, ffnSize: model.config.ffnSize)
    }

    /// The routing key of `prompt` (one frozen prefix forward), as the router computes it.
    public func key(of prompt: String) throws -> [Float] {
        try pool.key(model: model, tokens: tokenizer.encode(prompt, addBOS: true))
    }

    /// Trains `request` against `index` and the deployment's `traffic` keys and returns the
    /// outcome with the next snapshot.
    public func edit(_ request: EditRequest, index: EditIndex, traffic: TrafficKeys = .none) throws -> EditOutcome {
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
        let trained = try ExpertTrainer.train(model: model, hyperparameters: hp, sequences: sequences, tokenWeights: pool.tokenWeights,
                                              seed: hp.seed ^ SplitMix64.hash(request.id), prefixForwards: &forwards)
        prefixForwardCount += forwards
        let expertSeconds = since(start)

        // Superseded: the same prompt (or id), and the same fact in other words (SameFact.swift):
        // active edits whose stored key is within `supersedeCosine` of the new prompt's key and
        // which ask the same question about the same subject. Their keys become the new neuron's
        // positives, so the latest correction answers their wordings too.
        let t2 = DispatchTime.now().uptimeNanoseconds
        let samePrompt = index.entries.filter { $0.prompt == request.prompt || $0.editID == request.id }.map(\.editID)
        let withoutSamePrompt = samePrompt.isEmpty ? index : index.filteringOut(editIDs: Set(samePrompt))
        let byMeaning = try sameFact(as: request.prompt, key: trained.keys[0], lastRow: trained.lastPromptRows[0], in: withoutSamePrompt)
        let superseded = samePrompt + byMeaning
        let base = byMeaning.isEmpty ? withoutSamePrompt : withoutSamePrompt.filteringOut(editIDs: Set(byMeaning))

        // Stage 2: the neuron; positives = its own keys and those of the edits it supersedes by
        // meaning; negatives = pool + traffic (but the edit's own question) + the other active
        // edits' stored keys.
        let std = pool.standardizer
        let inherited = byMeaning.compactMap { withoutSamePrompt.entry(editID: $0) }.flatMap(\.neuron.positiveKeys)
        let positives = (trained.keys + inherited).map(std.apply)
        let unit = positives.map(Self.normalized)
        let zTraffic = traffic.keys.map(std.apply)
        let unitTraffic = zTraffic.map(Self.normalized)
        let foreign = zTraffic.indices.filter { t in !unit.contains { Self.dot($0, unitTraffic[t]) >= hp.trafficOwnCosine } }
        let trafficNegatives = foreign.map { zTraffic[$0] }
        let standing = pool.standardizedKeys + trafficNegatives
        let earlier = base.entries.map { $0.neuron.positiveKeys.map(std.apply) }
        var z = IndexingNeuronTrainer.train(positives: positives, negatives: standing + earlier.flatMap { $0 },
                                            hyperparameters: hp, steps: hp.neuronSteps)
        var (w, b) = std.fold(weight: z.weight, bias: z.bias)
        var neuron = IndexingNeuron(weight: w, bias: b, key: trained.keys[0], extraKeys: Array(trained.keys.dropFirst()))

        // Blast radius before activation; over the limit, one more round of training, then held.
        func radius(_ n: IndexingNeuron) -> BlastRadius {
            let probe = EditIndex(hyperparameters: hp, pool: pool, ffnSize: model.config.ffnSize)
            let one = (try? probe.adding(EditEntry(editID: request.id, prompt: request.prompt, target: request.target, rephrases: request.rephrases,
                                                   expert: trained.expert, neuron: n))) ?? probe
            let tf = traffic.keys.filter { one.route(key: $0) != nil }.count
            // Another edit's question is answered only if it also names this edit's subject (its
            // words are read only for the few keys the neuron fires on).
            let ef = base.entries.filter { e in
                one.route(key: e.neuron.key) != nil && one.route(key: e.neuron.key, request: RequestWords(e.prompt)) != nil
            }.count
            return BlastRadius(trafficFired: tf, trafficMeasured: traffic.keys.count, trafficOwn: traffic.keys.count - foreign.count,
                               editsFired: ef, editsMeasured: base.count)
        }
        var blast = radius(neuron)
        let enforced = traffic.keys.count >= hp.blastRadiusMinTraffic
        if let limit = hp.blastRadiusLimit, enforced, blast.trafficShare > Double(limit) {
            z = IndexingNeuronTrainer.train(positives: positives, negatives: standing + earlier.flatMap { $0 },
                                            hyperparameters: hp, steps: 2 * hp.neuronSteps, start: z)
            (w, b) = std.fold(weight: z.weight, bias: z.bias)
            neuron.weight = w; neuron.bias = b
            blast = radius(neuron)
        }
        var held: String?
        if let limit = hp.blastRadiusLimit, enforced, blast.trafficShare > Double(limit) {
            held = String(format: "blast radius: would answer %d of %d traffic keys (%.1f %%, limit %.1f %%; %d of them this prompt's own wording)",
                          blast.trafficFired, blast.trafficMeasured, 100 * blast.trafficShare, 100 * Double(limit), blast.trafficOwn)
        }
        let entry = EditEntry(editID: request.id, prompt: request.prompt, target: request.target, rephrases: request.rephrases,
                              expert: trained.expert, neuron: neuron)

        // Beyond SCEN: earlier neurons that (nearly) fire on the new keys, or on traffic keys not
        // checked before, learn them as negatives.
        var refined: [String: IndexingNeuron] = [:]
        if hp.refineEarlierNeurons && hp.refineSteps > 0 && !base.isEmpty {
            var firing = Set<Int>()
            if held == nil {
                for k in trained.keys {
                    for (i, s) in base.scores(key: k).enumerated() where s > hp.theta - hp.refineMargin { firing.insert(i) }
                }
            }
            let fresh = traffic.ids.indices.filter { !checkedTraffic.contains(traffic.ids[$0]) }
            for t in fresh {
                for (i, s) in base.scores(key: traffic.keys[t]).enumerated() where s > hp.theta - hp.refineMargin { firing.insert(i) }
            }
            checkedTraffic.formUnion(fresh.map { traffic.ids[$0] })
            let newKeys = held == nil ? positives : []
            for i in firing.sorted() {
                let old = base.entries[i].neuron
                let ownUnit = earlier[i].map(Self.normalized)
                let ownTraffic = zTraffic.indices.filter { t in !ownUnit.contains { Self.dot($0, unitTraffic[t]) >= hp.trafficOwnCosine } }
                    .map { zTraffic[$0] }
                let others = earlier.enumerated().filter { $0.offset != i }.flatMap(\.element)
                let start = std.unfold(weight: old.weight, bias: old.bias)
                let r = IndexingNeuronTrainer.train(positives: earlier[i], negatives: pool.standardizedKeys + ownTraffic + others + newKeys,
                                                    hyperparameters: hp, steps: hp.refineSteps, start: start)
                var n = old
                (n.weight, n.bias) = std.fold(weight: r.weight, bias: r.bias)
                refined[base.entries[i].editID] = n
            }
        }
        let next = held == nil ? try base.replacingNeurons(refined).adding(entry) : index.replacingNeurons(refined)
        return EditOutcome(entry: entry, index: next, refinedNeurons: refined,
                           supersededEditIDs: held == nil ? superseded : [], supersededByMeaning: held == nil ? byMeaning : [],
                           blastRadius: blast, heldReason: held,
                           seconds: since(start), expertSeconds: expertSeconds, neuronSeconds: since(t2),
                           expertSteps: trained.steps, expertInitialLoss: trained.initialLoss,
                           expertFinalLoss: trained.finalLoss, prefixForwards: forwards)
    }

    /// The active edits of `index` that correct the same fact as `prompt` (key `key`), by
    /// `SameFact`; none when `supersedeCosine` is off or the keys are not `weighted`.
    /// `lastRow`: the new prompt's last-token row, which stage 1 computed already.
    func sameFact(as prompt: String, key: [Float], lastRow: [Float], in index: EditIndex) throws -> [String] {
        guard let cut = hyperparameters.supersedeCosine, let weights = pool.tokenWeights else { return [] }
        let cosines = index.keyCosines(key)
        var mine = SameFact.Facets(tokenizer: tokenizer, prompt: prompt)
        let subject = index.entries.indices.filter { cosines[$0] >= cut }.map { index.entries[$0] }
            .filter { SameFact.sameSubject(mine, SameFact.Facets(tokenizer: tokenizer, prompt: $0.prompt), weights: weights) }
        guard !subject.isEmpty else { return [] }
        mine.lastRow = lastRow
        return try subject.filter {
            let theirs = try SameFact.Facets(model: model, tokenizer: tokenizer, layer: hyperparameters.layer, prompt: $0.prompt)
            return SameFact.questionCosine(mine, theirs, center: pool.lastTokenMean) >= hyperparameters.sameFactQuestionCosine
        }.map(\.editID)
    }

    static func normalized(_ v: [Float]) -> [Float] {
        let n = max(v.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
        return v.map { $0 / n }
    }

    static func dot(_ a: [Float], _ b: [Float]) -> Float {
        a.withUnsafeBufferPointer { x in b.withUnsafeBufferPointer { y in Kernels.dot(x.baseAddress!, y.baseAddress!, count: x.count) } }
    }
}
