// The Gemma forward pass on the real model against llama.cpp fixtures (Tests/Fixtures/
// logits.json, greedy.json), using the fixtures' token ids so the tokenizer is not involved.

import Foundation
import Testing
import Core

/// Locations of the real model and the fixtures, relative to the package root.
private enum GemmaTestEnvironment {
    /// The folder holding Package.swift, found by walking up from this file.
    static let packageRoot: URL? = {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while dir.path != "/" {
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) { return dir }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }()

    /// `SCEN_MODEL`, else models/gemma-3-270m-q4_k_m.gguf under the package root.
    static let modelPath: String? = {
        if let path = ProcessInfo.processInfo.environment["SCEN_MODEL"], !path.isEmpty { return path }
        return packageRoot?.appendingPathComponent("models/gemma-3-270m-q4_k_m.gguf").path
    }()

    static let modelExists = modelPath.map { FileManager.default.fileExists(atPath: $0) } ?? false
    static let requireModel = ProcessInfo.processInfo.environment["SCEN_REQUIRE_MODEL"] == "1"
    /// Run when the model is present, or when its absence must fail the run.
    static let enabled = modelExists || requireModel

    /// The real model, loaded once for all tests.
    static let model: Result<GemmaModel, any Error> = {
        guard modelExists, let modelPath else { return .failure(MissingModel(path: modelPath ?? "models/…")) }
        return Result { try GemmaModel(path: modelPath) }
    }()

    struct MissingModel: Error, CustomStringConvertible {
        let path: String
        var description: String { "model file \(path) is missing: run scripts/bootstrap" }
    }

    static func fixture(_ name: String) throws -> Data {
        guard let root = packageRoot else { throw MissingModel(path: "Package.swift not found") }
        return try Data(contentsOf: root.appendingPathComponent("Tests/Fixtures/\(name)"))
    }
}

private struct LogitsCase: Decodable {
    let prompt: String
    let ids: [Int32]
    /// [[id, logit]] by logit, descending.
    let top10: [[Double]]
}

private struct GreedyCase: Decodable {
    let prompt: String
    let prompt_ids: [Int32]
    let ids: [Int32]
    /// llama.cpp's top-1 minus top-2 logit at each step.
    let margins: [Double]
}

/// Tolerance on |our logit − llama.cpp's logit| for llama.cpp's top-10 tokens.
///
/// llama.cpp multiplies quantised weights by activations that it first quantises to 8 bits
/// (Q8_0/Q8_K blocks), keeps the KV cache in F16 and uses an F16 GELU table; we compute in
/// Float32 from the same dequantised weights. Measured on the 27 fixture prompts: max
/// |Δ| = 0.72 (typical 0.1–0.5, mostly a common shift of all logits). The same comparison
/// against llama.cpp running an all-F32 copy of these weights with an F32 KV cache gives max
/// |Δ| = 0.009, so the gap is llama.cpp's activation quantisation, not a model difference.
/// 1.0 leaves margin over the measured 0.72.
private let logitTolerance: Float = 1.0

@Suite(.enabled(if: GemmaTestEnvironment.enabled), .serialized)
struct GemmaForwardTests {
    @Test func logitsMatchLlamaCpp() throws {
        let model = try GemmaTestEnvironment.model.get()
        let cases = try JSONDecoder().decode([LogitsCase].self, from: GemmaTestEnvironment.fixture("logits.json"))
        #expect(cases.count >= 10)
        let session = model.makeSession(capacity: 512)
        var worst: Float = 0
        for c in cases {
            session.reset()
            let logits = try session.prefill(c.ids)
            let top = c.top10.map { (id: Int($0[0]), logit: Float($0[1])) }
            let ours = logits.indices.max { logits[$0] < logits[$1] }!
            if top[0].logit - top[1].logit > logitTolerance {
                #expect(ours == top[0].id, "top-1 differs for \(c.prompt.debugDescription)")
            }
            for (id, logit) in top {
                let delta = abs(logits[id] - logit)
                worst = max(worst, delta)
                #expect(delta <= logitTolerance, "logit of \(id) for \(c.prompt.debugDescription): ours \(logits[id]), llama.cpp \(logit)")
            }
        }
        print("GemmaForwardTests: max |Δlogit| over llama.cpp's top-10 = \(worst)")
    }

    /// Greedy 16-token continuations. After a near-tie (llama.cpp's top-2 margin below
    /// `logitTolerance`) the two implementations may legitimately take different branches, so:
    /// (1) wherever ours first differs from llama.cpp's, llama.cpp's margin at that step must be
    /// below the tolerance (we never leave a confident path), and (2) whole continuations must
    /// be equal on most prompts. Measured: 19/27 equal, every divergence at a margin ≤ 0.21
    /// (llama.cpp disagrees with itself by up to 0.85 logits between batched and one-token
    /// evaluation, `self_diff` in logits.json). Against llama.cpp on an all-F32 copy of the
    /// weights all 27 continuations are equal.
    @Test func greedyContinuationsMatchLlamaCpp() throws {
        let model = try GemmaTestEnvironment.model.get()
        let cases = try JSONDecoder().decode([GreedyCase].self, from: GemmaTestEnvironment.fixture("greedy.json"))
        #expect(cases.count >= 10)
        let session = model.makeSession(capacity: 512)
        var equal = 0
        for c in cases {
            let out = try session.generate(prompt: c.prompt_ids, maxTokens: c.ids.count, stopIDs: [1, 106])
            if out == c.ids { equal += 1; continue }
            let step = zip(out, c.ids).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(out.count, c.ids.count)
            let margin = step < c.margins.count ? c.margins[step] : 0
            #expect(margin < Double(logitTolerance),
                    "\(c.prompt.debugDescription): differs at step \(step) where llama.cpp's margin is \(margin)")
        }
        print("GemmaForwardTests: greedy 16-token continuations equal on \(equal)/\(cases.count)")
        #expect(Double(equal) / Double(cases.count) >= 0.65, "greedy continuations equal on only \(equal) of \(cases.count) prompts")
    }

    @Test func firstPresidentIsAbrahamLincoln() throws {
        let model = try GemmaTestEnvironment.model.get()
        // "The first president of the United States was" with BOS (llama.cpp's tokenisation).
        let prompt: [Int32] = [2, 818, 1171, 6207, 529, 506, 3640, 4184, 691]
        let out = try model.makeSession(capacity: 64).generate(prompt: prompt, maxTokens: 2)
        #expect(out == [37093, 26123], "expected \" Abraham\" \" Lincoln\"")
    }

    /// Decoding token by token gives the logits of a full prefill (real model, KV cache).
    @Test func decodeMatchesPrefill() throws {
        let model = try GemmaTestEnvironment.model.get()
        let ids: [Int32] = [2, 818, 1171, 6207, 529, 506, 3640, 4184, 691, 37093, 26123, 236761]
        let full = try model.makeSession(capacity: 32).prefill(ids, logitRows: [8, 11])
        let session = model.makeSession(capacity: 32)
        let atPrompt = try session.prefill(Array(ids[0...8]))
        var last = atPrompt
        for id in ids[9...] { last = try session.decode(id) }
        var worst: Float = 0
        for (a, b) in [(atPrompt, full[0]), (last, full[1])] {
            for i in a.indices { worst = max(worst, abs(a[i] - b[i])) }
        }
        #expect(worst < 2e-3, "decode vs prefill: \(worst)")
    }
}
