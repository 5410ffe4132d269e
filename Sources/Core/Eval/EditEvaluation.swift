// The sequential-editing protocol and the metrics of EasyEdit/WISE: T edits applied one after
// another, then all T evaluated (optionally also every K edits along the way).
//   reliability / generality: teacher-forced token accuracy of the target on the prompt / on each
//     rephrase (templated like the prompt); *_em: the greedy answer equals the target exactly.
//   locality: share of the locality answer's tokens where the edited model's argmax equals the
//     unedited model's (teacher-forced on locality_prompt + " " + locality_answer): the
//     benchmark's own locality prompts (ZsRE: raw `nq question:` queries; CounterFact: neighbours).
//   locality_same_format: the same measure on unrelated prompts in the edits' own format — what a
//     deployment with one prompt template sees. ZsRE: questions of cases this run does not edit
//     (SameFormatTraffic), templated, answered by the unedited model's greedy answer;
//     CounterFact: its neighbourhood prompts, which already are same-format.
//   A case without locality prompts is missing (counted in locality_missing), never a 1.0.
//   Same fact corrected twice (same subject and original answer): the standard figures count each
//     fact once, at its latest correction; earlier ones are measured as latest-wins (their prompt
//     and rephrases must now give the latest target).
// Methods: `scen` (experts + indexing neurons + routing), `ft` (FT-L: the same expert training
// applied cumulatively to the one shared down-projection, no routing), `grace` (GRACE's codebook
// of ε-balls at the same layer, GRACE.swift), `none` (unedited model).

import Foundation

public enum EditMethod: String, Codable, Sendable, CaseIterable {
    case scen, ft, grace, none
}

/// What a sequential run has edited so far under one method, and the editor a request gets:
/// SCEN's router over `index`, FT-L's merged down projection for every request, GRACE's
/// codebook lookup, or none. SCEN's edits go through `SCENEditor`; the baselines' through
/// `editBaseline`.
struct MethodState {
    let method: EditMethod
    let model: GemmaModel
    let hyperparameters: SCENHyperparameters
    var index: EditIndex?
    var ftWeight: Matrix?
    var codebook: GRACECodebook

    init(method: EditMethod, model: GemmaModel, hyperparameters hp: SCENHyperparameters, grace: GRACEHyperparameters) {
        self.method = method; self.model = model; hyperparameters = hp
        ftWeight = method == .ft ? model.blocks[hp.layer].down : nil
        codebook = GRACECodebook(layer: hp.layer, hyperparameters: grace)
    }

    /// One edit of FT-L (the expert trained on the running weight, merged into it) or GRACE;
    /// returns the training steps.
    @discardableResult
    mutating func editBaseline(_ request: EditRequest, tokenizer: GemmaTokenizer) throws -> Int {
        let hp = hyperparameters
        let sequence = try TrainingSequence(tokenizer: tokenizer, prompt: request.prompt, target: request.target)
        switch method {
        case .ft:
            var forwards = 0
            var ftHP = hp
            ftHP.keyPooling = .lastToken  // FT-L routes nothing; its keys are unused
            let r = try ExpertTrainer.train(model: model, hyperparameters: ftHP, sequences: [sequence], base: ftWeight,
                                            seed: hp.seed ^ SplitMix64.hash(request.id), prefixForwards: &forwards)
            ftWeight = EditEvaluation.merged(ftWeight!, r.expert)
            return r.steps
        case .grace:
            return try codebook.edit(id: request.id, sequence: sequence, model: model, stopLoss: hp.expertStopLoss)
        case .scen, .none:
            return 0
        }
    }

    /// The editor each request gets now.
    func editors() -> (String) -> (any DownProjectionEditor)? {
        switch method {
        case .scen: return { [index] in index!.makeRouter(request: $0) }
        case .ft:
            let fixed = FixedEditor(layer: hyperparameters.layer, edit: DownProjectionReplacement(weight: ftWeight!))
            return { _ in fixed }
        case .grace: return { [codebook] _ in codebook.makeRouter() }
        case .none: return { _ in nil }
        }
    }

    /// The id of the edit that answered a request read with `editor`, if any.
    static func fired(_ editor: (any DownProjectionEditor)?) -> String? {
        (editor as? SCENRouter)?.decision?.editID ?? (editor as? GRACERouter)?.firedEditID
    }

