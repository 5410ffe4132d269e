// SCEN's second benchmark, long-form corrections ("Hallucination"): each edit's prompt is a
// WikiBio passage and its target the correct next sentence. Reported before and after T
// sequential edits, as SCEN's table does: the perplexity of the edited targets, of passages the
// model should keep (`hall_accurates.json`: `text` → `labels`) and of unrelated long text
// (`hall_open_webtext.json`), plus how often each kind of input fires an edit.
//
// Every figure is teacher-forced as a request is served: the prompt is read with the router
// consulted (its edit, if any, applies from then on), then the continuation's tokens are scored.
// An OpenWebText passage has no separate continuation: its first half (at most 128 tokens) is the
// prompt and the rest (up to 256 tokens in all) is scored. Perplexity is exp of the mean negative
// log-likelihood over a continuation's tokens, averaged over passages.

import Foundation

/// The benchmark's three files in one folder: `hallucination-edits.jsonl` (id, prompt, target,
/// concept per line), `hall_accurates.json` ([{text, labels, concept}]) and
/// `hall_open_webtext.json` ([{text}]).
public struct PassageBenchmark: Sendable {
    public struct Edit: Sendable {
        public var id: String, prompt: String, target: String, concept: String
    }
    public struct Kept: Sendable {
        public var text: String, labels: String, concept: String
    }
    public var edits: [Edit]
    public var kept: [Kept]
    public var openWebText: [String]

    /// Reads `hallucination-edits.jsonl`, `hall_accurates.json` and `hall_open_webtext.json` in `folder`.
    public static func load(folder: String) throws -> PassageBenchmark {
        let dir = URL(fileURLWithPath: folder)
        struct EditLine: Decodable { var id: String; var prompt: String; var target: String; var concept: String? }
        struct KeptLine: Decodable { var text: String; var labels: String; var concept: String? }
        struct TextLine: Decodable { var text: String }
        func read(_ name: String) throws -> Data {
            let url = dir.appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: url.path) else { throw EditBenchmarkError.unreadable(url.path) }
            return data
        }
        let decoder = JSONDecoder()
        var edits: [Edit] = []
        for (n, line) in String(decoding: try read("hallucination-edits.jsonl"), as: UTF8.self).split(separator: "\n").enumerated() {
            guard !line.allSatisfy(\.isWhitespace) else { continue }
            do {
                let e = try decoder.decode(EditLine.self, from: Data(line.utf8))
                edits.append(Edit(id: e.id, prompt: e.prompt, target: e.target, concept: e.concept ?? ""))
            } catch {
                throw EditBenchmarkError.badLine(n + 1, "\(error)")
            }
        }
        let kept = try decoder.decode([KeptLine].self, from: try read("hall_accurates.json"))
            .map { Kept(text: $0.text, labels: $0.labels, concept: $0.concept ?? "") }
        let owt = try decoder.decode([TextLine].self, from: try read("hall_open_webtext.json")).map(\.text)
        return PassageBenchmark(edits: edits, kept: kept, openWebText: owt)
    }
}

public struct PassageReport: Codable, Sendable {
    public var method: String
    public var data: String
    public var edits: Int
    /// Mean perplexity of the edited targets after their passages, before and after editing.
    public var edited_ppl_before: Double, edited_ppl: Double
    /// Mean perplexity of the kept passages' labels, before and after.
    public var kept_ppl_before: Double, kept_ppl: Double
    /// Mean perplexity of the OpenWebText passages' second halves, before and after.
    public var owt_ppl_before: Double, owt_ppl: Double
    public var kept_passages: Int, owt_passages: Int
    /// Shares that fire some edit (SCEN): edited passages (and their own edit), kept, OpenWebText.
    public var fire_edited: Double, fire_edited_own: Double, fire_kept: Double, fire_owt: Double
    public var edit_seconds_p50: Double, edit_seconds_p95: Double
    public var expert_seconds_p50: Double, neuron_seconds_p50: Double
    public var held_for_review: Int
    public var prompt_tokens_mean: Double, target_tokens_mean: Double
    public var reservoir_prompts: Int
    public var index_bytes: Int, peak_rss_bytes: Int
    public var config: SCENHyperparameters
    /// GRACE's settings (method `grace`).
    public var grace: GRACEHyperparameters? = nil
}

