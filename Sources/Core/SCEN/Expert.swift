// SCEN stage 1 (arXiv 2404.02699 §3.2): the expert of one edit, a trained replacement of layer
// L's FFN down-projection, and its training: Adam on cross-entropy over the target tokens only
// (prompt masked), everything else frozen. The frozen prefix (blocks < L, block L up to x) runs
// once per sequence; each step runs y = expert(x) → blocks L+1… → loss and back
// (Backward/DownProjectionTrainingStack.swift). Official code: TAL-auroraX/SCEN main_experts.py.

import Foundation

/// A trained expert. Shapes (glossary in Backward/RMSNormLayer.swift): A [r, F], B [D, r] for
/// `lowrank` (y = x·W_downᵀ + (x·Aᵀ)·Bᵀ); W' [D, F] for `full` (y = x·W'ᵀ).
public struct Expert: Sendable {
    public var form: SCENHyperparameters.ExpertForm
    /// L: the edited block.
    public var layer: Int
    /// A [r, F] (lowrank); 0 × F for `full`.
    public var a: Matrix
    /// B [D, r] (lowrank); W' [D, F] (`full`).
    public var b: Matrix
    /// The hyperparameters it was trained with.
    public var hyperparameters: SCENHyperparameters

    public init(form: SCENHyperparameters.ExpertForm, layer: Int, a: Matrix, b: Matrix, hyperparameters: SCENHyperparameters) {
        self.form = form; self.layer = layer; self.a = a; self.b = b; self.hyperparameters = hyperparameters
    }

    /// The edit the forward pass applies (FFNEdit.swift).
    public var edit: any DownProjectionEdit {
        switch form {
        case .lowRank: return LowRankDownProjectionDelta(a: a, b: b)
        case .full: return DownProjectionReplacement(weight: b)
        }
    }

    /// Parameter bytes in Float32.
    public var byteCount: Int { 4 * (a.values.count + b.values.count) }
}

/// One training sequence: BOS + prompt tokens, then target tokens (the loss is on the latter).
public struct TrainingSequence: Sendable {
    public var tokens: [Int32]
    /// Tokens of BOS + prompt: the target starts at this index.
    public var promptCount: Int
    public init(tokens: [Int32], promptCount: Int) { self.tokens = tokens; self.promptCount = promptCount }

    /// Rows predicting the target tokens.
    public var targets: [TargetToken] {
        (promptCount..<tokens.count).map { TargetToken(row: $0 - 1, token: tokens[$0]) }
    }

    public init(tokenizer: GemmaTokenizer, prompt: String, target: String) throws {
        let p = tokenizer.encode(prompt, addBOS: true)
        let t = tokenizer.encode(target, addBOS: false)
        guard p.count > 1 else { throw SCENError.emptyPrompt }
        guard !t.isEmpty else { throw SCENError.emptyTarget }
        self.init(tokens: p + t, promptCount: p.count)
    }

    /// This sequence with `hp.answerEnd`'s tokens appended after the target (they become targets
    /// too). `.base` runs the unedited model once over BOS + prompt + target.
    public func withAnswerEnd(_ hp: SCENHyperparameters, model: GemmaModel, tokenizer: GemmaTokenizer) throws -> TrainingSequence {
        var stops: Set<Int32> = [tokenizer.eosID]
        if let e = tokenizer.endOfTurnID { stops.insert(e) }
        let end: [Int32]
        switch hp.answerEnd {
        case .none: return self
        case .eos: end = [tokenizer.eosID]
        case .newline: end = tokenizer.encode("\n", addBOS: false)
        case .base:
            let session = model.makeSession(capacity: tokens.count + hp.answerEndTokens)
            end = try session.generate(prompt: tokens, maxTokens: hp.answerEndTokens, stopIDs: stops)
        }
        return TrainingSequence(tokens: tokens + end, promptCount: promptCount)
    }
}

public struct ExpertTrainingResult: Sendable {
    public var expert: Expert
    /// k [F]: the routing key of each sequence's prompt (`KeyPooling`), one per sequence.
    public var keys: [[Float]]
    /// The last prompt token's row of layer L's down-projection input [F], one per sequence
    /// (what `SameFact` compares questions by).
    public var lastPromptRows: [[Float]]
    /// Loss before the first and at the last evaluated step.
    public var initialLoss: Float, finalLoss: Float
    public var steps: Int
    /// Whether every target token was the argmax at the last evaluated step.
    public var allTargetsArgmax: Bool
}