    var residentBytes: Int { method == .grace ? codebook.residentBytes : index?.residentBytes ?? 0 }
}

/// Always applies one edit (FT-L's shared down-projection).
public final class FixedEditor: DownProjectionEditor {
    public let layer: Int
    public let edit: any DownProjectionEdit
    public init(layer: Int, edit: any DownProjectionEdit) { self.layer = layer; self.edit = edit }
    public func selectEdit(for activations: FFNActivations) -> (any DownProjectionEdit)? { edit }
}

public struct EvalScores: Codable, Sendable {
    public var edits: Int
    /// Cases in the standard figures (the latest correction of each fact).
    public var cases_scored: Int
    public var reliability: Double, generality: Double
    /// nil when no case had locality prompts.
    public var locality: Double?
    public var locality_same_format: Double?
    public var locality_missing: Int
    public var reliability_em: Double, generality_em: Double
    /// Earlier corrections of a fact corrected again later: on their prompt and rephrases, the
    /// teacher-forced accuracy of the latest target (nil: no such pair in the run).
    public var latest_wins: Double?
    public var latest_wins_cases: Int
    /// Every case on its own target, superseded or not (the literature's count, for reference).
    public var reliability_all_cases: Double
    /// Share of prompts / rephrases on which their own edit's neuron fired (scen only).
    public var fire_prompt_own: Double, fire_rephrase_own: Double
    /// Share of prompts / rephrases / locality prompts / same-format prompts on which any edit fired.
    public var fire_prompt: Double, fire_rephrase: Double, fire_locality: Double, fire_same_format: Double
    /// Why rephrases were not routed to their own edit (scen only).
    public var rephrase_misses: RephraseMisses?
}

/// Shares of all rephrases not routed to their own edit, by the first reason that applies.
public struct RephraseMisses: Codable, Sendable {
    /// The own edit's neuron scored ≤ θ.
    public var neuron_silent: Double
    /// The own neuron fired but the key gate turned it away.
    public var gate: Double
    /// The own neuron fired and its key passed, but the rephrase does not name the edit's subject
    /// (`SubjectNames`).
    public var subject: Double
    /// The own edit passed both; another edit answered (higher score or a later correction).
    public var outranked: Double
    /// The own edit was not in the index (held for review or superseded).
    public var absent: Double
}

public struct EvalReport: Codable, Sendable {
    public var method: String
    public var data: String
    public var edits: Int
    public var reliability: Double, generality: Double
    public var locality: Double?
    public var locality_same_format: Double?
    public var locality_missing: Int
    public var reliability_em: Double, generality_em: Double
    public var latest_wins: Double?
    public var latest_wins_cases: Int
    public var reliability_all_cases: Double
    public var edit_seconds_p50: Double, edit_seconds_p95: Double
    /// Edit time p50 of edits 1–1,000, 1,001–2,000, … (how it grows with T).
    public var edit_seconds_p50_per_1000: [Double]
    /// Memory of the final routing table (EditIndex.residentBytes) and this process's peak RSS.
    public var index_bytes: Int, peak_rss_bytes: Int
    /// Edited cases scored (--eval-sample; nil: all).
    public var eval_sample: Int?
    /// Of an edit's time (scen): stage 1 (the expert), and stage 2 with refinement and the blast-radius check.
    public var expert_seconds_p50: Double, neuron_seconds_p50: Double
    public var bytes_per_edit: Double
    public var fire_prompt_own: Double, fire_rephrase_own: Double
    public var fire_prompt: Double, fire_rephrase: Double, fire_locality: Double, fire_same_format: Double
    public var rephrase_misses: RephraseMisses?
    /// Neurons refined (beyond SCEN) over the run, and expert steps mean.
    public var refined_neurons: Int
    public var expert_steps_mean: Double
    public var pool_seconds: Double
    /// How the same-format locality prompts and the simulated reservoir were drawn.
    public var same_format_source: String
    public var same_format_prompts: Int, reservoir_prompts: Int
    /// Edits superseded by meaning, and how many of those really were the same fact (by the data's
    /// subject and original answer); the rest are corrections lost to a wrong supersede.
    public var superseded_by_meaning: Int, superseded_same_fact: Int
    /// Edits held for review by the blast-radius check (not activated), and the mean share of
    /// reservoir keys a new edit fired on.
    public var held_for_review: Int
    public var blast_radius_traffic_mean: Double
    public var config: SCENHyperparameters
    /// GRACE's settings (method `grace`).
    public var grace: GRACEHyperparameters? = nil
    /// Scores after every K edits (--eval-every).
    public var along_the_way: [EvalScores]
    /// The final index evaluated again at other routing thresholds θ (--sweep-theta; training used `config.theta`).
    public var theta_sweep: [ThetaScores]
}

