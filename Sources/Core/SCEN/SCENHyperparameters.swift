// Every knob of SCEN (arXiv 2404.02699) as one documented, validated Codable value, stored with
// each expert so that an edit can always be explained and reproduced.

import Foundation

public struct SCENHyperparameters: Codable, Sendable, Equatable {
    /// Form of the expert (stage 1).
    public enum ExpertForm: String, Codable, Sendable, CaseIterable {
        /// W_down + B·A with A [r, F], B [D, r] (default; 43 KB at r = 4).
        case lowRank = "lowrank"
        /// A trained copy W' [D, F] of W_down, as the official SCEN code does (5.2 MB).
        case full
    }

    /// What stage 1 also trains the expert to produce right after the target. The expert applies to
    /// the whole request (prompt and every generated token), so trained on the target alone it keeps
    /// pushing toward the target's tokens and greedy answers repeat it ("George Washington George
    /// Washington …"); an end token after the target teaches it where the answer stops.
    public enum AnswerEnd: String, Codable, Sendable, CaseIterable {
        /// SCEN: cross-entropy on the target tokens only.
        case none
        /// The target, then `<eos>` (generation stops there when EOS is a stop id, as in the router).
        case eos
        /// The target, then "\n".
        case newline
        /// The target, then the unedited model's greedy continuation of prompt + target
        /// (`answerEndTokens` tokens, fewer if it emits EOS): computed once per sequence, no expert.
        case base
    }

    /// Which later corrections of the winning edit's fact may answer instead of it.
    public enum LatestWinsScope: String, Codable, Sendable, CaseIterable {
        /// Later edits whose neuron also fires on the request (and whose key passes the gate).
        case firing
        /// Later edits whose stored key passes the key gate on the request, fired or not: a newer
        /// correction's neuron is trained with the older phrasing as a negative, so it often does
        /// not fire where the older one does.
        case gated
    }

    /// Loss of the indexing neuron (stage 2) over logits s = w·k + b and scores σ = sigmoid(s).
    public enum NeuronLoss: String, Codable, Sendable, CaseIterable {
        /// SCEN's, as the paper and its official code apply it, to the sigmoid scores:
        /// exp(−σ⁺) + mean(exp(σ⁻) + 0.7) + mean(exp(σ⁻) − σ⁺ + 0.3).
        case scen
        /// The same formula applied to the logits s instead of σ (this project's first variant;
        /// unbounded, so it keeps pushing s⁺ up and s⁻ down).
        case scenLogit = "scen-logit"
        /// Logistic with margin: softplus(m − s⁺) + mean softplus(s⁻ + m) + (hardest-negative term)
        /// mean over the top-k negatives of softplus(s⁻ + m).
        case logisticMargin = "logistic-margin"
    }

    /// L: the edited block. Sweep on zsre-dev cases 100–124 (rel/gen/loc): 6: .99/.52/1, 9: 1/.64/1,
    /// 11: 1/.57/1, 13: 1/.70/1 → 13.
    public var layer: Int = 13
    public var expertForm: ExpertForm = .lowRank
    /// r: rank of the low-rank expert.
    public var rank: Int = 4
    /// Adam steps of stage 1 (an upper bound: see `expertStopLoss`).
    public var expertSteps: Int = 12
    /// Adam learning rate of stage 1 (for `full`, 1e-4 as in the paper's code is a sane start).
    public var expertLearningRate: Float = 3e-2
    /// Stage 1 stops early once every target token is the argmax and the mean loss is below this.
    public var expertStopLoss: Float = 0.05
    /// Beyond SCEN: stage 1's softmax after its first step runs over the union of each target
    /// row's this-many most probable tokens of that step, not all 262,144 (0: the whole vocabulary
    /// every step). The stop is confirmed over the whole vocabulary (TiedOutputCrossEntropy.swift).
    public var expertShortlist: Int = 512
    /// Tokens appended after the target in stage 1 (see `AnswerEnd`). 12-token routed greedy answers
    /// (stop at EOS) of the president edit + zsre-dev cases 0–9, answers repeating the target /
    /// p50 edit s (busy 2 cores): none 11/11 / 3.6, newline 10/11, base×1 9/11, base×3 7/11 / 2.7,
    /// base×6 1/11 / 3.7 (natural continuations), eos 0/11 / 1.2 (all end at EOS right after the target).
    public var answerEnd: AnswerEnd = .eos
    /// Continuation tokens trained after the target by `answerEnd = .base` (1…16).
    public var answerEndTokens: Int = 1
    /// Scale of the uniform initialisation of A: U(±scale/√F) (PEFT's Kaiming-uniform uses 1).
    public var expertInitScale: Float = 1