public enum ExpertTrainer {
    /// Trains an expert on `sequences` (summed mean-token losses). `base`: the W_down [D, F] the
    /// expert starts from (default: the model's; FT-L passes its running weight).
    /// `prefixForwards` is incremented once per frozen prefix run.
    /// `tokenWeights`: those of a `weighted` key (the editor's pool has them).
    public static func train(model: GemmaModel, hyperparameters hp: SCENHyperparameters, sequences: [TrainingSequence],
                             tokenWeights: TokenWeights? = nil, base: Matrix? = nil, seed: UInt64,
                             prefixForwards: inout Int) throws -> ExpertTrainingResult {
        try hp.validate(for: model.config)
        let c = model.config, d = c.hiddenSize, f = c.ffnSize, r = hp.rank, l = hp.layer
        let w0 = base ?? model.blocks[l].down
        guard w0.rows == d && w0.cols == f else { throw SCENError.shapeMismatch("base W_down \(w0.rows)×\(w0.cols)") }
        let stacks = try sequences.map {
            try DownProjectionTrainingStack(model: model, layer: l, tokens: $0.tokens, targets: $0.targets)
        }
        prefixForwards += stacks.count
        if hp.keyPooling == .weighted && tokenWeights == nil {
            throw SCENError.invalidHyperparameters("keyPooling weighted needs token weights")
        }
        let keys = zip(stacks, sequences).map { s, q in
            hp.keyPooling.key(ffnInput: s.ffnInput, tokens: q.tokens, promptCount: q.promptCount, width: f, weights: tokenWeights)
        }
        let lastPromptRows = zip(stacks, sequences).map { s, q in Array(s.ffnInput[(q.promptCount - 1) * f ..< q.promptCount * f]) }
        // y_base [T, D] of each sequence under w0 (fixed for the low-rank form).
        let yBase = stacks.map { LinearLayer.forward($0.ffnInput, rows: $0.rows, weight: w0, threads: model.threads) }

        var theta: [Float]
        switch hp.expertForm {
        case .lowRank:
            var rng = SplitMix64(seed: seed)
            let bound = hp.expertInitScale / Float(f).squareRoot()
            theta = (0..<(r * f)).map { _ in rng.uniform(bound) } + [Float](repeating: 0, count: d * r)
        case .full:
            theta = w0.values
        }
        var adam = AdamState(count: theta.count, learningRate: hp.expertLearningRate)
        /// y [T, D] of sequence i under θ, and U = X·Aᵀ (low rank) for the backward.
        func downOutput(_ i: Int) -> (y: [Float], u: [Float]) {
            let s = stacks[i]
            switch hp.expertForm {
            case .lowRank:
                return lowRankForward(x: s.ffnInput, yBase: yBase[i], theta: theta, rows: s.rows, f: f, d: d, r: r)
            case .full:
                return (LinearLayer.forward(s.ffnInput, rows: s.rows, weight: Matrix(rows: d, cols: f, values: theta), threads: model.threads), [])
            }
        }
        // The head runs over a shortlist of the vocabulary (`expertShortlist`): step 0 over all of
        // it, which picks each sequence's candidates. A stop on the shortlist is confirmed over the
        // whole vocabulary; if it does not hold there, the remaining steps run over all of it.
        var shortlists = [TiedOutputCrossEntropy.Shortlist?](repeating: nil, count: stacks.count)
        var perRow = hp.expertShortlist
        var initial: Float = .nan, last: Float = .nan, allArgmax = false, steps = 0
        for step in 0..<hp.expertSteps {
            var grad = [Float](repeating: 0, count: theta.count)
            var loss: Float = 0
            allArgmax = true
            let shortlisted = shortlists.contains { $0 != nil }
            var hiddens: [[Float]] = []
            for (i, s) in stacks.enumerated() {
                let (y, u) = downOutput(i)
                let out = s.trainingStep(downOutput: y, shortlist: shortlists[i], shortlistPerRow: perRow)
                shortlists[i] = out.shortlist
                hiddens.append(out.hidden)
                loss += out.result.loss
                allArgmax = allArgmax && out.result.argmaxCorrect.allSatisfy { $0 }
                let dy = out.dDownOutput, t = s.rows
                switch hp.expertForm {
                case .lowRank: lowRankBackward(dy: dy, x: s.ffnInput, u: u, theta: theta, rows: t, f: f, d: d, r: r, grad: &grad)
                case .full:
                    dy.withUnsafeBufferPointer { g in s.ffnInput.withUnsafeBufferPointer { x in grad.withUnsafeMutableBufferPointer { o in
                        LinearLayer.backwardWeight(dOut: g.baseAddress!, input: x.baseAddress!, rows: t, inputWidth: f,
                                                   outputWidth: d, dWeight: o.baseAddress!, accumulate: true)
                    } } }
                }
            }
            loss /= Float(stacks.count)
            if step == 0 { initial = loss }
            last = loss
            steps = step + 1
            let stop = allArgmax && loss < hp.expertStopLoss
            if shortlisted && (stop || step == hp.expertSteps - 1) {
                // What the step saw over the whole vocabulary (the figures reported).
                let full = zip(stacks, hiddens).map { $0.headLoss(hidden: $1) }
                last = full.map(\.loss).reduce(0, +) / Float(stacks.count)
                allArgmax = full.allSatisfy { $0.argmaxCorrect.allSatisfy { $0 } }
                if allArgmax && last < hp.expertStopLoss { break }
                perRow = 0
                shortlists = shortlists.map { _ in nil }
            } else if stop {
                break
            }
            adam.update(&theta, gradient: grad)
        }
        let expert: Expert
        switch hp.expertForm {
        case .lowRank:
            expert = Expert(form: .lowRank, layer: l, a: Matrix(rows: r, cols: f, values: Array(theta[0..<(r * f)])),
                            b: Matrix(rows: d, cols: r, values: Array(theta[(r * f)...])), hyperparameters: hp)
        case .full:
            expert = Expert(form: .full, layer: l, a: Matrix(rows: 0, cols: f), b: Matrix(rows: d, cols: f, values: theta),
                            hyperparameters: hp)
        }
        return ExpertTrainingResult(expert: expert, keys: keys, lastPromptRows: lastPromptRows, initialLoss: initial, finalLoss: last, steps: steps,
                                    allTargetsArgmax: allArgmax)
    }