public final class PassageEvaluation {
    public let model: GemmaModel
    public let tokenizer: GemmaTokenizer
    public let hyperparameters: SCENHyperparameters
    public let method: EditMethod
    public let edits: [PassageBenchmark.Edit]
    public let kept: [PassageBenchmark.Kept]
    public let openWebText: [String]
    /// Unedited passages of the same kind (other people's WikiBio passages) whose routing keys
    /// stand for the deployment's traffic (negatives and blast radius); never measured.
    public let reservoir: [String]
    public var progress: ((String) -> Void)?
    /// GRACE's settings (method `grace`).
    public var grace = GRACEHyperparameters()

    private let session: GemmaSession
    /// Longest prompt + continuation scored.
    static let capacity = 1024

    public init(model: GemmaModel, tokenizer: GemmaTokenizer, hyperparameters: SCENHyperparameters, method: EditMethod,
                edits: [PassageBenchmark.Edit], kept: [PassageBenchmark.Kept], openWebText: [String], reservoir: [String]) throws {
        try hyperparameters.validate(for: model.config)
        self.model = model; self.tokenizer = tokenizer; self.hyperparameters = hyperparameters; self.method = method
        self.edits = edits; self.kept = kept; self.openWebText = openWebText; self.reservoir = reservoir
        session = model.makeSession(capacity: Self.capacity)
    }

    /// A scored input: the prompt the router reads and the continuation whose perplexity counts.
    struct Scored {
        var prompt: String
        var promptIDs: [Int32]
        var continuation: [Int32]
    }

    private func scored(prompt: String, continuation: String) -> Scored {
        var ids = tokenizer.encode(prompt, addBOS: true)
        var cont = tokenizer.encode(continuation, addBOS: false)
        let room = Self.capacity - 1
        if ids.count + cont.count > room { cont = Array(cont.prefix(max(1, room - ids.count))) }
        if ids.count + cont.count > room { ids = Array(ids.prefix(room - cont.count)) }
        return Scored(prompt: prompt, promptIDs: ids, continuation: cont)
    }

    /// An OpenWebText passage: its first half (≤ 128 tokens) as the prompt, the rest (≤ 256 in all) scored.
    private func scored(openWebText text: String) -> Scored {
        let all = Array(tokenizer.encode(text, addBOS: true).prefix(256))
        let split = min(128, max(2, all.count / 2))
        return Scored(prompt: tokenizer.decode(Array(all[1..<split])), promptIDs: Array(all[..<split]),
                      continuation: Array(all[split...]))
    }