    /// What the neuron reads of a prompt (RoutingKey.swift). zsre-dev, same-format locality and
    /// generality (README "Routing"): last-token < mean < weighted.
    public var keyPooling: KeyPooling = .weighted
    /// θ: an edit is routed when its neuron's sigmoid score exceeds this (paper: 0.65).
    public var theta: Float = 0.65
    public var neuronLoss: NeuronLoss = .logisticMargin
    /// Adam steps and learning rate of stage 2 (on standardised keys).
    public var neuronSteps: Int = 60
    public var neuronLearningRate: Float = 5e-2
    /// Margin m of the logistic loss (logit units).
    public var neuronMargin: Float = 3
    /// Hardest negatives emphasised by the logistic loss (0: none).
    public var neuronHardNegatives: Int = 16
    /// Start the neuron from the prototype direction (mean positive − mean negative), scaled so the
    /// positive sits at logit +4 and the hardest negative at −4 (beyond SCEN's random start).
    public var neuronPrototypeInit: Bool = true
    /// L2 penalty λ on w (z-space): keeps unseen keys near the bias.
    public var neuronWeightDecay: Float = 0
    /// Whether neurons have a bias b (routing score sigmoid(w·k + b)).
    public var neuronBias: Bool = true
    /// Standardise keys with the negative pool's per-dimension mean and spread before training
    /// the neuron (folded into w and b afterwards, so routing is still one mat-vec on raw keys).
    public var standardizeKeys: Bool = true

    /// Beyond SCEN: when a new edit arrives, earlier neurons scoring above θ − `refineMargin` on
    /// the new key are refined (vector work only) with it as an extra negative.
    public var refineEarlierNeurons: Bool = true
    public var refineMargin: Float = 0.3
    public var refineSteps: Int = 30
    /// Beyond SCEN: a routed edit must also have cosine(standardised key, its stored key) ≥ this
    /// (nil: neuron score only, as in the paper).
    /// Measured on zsre-dev T=30: locality-prompt firing 0.90 → 0.00, reliability and generality unchanged.
    /// With weighted keys, 0.5 → 0.6: zsre-dev T=300 generality 0.836 both, same-format firing
    /// 2.1 % → 1.1 %; counterfact-dev T=400 neighbour firing 14.5 % → 10.5 %, generality 0.515 → 0.481.
    public var keyGate: Float? = 0.6
    /// Beyond SCEN: an edit answers only requests that name its subject (`SubjectNames`: every
    /// capitalised word of its prompt but sentence openers occurs in the request's text).
    public var subjectGate: Bool = true