    /// y = y_base + U·Bᵀ with U = X·Aᵀ [T, r]; θ = A [r, F] ++ B [D, r].
    static func lowRankForward(x: [Float], yBase: [Float], theta: [Float], rows t: Int, f: Int, d: Int, r: Int) -> ([Float], [Float]) {
        var u = [Float](repeating: 0, count: t * r), y = yBase
        x.withUnsafeBufferPointer { xp in theta.withUnsafeBufferPointer { th in u.withUnsafeMutableBufferPointer { up in
            y.withUnsafeMutableBufferPointer { yp in
                BLAS.linear(rows: t, input: xp.baseAddress!, inputWidth: f, weight: th.baseAddress!, outputWidth: r, output: up.baseAddress!)
                BLAS.linear(rows: t, input: up.baseAddress!, inputWidth: r, weight: th.baseAddress! + r * f, outputWidth: d,
                            output: yp.baseAddress!, accumulate: true)
            } } } }
        return (y, u)
    }

    /// dB = dYᵀ·U [D, r], dU = dY·B [T, r], dA = dUᵀ·X [r, F], accumulated into grad (A ++ B).
    static func lowRankBackward(dy: [Float], x: [Float], u: [Float], theta: [Float], rows t: Int, f: Int, d: Int, r: Int,
                                grad: inout [Float]) {
        var du = [Float](repeating: 0, count: t * r)
        dy.withUnsafeBufferPointer { g in x.withUnsafeBufferPointer { xp in u.withUnsafeBufferPointer { up in
            theta.withUnsafeBufferPointer { th in grad.withUnsafeMutableBufferPointer { gr in du.withUnsafeMutableBufferPointer { dup in
                LinearLayer.backwardWeight(dOut: g.baseAddress!, input: up.baseAddress!, rows: t, inputWidth: r, outputWidth: d,
                                           dWeight: gr.baseAddress! + r * f, accumulate: true)
                LinearLayer.backwardInput(dOut: g.baseAddress!, rows: t, inputWidth: r, weight: th.baseAddress! + r * f,
                                          outputWidth: d, dInput: dup.baseAddress!)
                LinearLayer.backwardWeight(dOut: dup.baseAddress!, input: xp.baseAddress!, rows: t, inputWidth: f, outputWidth: r,
                                           dWeight: gr.baseAddress!, accumulate: true)
            } } } } } }
    }
}

/// Deterministic SplitMix64 (expert initialisation).
public struct SplitMix64: Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [−a, a].
    public mutating func uniform(_ a: Float) -> Float { Float(Double(next() >> 11) / Double(1 << 53) * 2 - 1) * a }
    /// A stable 64-bit hash of a string (FNV-1a), to seed per edit.
    public static func hash(_ s: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }
}
