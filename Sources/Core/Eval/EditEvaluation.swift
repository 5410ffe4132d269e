// The sequential-editing protocol and the metrics of EasyEdit/WISE: T edits applied one after
// another, then all T evaluated (optionally also every K edits along the way).
//   reliability / generality: teacher-forced token accuracy of the target on the prompt / on each
//     rephrase (templated like the prompt); *_em: the greedy answer equals the target exactly.
//   locality: share of the locality answer's tokens where the edited model's argmax equals the
//     unedited model's (teacher-forced on locality_prompt + " " + locality_answer).
// Methods: `scen` (experts + indexing neurons + routing), `ft` (FT-L: the same expert training
// applied cumulatively to the one shared down-projection, no routing), `none` (unedited model).

import Foundation

public enum EditMethod: String, Codable, Sendable, CaseIterable { case scen, ft, none }

/// Always applies one edit (FT-L's shared down-projection).
public final class FixedEditor: DownProjectionEditor {
    public let layer: Int
    public let edit: any DownProjectionEdit
    public init(layer: Int, edit: any DownProjectionEdit) { self.layer = layer; self.edit = edit }
    public func selectEdit(for activations: FFNActivations) -> (any DownProjectionEdit)? { edit }
}

public struct EvalScores: Codable, Sendable {
    public var edits: Int
    public var reliability: Double, generality: Double, locality: Double
    public var reliability_em: Double, generality_em: Double
    /// Share of prompts / rephrases on which their own edit's neuron fired (scen only).
    public var fire_prompt_own: Double, fire_rephrase_own: Double
    /// Share of prompts / rephrases / locality prompts on which any neuron fired (scen only).
    public var fire_prompt: Double, fire_rephrase: Double, fire_locality: Double
}

public struct EvalReport: Codable, Sendable {
    public var method: String
    public var data: String
    public var edits: Int
    public var reliability: Double, generality: Double, locality: Double
    public var reliability_em: Double, generality_em: Double
    public var edit_seconds_p50: Double, edit_seconds_p95: Double
    public var bytes_per_edit: Double
    public var fire_prompt_own: Double, fire_rephrase_own: Double
    public var fire_prompt: Double, fire_rephrase: Double, fire_locality: Double
    /// Neurons refined (beyond SCEN) over the run, and expert steps p50.
    public var refined_neurons: Int
    public var expert_steps_mean: Double
    public var pool_seconds: Double
    public var config: SCENHyperparameters
    /// Scores after every K edits (--eval-every).
    public var along_the_way: [EvalScores]
}

public final class EditEvaluation {
    public let model: GemmaModel
    public let tokenizer: GemmaTokenizer
    public let hyperparameters: SCENHyperparameters
    public let method: EditMethod
    public let cases: [EditCase]
    /// Receives progress lines (the CLI draws them on stderr).
    public var progress: ((String) -> Void)?

    private let session: GemmaSession
    /// Unedited argmaxes on each case's locality answers, by case index.
    private var baseLocality: [Int: [[Int32]]] = [:]

    public init(model: GemmaModel, tokenizer: GemmaTokenizer, hyperparameters: SCENHyperparameters, method: EditMethod,
                cases: [EditCase]) throws {
        try hyperparameters.validate(for: model.config)
        self.model = model; self.tokenizer = tokenizer; self.hyperparameters = hyperparameters
        self.method = method; self.cases = cases
        session = model.makeSession(capacity: 512)
    }

    /// Prompt as fed to the model: ZsRE questions templated, CounterFact completions as they are.
    public func formatted(_ prompt: String, _ kind: EditCase.Kind) -> String {
        kind == .zsre ? hyperparameters.templated(prompt) : prompt
    }

    public func request(for c: EditCase) -> EditRequest {
        EditRequest(id: c.id, prompt: formatted(c.prompt, c.kind), target: " " + c.target)
    }