    /// Beyond SCEN: the blast-radius check. Before activation the trainer measures the share of
    /// traffic keys (the router's reservoir) the new edit would answer; above this share it is
    /// not activated but held for review (nil: no check).
    public var blastRadiusLimit: Float? = 0.05
    /// The check applies only once the reservoir holds at least this many keys (a share of a
    /// handful of requests says nothing).
    public var blastRadiusMinTraffic: Int = 10
    /// Traffic keys closer than this cosine (standardised) to one of the edit's own keys are the
    /// edit's own question asked before the correction arrived: they are neither negatives nor
    /// counted in the blast radius.
    public var trafficOwnCosine: Float = 0.9
    /// Beyond SCEN: the same fact corrected again in other words (`SameFact`; nil: off). An active
    /// edit whose stored key has at least this cosine (standardised) with the new prompt's key is a
    /// candidate; it is superseded when `SameFact` says both prompts ask one question about one
    /// subject, and the new neuron learns its keys as positives, so the latest correction answers
    /// every wording of the fact. Needs `weighted` keys (their token weights).
    public var supersedeCosine: Float? = 0.6
    /// `SameFact`'s question test: centred last-token cosine from which two prompts ask the same
    /// question.
    public var sameFactQuestionCosine: Float = 0.7
    /// Beyond SCEN, at routing time (no edit is removed): when several edits fire on a request and
    /// a later one's stored key has at least this cosine (standardised) with the best-scoring one's,
    /// the later correction answers (nil: the best score answers). zsre-dev T=300 (gate 0.6), off →
    /// 0.6: reliability 0.997 → 1.000, generality 0.836 → 0.843, latest-wins 0.457 → 0.473.
    public var latestWinsCosine: Float? = 0.6
    /// Which later edits `latestWinsCosine` considers (see `LatestWinsScope`).
    public var latestWinsScope: LatestWinsScope = .firing
    /// Applied by callers that feed benchmark questions (the eval harness): `{prompt}` is replaced.
    public var promptTemplate: String = "Question: {prompt}\nAnswer:"
    /// Seed of the expert initialisation (mixed with the edit id).
    public var seed: UInt64 = 0x5CE1

    public init() {}

    enum CodingKeys: String, CodingKey {
        case layer, expertForm, rank, expertSteps, expertLearningRate, expertStopLoss, expertShortlist, expertInitScale, answerEnd, answerEndTokens
        case keyPooling, theta, neuronLoss, latestWinsCosine, latestWinsScope, blastRadiusLimit, blastRadiusMinTraffic, trafficOwnCosine, supersedeCosine, sameFactQuestionCosine
        case neuronSteps, neuronLearningRate, neuronMargin, neuronHardNegatives, neuronPrototypeInit, neuronWeightDecay
        case neuronBias, standardizeKeys, refineEarlierNeurons, refineMargin, refineSteps, keyGate, subjectGate, promptTemplate, seed
    }

    /// Decodes a possibly partial JSON object: missing keys keep their defaults.
    public init(from decoder: any Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func read<T: Decodable>(_ key: CodingKeys, _ value: inout T) throws {
            if let v = try c.decodeIfPresent(T.self, forKey: key) { value = v }
        }
        try read(.layer, &layer); try read(.expertForm, &expertForm); try read(.rank, &rank)
        try read(.expertSteps, &expertSteps); try read(.expertLearningRate, &expertLearningRate)
        try read(.expertStopLoss, &expertStopLoss); try read(.expertInitScale, &expertInitScale)
        try read(.expertShortlist, &expertShortlist)
        try read(.answerEnd, &answerEnd); try read(.answerEndTokens, &answerEndTokens)
        try read(.latestWinsScope, &latestWinsScope)
        try read(.keyPooling, &keyPooling); try read(.trafficOwnCosine, &trafficOwnCosine)
        try read(.blastRadiusMinTraffic, &blastRadiusMinTraffic); try read(.sameFactQuestionCosine, &sameFactQuestionCosine)
        if c.contains(.blastRadiusLimit) { blastRadiusLimit = try c.decodeIfPresent(Float.self, forKey: .blastRadiusLimit) }
        if c.contains(.supersedeCosine) { supersedeCosine = try c.decodeIfPresent(Float.self, forKey: .supersedeCosine) }
        if c.contains(.latestWinsCosine) { latestWinsCosine = try c.decodeIfPresent(Float.self, forKey: .latestWinsCosine) }
        try read(.theta, &theta); try read(.neuronLoss, &neuronLoss); try read(.neuronSteps, &neuronSteps)
        try read(.neuronLearningRate, &neuronLearningRate); try read(.neuronMargin, &neuronMargin)
        try read(.neuronHardNegatives, &neuronHardNegatives); try read(.neuronPrototypeInit, &neuronPrototypeInit)
        try read(.neuronWeightDecay, &neuronWeightDecay); try read(.neuronBias, &neuronBias)
        try read(.standardizeKeys, &standardizeKeys); try read(.refineEarlierNeurons, &refineEarlierNeurons)
        try read(.refineMargin, &refineMargin); try read(.refineSteps, &refineSteps)
        if c.contains(.keyGate) { keyGate = try c.decodeIfPresent(Float.self, forKey: .keyGate) }
        try read(.subjectGate, &subjectGate)
        try read(.promptTemplate, &promptTemplate); try read(.seed, &seed)
    }