public struct ThetaScores: Codable, Sendable {
    public var theta: Double
    public var scores: EvalScores
}

public final class EditEvaluation {
    public let model: GemmaModel
    public let tokenizer: GemmaTokenizer
    public let hyperparameters: SCENHyperparameters
    public let method: EditMethod
    public let cases: [EditCase]
    public let traffic: SameFormatTraffic
    /// Receives progress lines (the CLI draws them on stderr).
    public var progress: ((String) -> Void)?
    /// GRACE's settings (method `grace`).
    public var grace = GRACEHyperparameters()

    private let session: GemmaSession
    /// Unedited argmaxes on each case's locality answers, by case index.
    private var baseLocality: [Int: [[Int32]]] = [:]
    /// Unedited greedy answers and argmaxes of the same-format prompts, by prompt index.
    private var baseSameFormat: [Int: (answer: String, argmax: [Int32])] = [:]

    public init(model: GemmaModel, tokenizer: GemmaTokenizer, hyperparameters: SCENHyperparameters, method: EditMethod,
                cases: [EditCase], traffic: SameFormatTraffic) throws {
        try hyperparameters.validate(for: model.config)
        self.model = model; self.tokenizer = tokenizer; self.hyperparameters = hyperparameters
        self.method = method; self.cases = cases; self.traffic = traffic
        session = model.makeSession(capacity: 512)
    }

    /// Prompt as fed to the model: ZsRE questions templated, CounterFact completions as they are.
    public func formatted(_ prompt: String, _ kind: EditCase.Kind) -> String {
        kind == .zsre ? hyperparameters.templated(prompt) : prompt
    }

    public func request(for c: EditCase) -> EditRequest {
        EditRequest(id: c.id, prompt: formatted(c.prompt, c.kind), target: " " + c.target)
    }

    private var kind: EditCase.Kind { cases.first?.kind ?? .zsre }