    public func run() throws -> PassageReport {
        let hp = hyperparameters
        let editedInputs = edits.map { scored(prompt: $0.prompt, continuation: " " + $0.target) }
        let keptInputs = kept.map { scored(prompt: $0.text, continuation: " " + $0.labels) }
        let owtInputs = openWebText.map { scored(openWebText: $0) }.filter { !$0.continuation.isEmpty }

        progress?("unedited perplexities")
        let before = try (perplexities(editedInputs, editor: { _ in nil }, label: "edited, before").mean,
                          perplexities(keptInputs, editor: { _ in nil }, label: "kept, before").mean,
                          perplexities(owtInputs, editor: { _ in nil }, label: "OpenWebText, before").mean)

        var editor: SCENEditor?
        var state = MethodState(method: method, model: model, hyperparameters: hp, grace: grace)
        var traffic = TrafficKeys.none
        if method == .scen {
            editor = try SCENEditor(model: model, tokenizer: tokenizer, hyperparameters: hp) { [progress] done, total in
                if done % 25 == 0 || done == total { progress?("negative pool \(done)/\(total)") }
            }
            traffic = TrafficKeys(keys: try reservoir.map { try editor!.key(of: $0) })
            state.index = editor!.emptyIndex()
        }
        var seconds: [Double] = [], expertSeconds: [Double] = [], neuronSeconds: [Double] = []
        var held = 0
        let started = Date()
        for (i, e) in edits.enumerated() {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let request = EditRequest(id: e.id, prompt: e.prompt, target: " " + e.target)
            switch method {
            case .scen:
                let out = try editor!.edit(request, index: state.index!, traffic: traffic)
                state.index = out.index
                seconds.append(out.seconds); expertSeconds.append(out.expertSeconds); neuronSeconds.append(out.neuronSeconds)
                if out.heldReason != nil { held += 1 }
            case .ft, .grace:
                try state.editBaseline(request, tokenizer: tokenizer)
                seconds.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            case .none:
                break
            }
            let rate = Date().timeIntervalSince(started) / Double(i + 1)
            progress?("[\(method.rawValue)] edit \(i + 1)/\(edits.count) \(String(format: "%.2f", rate)) s/edit")
        }

        let makeEditor = state.editors()
        let after = try (perplexities(editedInputs, editor: makeEditor, label: "edited, after", ownIDs: edits.map(\.id)),
                         perplexities(keptInputs, editor: makeEditor, label: "kept, after"),
                         perplexities(owtInputs, editor: makeEditor, label: "OpenWebText, after"))
        func pct(_ p: Double, _ values: [Double]) -> Double {
            let s = values.sorted()
            return s.isEmpty ? 0 : s[min(s.count - 1, Int((p * Double(s.count - 1)).rounded()))]
        }
        func mean(_ v: [Int]) -> Double { v.isEmpty ? 0 : Double(v.reduce(0, +)) / Double(v.count) }
        var report = PassageReport(
            method: method.rawValue, data: "", edits: edits.count,
            edited_ppl_before: before.0, edited_ppl: after.0.mean, kept_ppl_before: before.1, kept_ppl: after.1.mean,
            owt_ppl_before: before.2, owt_ppl: after.2.mean, kept_passages: keptInputs.count, owt_passages: owtInputs.count,
            fire_edited: after.0.fired, fire_edited_own: after.0.firedOwn, fire_kept: after.1.fired, fire_owt: after.2.fired,
            edit_seconds_p50: pct(0.5, seconds), edit_seconds_p95: pct(0.95, seconds),
            expert_seconds_p50: pct(0.5, expertSeconds), neuron_seconds_p50: pct(0.5, neuronSeconds), held_for_review: held,
            prompt_tokens_mean: mean(editedInputs.map(\.promptIDs.count)), target_tokens_mean: mean(editedInputs.map(\.continuation.count)),
            reservoir_prompts: method == .scen ? reservoir.count : 0,
            index_bytes: state.residentBytes, peak_rss_bytes: EditEvaluation.peakResidentBytes(), config: hp)
        if method == .grace { report.grace = grace }
        return report
    }

    /// Mean perplexity over `inputs`, and the shares that fired some edit and (with `ownIDs`) their own.
    private func perplexities(_ inputs: [Scored], editor: (String) -> (any DownProjectionEditor)?, label: String,
                              ownIDs: [String]? = nil) throws -> (mean: Double, fired: Double, firedOwn: Double) {
        var total = 0.0, fired = 0, own = 0
        for (i, input) in inputs.enumerated() {
            let e = editor(input.prompt)
            total += try perplexity(input, editor: e)
            if let id = MethodState.fired(e) {
                fired += 1
                if let ownIDs, id == ownIDs[i] { own += 1 }
            }
            if (i + 1) % 20 == 0 || i + 1 == inputs.count { progress?("perplexity (\(label)) \(i + 1)/\(inputs.count)") }
        }
        let n = Double(max(inputs.count, 1))
        return (total / n, Double(fired) / n, Double(own) / n)
    }

    /// exp(mean −log p) of the continuation's tokens after the prompt (read with `editor`).
    func perplexity(_ input: Scored, editor: (any DownProjectionEditor)?) throws -> Double {
        let c = input.continuation
        session.reset()
        try session.prefillInPlace(input.promptIDs, editor: editor)
        var nll = session.withLastLogits { Self.negativeLogProbability($0, of: c[0]) }
        if c.count > 1 {
            let rows = try session.prefill(Array(c.dropLast()), logitRows: Array(0..<(c.count - 1)))
            for (i, z) in rows.enumerated() { nll += z.withUnsafeBufferPointer { Self.negativeLogProbability($0, of: c[i + 1]) } }
        }
        return exp(nll / Double(c.count))
    }

    /// −log softmax(z)[token], in Double.
    static func negativeLogProbability(_ z: UnsafeBufferPointer<Float>, of token: Int32) -> Double {
        let top = Double(z.max() ?? 0)
        var sum = 0.0
        for v in z { sum += exp(Double(v) - top) }
        return top + log(sum) - Double(z[Int(token)])
    }
}