    /// Encodes every key (a disabled key gate as an explicit null, so decoding keeps it off).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(layer, forKey: .layer); try c.encode(expertForm, forKey: .expertForm); try c.encode(rank, forKey: .rank)
        try c.encode(expertSteps, forKey: .expertSteps); try c.encode(expertLearningRate, forKey: .expertLearningRate)
        try c.encode(expertStopLoss, forKey: .expertStopLoss); try c.encode(expertInitScale, forKey: .expertInitScale)
        try c.encode(expertShortlist, forKey: .expertShortlist)
        try c.encode(answerEnd, forKey: .answerEnd); try c.encode(answerEndTokens, forKey: .answerEndTokens)
        try c.encode(latestWinsScope, forKey: .latestWinsScope)
        try c.encode(keyPooling, forKey: .keyPooling); try c.encode(trafficOwnCosine, forKey: .trafficOwnCosine)
        try c.encode(blastRadiusMinTraffic, forKey: .blastRadiusMinTraffic); try c.encode(sameFactQuestionCosine, forKey: .sameFactQuestionCosine)
        if let blastRadiusLimit { try c.encode(blastRadiusLimit, forKey: .blastRadiusLimit) } else { try c.encodeNil(forKey: .blastRadiusLimit) }
        if let supersedeCosine { try c.encode(supersedeCosine, forKey: .supersedeCosine) } else { try c.encodeNil(forKey: .supersedeCosine) }
        if let latestWinsCosine { try c.encode(latestWinsCosine, forKey: .latestWinsCosine) } else { try c.encodeNil(forKey: .latestWinsCosine) }
        try c.encode(theta, forKey: .theta); try c.encode(neuronLoss, forKey: .neuronLoss); try c.encode(neuronSteps, forKey: .neuronSteps)
        try c.encode(neuronLearningRate, forKey: .neuronLearningRate); try c.encode(neuronMargin, forKey: .neuronMargin)
        try c.encode(neuronHardNegatives, forKey: .neuronHardNegatives); try c.encode(neuronPrototypeInit, forKey: .neuronPrototypeInit)
        try c.encode(neuronWeightDecay, forKey: .neuronWeightDecay); try c.encode(neuronBias, forKey: .neuronBias)
        try c.encode(standardizeKeys, forKey: .standardizeKeys); try c.encode(refineEarlierNeurons, forKey: .refineEarlierNeurons)
        try c.encode(refineMargin, forKey: .refineMargin); try c.encode(refineSteps, forKey: .refineSteps)
        if let keyGate { try c.encode(keyGate, forKey: .keyGate) } else { try c.encodeNil(forKey: .keyGate) }
        try c.encode(subjectGate, forKey: .subjectGate)
        try c.encode(promptTemplate, forKey: .promptTemplate); try c.encode(seed, forKey: .seed)
    }

    /// Throws `SCENError.invalidHyperparameters` unless every value is usable with `config`.
    /// The defaults overridden by JSON given inline or as the path of a file holding it (nil: the
    /// defaults), as the CLI, the trainer and the router take it.
    public static func load(_ pathOrJSON: String?) throws -> SCENHyperparameters {
        guard let pathOrJSON else { return SCENHyperparameters() }
        let json = FileManager.default.fileExists(atPath: pathOrJSON)
            ? try Data(contentsOf: URL(fileURLWithPath: pathOrJSON)) : Data(pathOrJSON.utf8)
        return try JSONDecoder().decode(SCENHyperparameters.self, from: json)
    }

    public func validate(for config: GemmaConfig? = nil) throws {
        func check(_ ok: Bool, _ what: String) throws { if !ok { throw SCENError.invalidHyperparameters(what) } }
        try check(layer >= 0, "layer must be ≥ 0")
        if let config { try check(layer < config.blockCount, "layer \(layer) ≥ block count \(config.blockCount)") }
        try check(rank >= 1 && rank <= 256, "rank must be in 1…256")
        try check(expertSteps >= 1 && expertSteps <= 1000, "expertSteps must be in 1…1000")
        try check(expertLearningRate > 0 && expertLearningRate.isFinite, "expertLearningRate must be positive")
        try check(expertStopLoss >= 0, "expertStopLoss must be ≥ 0")
        try check(expertShortlist >= 0 && expertShortlist <= 65_536, "expertShortlist must be in 0…65536")
        try check(expertInitScale > 0, "expertInitScale must be positive")
        try check(answerEndTokens >= 1 && answerEndTokens <= 16, "answerEndTokens must be in 1…16")
        try check(theta > 0 && theta < 1, "theta must be in (0, 1)")
        try check(neuronSteps >= 1 && neuronSteps <= 10_000, "neuronSteps must be in 1…10000")
        try check(neuronLearningRate > 0 && neuronLearningRate.isFinite, "neuronLearningRate must be positive")
        try check(neuronMargin >= 0, "neuronMargin must be ≥ 0")
        try check(neuronWeightDecay >= 0, "neuronWeightDecay must be ≥ 0")
        try check(neuronHardNegatives >= 0, "neuronHardNegatives must be ≥ 0")
        try check(refineMargin >= 0 && refineSteps >= 0, "refine settings must be ≥ 0")
        if let g = keyGate { try check(g > -1 && g < 1, "keyGate must be in (−1, 1)") }
        if let b = blastRadiusLimit { try check(b >= 0 && b <= 1, "blastRadiusLimit must be in 0…1") }
        try check(blastRadiusMinTraffic >= 1, "blastRadiusMinTraffic must be ≥ 1")
        if let s = supersedeCosine { try check(s > -1 && s <= 1, "supersedeCosine must be in (−1, 1]") }
        if let l = latestWinsCosine { try check(l > -1 && l <= 1, "latestWinsCosine must be in (−1, 1]") }
        try check(sameFactQuestionCosine > -1 && sameFactQuestionCosine <= 1.0001, "sameFactQuestionCosine must be in (−1, 1]")
        try check(trafficOwnCosine > -1 && trafficOwnCosine <= 1, "trafficOwnCosine must be in (−1, 1]")
        try check(promptTemplate.contains("{prompt}"), "promptTemplate must contain {prompt}")
    }

    /// The template applied to a question.
    public func templated(_ prompt: String) -> String {
        promptTemplate.replacingOccurrences(of: "{prompt}", with: prompt)
    }
}

public enum SCENError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidHyperparameters(String)
    case emptyTarget
    case emptyPrompt
    case layerMismatch(expected: Int, found: Int)
    case shapeMismatch(String)

    public var description: String {
        switch self {
        case let .invalidHyperparameters(s): return "invalid SCEN hyperparameters: \(s)"
        case .emptyTarget: return "the edit's target has no tokens"
        case .emptyPrompt: return "the edit's prompt has no tokens"
        case let .layerMismatch(e, f): return "edit layer \(f) does not match the index layer \(e)"
        case let .shapeMismatch(s): return "shape mismatch: \(s)"
        }
    }
}