    /// `evalSample`: score only this many edited cases, drawn by a seeded shuffle (all if nil or
    /// larger); a case superseded by a later correction still counts as such when the later one
    /// is not drawn.
    public func run(evalEvery: Int? = nil, sweepTheta: [Float] = [], evalSample: Int? = nil) throws -> EvalReport {
        let hp = hyperparameters
        var editor: SCENEditor?
        var state = MethodState(method: method, model: model, hyperparameters: hp, grace: grace)
        var poolSeconds = 0.0
        var reservoir = TrafficKeys.none
        if method == .scen {
            let t0 = Date()
            editor = try SCENEditor(model: model, tokenizer: tokenizer, hyperparameters: hp) { [progress] done, total in
                if done % 25 == 0 || done == total { progress?("negative pool \(done)/\(total)") }
            }
            var keys: [[Float]] = []
            for (i, p) in traffic.reservoirPrompts.enumerated() {
                keys.append(try editor!.key(of: formatted(p, kind)))
                if (i + 1) % 50 == 0 || i + 1 == traffic.reservoirPrompts.count {
                    progress?("traffic reservoir \(i + 1)/\(traffic.reservoirPrompts.count)")
                }
            }
            reservoir = TrafficKeys(keys: keys)
            poolSeconds = Date().timeIntervalSince(t0)
            state.index = editor!.emptyIndex()
        }
        var seconds: [Double] = [], expertSeconds: [Double] = [], neuronSeconds: [Double] = [], bytes: [Int] = [], steps: [Int] = []
        var refined = 0, held = 0, byMeaning = 0, sameFact = 0
        var blast: [Double] = []
        let factOf = Dictionary(cases.map { ($0.id, $0.factKey) }, uniquingKeysWith: { a, _ in a })
        var along: [EvalScores] = []
        let started = Date()
        for (i, c) in cases.enumerated() {
            let t0 = DispatchTime.now().uptimeNanoseconds
            switch method {
            case .scen:
                let out = try editor!.edit(request(for: c), index: state.index!, traffic: reservoir)
                state.index = out.index
                seconds.append(out.seconds)
                expertSeconds.append(out.expertSeconds)
                neuronSeconds.append(out.neuronSeconds)
                bytes.append(out.entry.byteCount)
                steps.append(out.expertSteps)
                refined += out.refinedNeurons.count
                blast.append(out.blastRadius.trafficShare)
                if out.heldReason != nil { held += 1 }
                byMeaning += out.supersededByMeaning.count
                sameFact += out.supersededByMeaning.filter { c.factKey != nil && factOf[$0] == c.factKey }.count
            case .ft, .grace:
                steps.append(try state.editBaseline(request(for: c), tokenizer: tokenizer))
                seconds.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            case .none:
                break
            }
            let rate = Date().timeIntervalSince(started) / Double(i + 1)
            progress?("[\(method.rawValue)] edit \(i + 1)/\(cases.count) \(bar(i + 1, cases.count)) \(String(format: "%.2f", rate)) s/edit")
            if let k = evalEvery, k > 0, (i + 1) % k == 0, i + 1 < cases.count {
                along.append(try evaluate(Array(cases.prefix(i + 1)), state: state, sample: evalSample))
            }
        }
        let final = try evaluate(cases, state: state, sample: evalSample)
        along.append(final)
        var sweep: [ThetaScores] = []
        if let index = state.index {
            for t in sweepTheta {
                progress?("[\(method.rawValue)] θ = \(t)")
                var swept = state
                swept.index = index.withTheta(t)
                sweep.append(ThetaScores(theta: Double(t), scores: try evaluate(cases, state: swept, sample: evalSample)))
            }
        }
        func pct(_ p: Double, _ values: [Double]? = nil) -> Double {
            let s = (values ?? seconds).sorted()
            guard !s.isEmpty else { return 0 }
            return s[min(s.count - 1, Int((p * Double(s.count - 1)).rounded()))]
        }
        var report = EvalReport(
            method: method.rawValue, data: "", edits: cases.count,
            reliability: final.reliability, generality: final.generality, locality: final.locality,
            locality_same_format: final.locality_same_format, locality_missing: final.locality_missing,
            reliability_em: final.reliability_em, generality_em: final.generality_em,
            latest_wins: final.latest_wins, latest_wins_cases: final.latest_wins_cases,
            reliability_all_cases: final.reliability_all_cases,
            edit_seconds_p50: pct(0.5), edit_seconds_p95: pct(0.95),
            edit_seconds_p50_per_1000: stride(from: 0, to: seconds.count, by: 1000).map {
                pct(0.5, Array(seconds[$0..<min($0 + 1000, seconds.count)]))
            },
            index_bytes: state.residentBytes, peak_rss_bytes: Self.peakResidentBytes(), eval_sample: evalSample,
            expert_seconds_p50: pct(0.5, expertSeconds), neuron_seconds_p50: pct(0.5, neuronSeconds),
            bytes_per_edit: bytes.isEmpty ? 0 : Double(bytes.reduce(0, +)) / Double(bytes.count),
            fire_prompt_own: final.fire_prompt_own, fire_rephrase_own: final.fire_rephrase_own,
            fire_prompt: final.fire_prompt, fire_rephrase: final.fire_rephrase, fire_locality: final.fire_locality,
            fire_same_format: final.fire_same_format, rephrase_misses: final.rephrase_misses,
            refined_neurons: refined,
            expert_steps_mean: steps.isEmpty ? 0 : Double(steps.reduce(0, +)) / Double(steps.count),
            pool_seconds: poolSeconds, same_format_source: traffic.description,
            same_format_prompts: traffic.localityPrompts.count, reservoir_prompts: method == .scen ? traffic.reservoirPrompts.count : 0,
            superseded_by_meaning: byMeaning, superseded_same_fact: sameFact, held_for_review: held,
            blast_radius_traffic_mean: blast.isEmpty ? 0 : blast.reduce(0, +) / Double(blast.count),
            config: hp, along_the_way: along, theta_sweep: sweep)
        if method == .grace { report.grace = grace }
        return report
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

    /// For each case, the index of the latest case of the same fact among `cases` (itself if none later).
    public static func latestOfFact(_ cases: [EditCase]) -> [Int] {
        var last: [String: Int] = [:]
        for (i, c) in cases.enumerated() { if let f = c.factKey { last[f] = i } }
        return cases.enumerated().map { i, c in c.factKey.flatMap { last[$0] } ?? i }
    }

    /// Evaluates `cases` (all already edited) under the current method state.
    func evaluate(_ cases: [EditCase], state: MethodState, sample: Int? = nil) throws -> EvalScores {
        let editor = state.editors()
        let fired = MethodState.fired
        let latest = Self.latestOfFact(cases)
        let drawn = Self.sample(cases.count, sample)
        var rel = 0.0, relEM = 0.0, gen = 0.0, genEM = 0.0, genN = 0, loc = 0.0, locN = 0, missing = 0
        var relAll = 0.0, wins = 0.0, winsN = 0, winsCases = 0, scored = 0
        var fireP = 0, fireOwnP = 0, fireR = 0, fireOwnR = 0, fireL = 0
        var missSilent = 0, missGate = 0, missSubject = 0, missOutranked = 0, missAbsent = 0
        /// Why the rephrase whose routing `router` decided did not go to edit `id`.
        func countMiss(_ router: SCENRouter, id: String) {
            guard router.decision?.editID != id, let key = router.key else { return }
            let idx = router.index
            guard let own = idx.entries.firstIndex(where: { $0.editID == id }) else { missAbsent += 1; return }
            if idx.scores(key: key)[own] <= idx.theta { missSilent += 1 }
            else if let g = idx.keyGate, idx.keyCosine(key, idx.entries[own].neuron.key) < g { missGate += 1 }
            else if !idx.namesSubject(entry: own, in: router.request) { missSubject += 1 }
            else { missOutranked += 1 }
        }
        for (i, c) in cases.enumerated() where drawn?.contains(i) ?? true {
            if (i + 1) % 10 == 0 || i + 1 == cases.count {
                progress?("[\(method.rawValue)] evaluating \(i + 1)/\(cases.count) \(bar(i + 1, cases.count))")
            }
            let target = " " + c.target
            let prompt = formatted(c.prompt, c.kind)
            if latest[i] != i {
                // Superseded by a later correction of the same fact: the latest target must win.
                let newer = " " + cases[latest[i]].target
                winsCases += 1
                relAll += try teacherForced(prompt, target, editor: editor(prompt)).accuracy
                for p in [c.prompt] + c.rephrases {
                    wins += try teacherForced(formatted(p, c.kind), newer, editor: editor(formatted(p, c.kind))).accuracy
                    winsN += 1
                }
                continue
            }
            scored += 1
            // Reliability.
            let ed = editor(prompt)
            let (acc, _) = try teacherForced(prompt, target, editor: ed)
            rel += acc
            relAll += acc
            if let d = fired(ed) { fireP += 1; if d == c.id { fireOwnP += 1 } }
            relEM += try exactMatch(prompt, target, editor: editor(prompt)) ? 1 : 0
            // Generality.
            for p in c.rephrases {
                let ed = editor(formatted(p, c.kind))
                gen += try teacherForced(formatted(p, c.kind), target, editor: ed).accuracy
                if let d = fired(ed) { fireR += 1; if d == c.id { fireOwnR += 1 } }
                if let router = ed as? SCENRouter { countMiss(router, id: c.id) }
                genEM += try exactMatch(formatted(p, c.kind), target, editor: editor(formatted(p, c.kind))) ? 1 : 0
                genN += 1
            }
            // Locality (the benchmark's prompts).
            if c.localityPrompts.isEmpty { missing += 1 }
            if baseLocality[i] == nil || baseLocality[i]!.count != c.localityPrompts.count {
                baseLocality[i] = try c.localityPrompts.map { try teacherForced($0, " " + c.localityAnswer, editor: nil).argmax }
            }
            for (j, p) in c.localityPrompts.enumerated() {
                let ed = editor(p)
                let got = try teacherForced(p, " " + c.localityAnswer, editor: ed).argmax
                loc += agreement(got, baseLocality[i]![j])
                locN += 1
                if fired(ed) != nil { fireL += 1 }
            }
        }
        // Same-format locality: unrelated prompts in the edits' format, answered by the unedited model.
        var same = 0.0, sameN = 0, fireS = 0
        for (j, p) in traffic.localityPrompts.enumerated() {
            let prompt = formatted(p, kind)
            if baseSameFormat[j] == nil {
                let ids = tokenizer.encode(prompt, addBOS: true)
                var stops: Set<Int32> = [tokenizer.eosID]
                if let e = tokenizer.endOfTurnID { stops.insert(e) }
                stops.formUnion(tokenizer.encode("\n", addBOS: false))
                let out = try session.generate(prompt: ids, maxTokens: 8, stopIDs: stops).filter { !stops.contains($0) }
                let answer = tokenizer.decode(out)
                baseSameFormat[j] = (answer, answer.isEmpty ? [] : try teacherForced(prompt, answer, editor: nil).argmax)
            }
            let (answer, want) = baseSameFormat[j]!
            guard !want.isEmpty else { continue }
            let ed = editor(prompt)
            same += agreement(try teacherForced(prompt, answer, editor: ed).argmax, want)
            sameN += 1
            if fired(ed) != nil { fireS += 1 }
            if (j + 1) % 50 == 0 { progress?("[\(method.rawValue)] same-format locality \(j + 1)/\(traffic.localityPrompts.count)") }
        }
        // CounterFact's neighbourhood prompts already are the edits' format.
        let neighbours = kind == .counterfact
        let n = Double(max(scored, 1))
        return EvalScores(edits: cases.count, cases_scored: scored, reliability: rel / n, generality: genN > 0 ? gen / Double(genN) : 0,
                          locality: locN > 0 ? loc / Double(locN) : nil,
                          locality_same_format: neighbours ? (locN > 0 ? loc / Double(locN) : nil) : (sameN > 0 ? same / Double(sameN) : nil),
                          locality_missing: missing, reliability_em: relEM / n,
                          generality_em: genN > 0 ? genEM / Double(genN) : 0,
                          latest_wins: winsN > 0 ? wins / Double(winsN) : nil, latest_wins_cases: winsCases,
                          reliability_all_cases: relAll / Double(max(cases.count, 1)),
                          fire_prompt_own: Double(fireOwnP) / n, fire_rephrase_own: genN > 0 ? Double(fireOwnR) / Double(genN) : 0,
                          fire_prompt: Double(fireP) / n, fire_rephrase: genN > 0 ? Double(fireR) / Double(genN) : 0,
                          fire_locality: locN > 0 ? Double(fireL) / Double(locN) : 0,
                          fire_same_format: neighbours ? (locN > 0 ? Double(fireL) / Double(locN) : 0) : (sameN > 0 ? Double(fireS) / Double(sameN) : 0),
                          rephrase_misses: method != .scen || genN == 0 ? nil
                            : RephraseMisses(neuron_silent: Double(missSilent) / Double(genN), gate: Double(missGate) / Double(genN),
                                             subject: Double(missSubject) / Double(genN),
                                             outranked: Double(missOutranked) / Double(genN), absent: Double(missAbsent) / Double(genN)))
    }

    /// This process's peak resident set (getrusage; Linux reports KiB).
    static func peakResidentBytes() -> Int {
        var usage = rusage()
        return getrusage(RUSAGE_SELF.rawValue, &usage) == 0 ? Int(usage.ru_maxrss) * 1024 : 0
    }

    /// `size` of `count` indices by a seeded shuffle (nil: all of them).
    static func sample(_ count: Int, _ size: Int?) -> Set<Int>? {
        guard let size, size < count else { return nil }
        var rng = SplitMix64(seed: 0x5A3_91E)
        var order = Array(0..<count)
        for i in stride(from: count - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        return Set(order.prefix(size))
    }

    /// Share of positions where `got` equals `want` (want non-empty).
    private func agreement(_ got: [Int32], _ want: [Int32]) -> Double {
        want.isEmpty ? 1 : Double(zip(got, want).filter { $0 == $1 }.count) / Double(want.count)
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