    public func run(evalEvery: Int? = nil) throws -> EvalReport {
        let hp = hyperparameters
        var editor: SCENEditor?
        var index: EditIndex?
        var poolSeconds = 0.0
        if method == .scen {
            let t0 = Date()
            editor = try SCENEditor(model: model, tokenizer: tokenizer, hyperparameters: hp) { [progress] done, total in
                if done % 25 == 0 || done == total { progress?("negative pool \(done)/\(total)") }
            }
            poolSeconds = Date().timeIntervalSince(t0)
            index = editor!.emptyIndex()
        }
        var ftWeight = model.blocks[hp.layer].down
        var seconds: [Double] = [], bytes: [Int] = [], steps: [Int] = []
        var refined = 0
        var along: [EvalScores] = []
        let started = Date()
        for (i, c) in cases.enumerated() {
            let t0 = DispatchTime.now().uptimeNanoseconds
            switch method {
            case .scen:
                let out = try editor!.edit(request(for: c), index: index!)
                index = out.index
                seconds.append(out.seconds)
                bytes.append(out.entry.byteCount)
                steps.append(out.expertSteps)
                refined += out.refinedNeurons.count
            case .ft:
                var forwards = 0
                let seq = try TrainingSequence(tokenizer: tokenizer, prompt: request(for: c).prompt, target: " " + c.target)
                let r = try ExpertTrainer.train(model: model, hyperparameters: hp, sequences: [seq], base: ftWeight,
                                                seed: hp.seed ^ SplitMix64.hash(c.id), prefixForwards: &forwards)
                ftWeight = Self.merged(ftWeight, r.expert)
                seconds.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
                bytes.append(r.expert.byteCount)
                steps.append(r.steps)
            case .none:
                break
            }
            let rate = Date().timeIntervalSince(started) / Double(i + 1)
            progress?("[\(method.rawValue)] edit \(i + 1)/\(cases.count) \(bar(i + 1, cases.count)) \(String(format: "%.2f", rate)) s/edit")
            if let k = evalEvery, k > 0, (i + 1) % k == 0, i + 1 < cases.count {
                along.append(try evaluate(Array(cases.prefix(i + 1)), index: index, ftWeight: ftWeight))
            }
        }
        let final = try evaluate(cases, index: index, ftWeight: ftWeight)
        along.append(final)
        func pct(_ p: Double) -> Double {
            guard !seconds.isEmpty else { return 0 }
            let s = seconds.sorted()
            return s[min(s.count - 1, Int((p * Double(s.count - 1)).rounded()))]
        }
        return EvalReport(
            method: method.rawValue, data: "", edits: cases.count,
            reliability: final.reliability, generality: final.generality, locality: final.locality,
            reliability_em: final.reliability_em, generality_em: final.generality_em,
            edit_seconds_p50: pct(0.5), edit_seconds_p95: pct(0.95),
            bytes_per_edit: bytes.isEmpty ? 0 : Double(bytes.reduce(0, +)) / Double(bytes.count),
            fire_prompt_own: final.fire_prompt_own, fire_rephrase_own: final.fire_rephrase_own,
            fire_prompt: final.fire_prompt, fire_rephrase: final.fire_rephrase, fire_locality: final.fire_locality,
            refined_neurons: refined,
            expert_steps_mean: steps.isEmpty ? 0 : Double(steps.reduce(0, +)) / Double(steps.count),
            pool_seconds: poolSeconds, config: hp, along_the_way: along)
    }

    /// W_acc + B·A (lowrank) or W' (full).
    static func merged(_ w: Matrix, _ e: Expert) -> Matrix {
        guard e.form == .lowRank else { return e.b }
        var out = w
        let r = e.a.rows, f = e.a.cols
        out.values.withUnsafeMutableBufferPointer { o in e.b.values.withUnsafeBufferPointer { b in e.a.values.withUnsafeBufferPointer { a in
            BLAS.gemmNN(m: w.rows, n: f, k: r, a: b.baseAddress!, lda: r, b: a.baseAddress!, ldb: f, beta: 1, c: o.baseAddress!, ldc: f)
        } } }
        return out
    }

    private func bar(_ done: Int, _ total: Int) -> String {
        let w = 24, n = total > 0 ? done * w / total : w
        return "▕" + String(repeating: "█", count: n) + String(repeating: " ", count: w - n) + "▏"
    }

    /// Evaluates `cases` (all already edited) under the current method state.
    func evaluate(_ cases: [EditCase], index: EditIndex?, ftWeight: Matrix) throws -> EvalScores {
        let hp = hyperparameters
        let fixed: FixedEditor? = method == .ft ? FixedEditor(layer: hp.layer, edit: DownProjectionReplacement(weight: ftWeight)) : nil
        func editor() -> (any DownProjectionEditor)? {
            switch method {
            case .scen: return index!.makeRouter()
            case .ft: return fixed
            case .none: return nil
            }
        }
        var rel = 0.0, relEM = 0.0, gen = 0.0, genEM = 0.0, genN = 0, loc = 0.0, locN = 0
        var fireP = 0, fireOwnP = 0, fireR = 0, fireOwnR = 0, fireL = 0
        for (i, c) in cases.enumerated() {
            if (i + 1) % 10 == 0 || i + 1 == cases.count {
                progress?("[\(method.rawValue)] evaluating \(i + 1)/\(cases.count) \(bar(i + 1, cases.count))")
            }
            let target = " " + c.target
            // Reliability.
            let ed = editor()
            let (acc, _) = try teacherForced(formatted(c.prompt, c.kind), target, editor: ed)
            rel += acc
            if let r = ed as? SCENRouter, let d = r.decision { fireP += 1; if d.editID == c.id { fireOwnP += 1 } }
            relEM += try exactMatch(formatted(c.prompt, c.kind), target, editor: editor()) ? 1 : 0
            // Generality.
            for p in c.rephrases {
                let ed = editor()
                gen += try teacherForced(formatted(p, c.kind), target, editor: ed).accuracy
                if let r = ed as? SCENRouter, let d = r.decision { fireR += 1; if d.editID == c.id { fireOwnR += 1 } }
                genEM += try exactMatch(formatted(p, c.kind), target, editor: editor()) ? 1 : 0
                genN += 1
            }
            // Locality.
            if baseLocality[i] == nil || baseLocality[i]!.count != c.localityPrompts.count {
                baseLocality[i] = try c.localityPrompts.map { try teacherForced($0, " " + c.localityAnswer, editor: nil).argmax }
            }
            for (j, p) in c.localityPrompts.enumerated() {
                let ed = editor()
                let got = try teacherForced(p, " " + c.localityAnswer, editor: ed).argmax
                let want = baseLocality[i]![j]
                loc += want.isEmpty ? 1 : Double(zip(got, want).filter { $0 == $1 }.count) / Double(want.count)
                locN += 1
                if let r = ed as? SCENRouter, r.decision != nil { fireL += 1 }
            }
        }
        let n = Double(max(cases.count, 1))
        return EvalScores(edits: cases.count, reliability: rel / n, generality: genN > 0 ? gen / Double(genN) : 0,
                          locality: locN > 0 ? loc / Double(locN) : 1, reliability_em: relEM / n,
                          generality_em: genN > 0 ? genEM / Double(genN) : 0,
                          fire_prompt_own: Double(fireOwnP) / n, fire_rephrase_own: genN > 0 ? Double(fireOwnR) / Double(genN) : 0,
                          fire_prompt: Double(fireP) / n, fire_rephrase: genN > 0 ? Double(fireR) / Double(genN) : 0,
                          fire_locality: locN > 0 ? Double(fireL) / Double(locN) : 0)
    }

    /// Teacher-forced: the share of `answer`'s tokens that are the argmax after `prompt` + the
    /// preceding answer tokens, and the argmaxes themselves.
    public func teacherForced(_ prompt: String, _ answer: String, editor: (any DownProjectionEditor)?) throws -> (accuracy: Double, argmax: [Int32]) {
        let p = tokenizer.encode(prompt, addBOS: true), a = tokenizer.encode(answer, addBOS: false)
        guard !a.isEmpty else { return (1, []) }
        // As a request is served: the prompt alone is prefilled (the router keys on its last
        // token), then the answer tokens run under the edit chosen there.
        session.reset()
        var logits = [try session.prefill(p, editor: editor)]
        if a.count > 1 { logits += try session.prefill(Array(a.dropLast()), logitRows: Array(0..<(a.count - 1))) }
        let argmax = logits.map { z in Int32(z.withUnsafeBufferPointer { Kernels.argmax($0.baseAddress!, count: $0.count) }) }
        let hits = zip(argmax, a).filter { $0 == $1 }.count
        return (Double(hits) / Double(a.count), argmax)
    }

    /// Whether greedy decoding after `prompt` produces exactly `answer`'s tokens.
    public func exactMatch(_ prompt: String, _ answer: String, editor: (any DownProjectionEditor)?) throws -> Bool {
        let p = tokenizer.encode(prompt, addBOS: true), a = tokenizer.encode(answer, addBOS: false)
        return try session.generate(prompt: p, maxTokens: a.count, editor: editor) == a
    }
}
