// The router's continuous batching on the real model: answers do not depend on what shares the
// batch (different experts per sequence, greedy and seeded sampling), a long prompt read in
// chunks is routed on all its rows and answered as if read at once, and a cancelled request
// frees its slot.

import Core
import Foundation
import TestSupport
import Testing

import Router

/// An editor that always fires `edit` (or nothing) and records the rows it was shown.
final class FixedEditor: RequestEditor, @unchecked Sendable {
    let layer: Int
    let edit: (any DownProjectionEdit)?
    let id: Int64
    private(set) var rowsSeen: [Int] = []

    init(layer: Int, edit: (any DownProjectionEdit)?, id: Int64) { self.layer = layer; self.edit = edit; self.id = id }

    func selectEdit(for activations: FFNActivations) -> (any DownProjectionEdit)? {
        rowsSeen.append(activations.rowCount)
        return edit
    }

    var firedEdit: (id: Int64, score: Float)? { rowsSeen.isEmpty || edit == nil ? nil : (id, 1) }
}

@Suite("Continuous batching (real model)", .enabled(if: ModelTestEnvironment.enabled), .serialized)
struct ContinuousBatchingTests {
    static let prompts = [
        "The first president of the United States was",
        "Water boils at a temperature of",
        "Question: Which programming language is GNOME Chess written in?\nAnswer:",
        "Photosynthesis is the process by which plants",
        "The capital city of Australia is",
    ]

    /// Deterministic pseudo-random values in [-a, a].
    static func values(_ n: Int, seed: UInt64, scale a: Float) -> [Float] {
        var state = seed
        return (0..<n).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return (Float(state >> 40) / Float(1 << 24) * 2 - 1) * a
        }
    }

    /// Request i's edit: a rank-4 delta at layer 6, a replaced down projection at layer 9, or none.
    static func editor(_ i: Int, model: GemmaModel) -> FixedEditor {
        let c = model.config
        switch i % 3 {
        case 0:
            let a = Matrix(rows: 4, cols: c.ffnSize, values: values(4 * c.ffnSize, seed: UInt64(i), scale: 0.02))
            let b = Matrix(rows: c.hiddenSize, cols: 4, values: values(c.hiddenSize * 4, seed: UInt64(i) + 99, scale: 0.5))
            return FixedEditor(layer: 6, edit: LowRankDownProjectionDelta(a: a, b: b), id: Int64(i))
        case 1:
            var w = model.blocks[9].down
            for k in stride(from: 0, to: w.values.count, by: 7) { w.values[k] *= 1.5 }
            return FixedEditor(layer: 9, edit: DownProjectionReplacement(weight: w), id: Int64(i))
        default:
            return FixedEditor(layer: 6, edit: nil, id: Int64(i))
        }
    }

    /// Request i's options: greedy, or sampled with its own seed.
    static func options(_ i: Int) -> GenerationOptions {
        GenerationOptions(maxTokens: 12 + i % 5, sampling: i % 2 == 0 ? .greedy : SamplingParameters(temperature: 0.9, topP: 0.95, seed: UInt64(i)))
    }

    /// 12 requests at once (up to 12 sequences per decode step, three kinds of edit, greedy and
    /// sampled) give the same tokens as each request alone.
    @Test func answersDoNotDependOnTheBatch() async throws {
        let (model, tokenizer) = (try ModelTestEnvironment.model.get(), try ModelTestEnvironment.tokenizer.get())
        let n = 12
        let editors = (0..<n).map { Self.editor($0, model: model) }
        let alone = InferenceService(model: model, tokenizer: tokenizer, maxSequences: 1, queueLimit: 0, maxTokensCap: 64, context: 256)
        var expected: [GenerationResult] = []
        for i in 0..<n {
            let e = editors[i]
            expected.append(try await alone.generate(prompt: Self.prompts[i % Self.prompts.count], options: Self.options(i), makeEditor: { e }))
        }
        #expect(alone.largestBatch == 1)

        let batched = InferenceService(model: model, tokenizer: tokenizer, maxSequences: 16, queueLimit: 0, maxTokensCap: 64, context: 256)
        let together = try await withThrowingTaskGroup(of: (Int, GenerationResult).self) { group in
            for i in 0..<n {
                let e = editors[i]
                group.addTask {
                    (i, try await batched.generate(prompt: Self.prompts[i % Self.prompts.count], options: Self.options(i), makeEditor: { e }))
                }
            }
            return try await group.reduce(into: [Int: GenerationResult]()) { $0[$1.0] = $1.1 }
        }
        #expect(batched.largestBatch >= 8, "the requests were not decoded together (largest batch \(batched.largestBatch))")
        for i in 0..<n {
            let t = try #require(together[i])
            #expect(t.ids == expected[i].ids, "request \(i): \(t.text.debugDescription) together, \(expected[i].text.debugDescription) alone")
            #expect(t.edit?.id == expected[i].edit?.id)
        }
        // The edits changed the answers (otherwise a dropped expert would go unnoticed).
        let plain = try await alone.generate(prompt: Self.prompts[0], options: Self.options(0), makeEditor: { nil })
        #expect(plain.ids != expected[0].ids)
        #expect(expected[0].edit?.id == 0 && expected[2].edit == nil)
    }

    /// A prompt longer than the prefill chunk is read in several steps, routed once on all its
    /// rows, and answered as when read in one step, with an edit (read again with the expert
    /// from the start) and without.
    @Test(arguments: [true, false])
    func aChunkedPromptIsRoutedOnAllItsRows(fires: Bool) async throws {
        let (model, tokenizer) = (try ModelTestEnvironment.model.get(), try ModelTestEnvironment.tokenizer.get())
        let prompt = "The history of the city begins with a small fishing village on the river bank, where traders from the "
            + "north and the south met every summer to exchange salt, furs and iron tools. Over the centuries the village grew "
            + "into a market town, and its most famous building is"
        let tokens = tokenizer.encode(prompt, addBOS: true).count
        #expect(tokens > 40)
        func answer(chunk: Int) async throws -> (GenerationResult, [Int]) {
            let service = InferenceService(model: model, tokenizer: tokenizer, maxSequences: 2, queueLimit: 0, maxTokensCap: 64,
                                           context: 512, prefillChunk: chunk)
            let editor = Self.editor(fires ? 0 : 2, model: model)
            let result = try await service.generate(prompt: prompt, options: GenerationOptions(maxTokens: 10), makeEditor: { editor })
            return (result, editor.rowsSeen)
        }
        let (whole, wholeRows) = try await answer(chunk: 4096)
        let (chunked, chunkedRows) = try await answer(chunk: 16)
        #expect(wholeRows == [tokens])
        #expect(chunkedRows == [tokens], "the editor saw \(chunkedRows) rows; the prompt has \(tokens)")
        #expect(chunked.ids == whole.ids, "\(chunked.text.debugDescription) chunked, \(whole.text.debugDescription) whole")
        #expect((chunked.edit != nil) == fires)
    }

    /// Cancelling a request's task ends its generation and frees its slot: with one slot and no
    /// queue, the next request is served long before the cancelled one could have finished.
    @Test func aCancelledRequestFreesItsSlot() async throws {
        let (model, tokenizer) = (try ModelTestEnvironment.model.get(), try ModelTestEnvironment.tokenizer.get())
        let service = InferenceService(model: model, tokenizer: tokenizer, maxSequences: 1, queueLimit: 0, maxTokensCap: 3000, context: 4096)
        let long = Task { try await service.generate(prompt: "Tell me a very long story", options: GenerationOptions(maxTokens: 3000), makeEditor: { nil }) }
        while service.active == 0 { try await Task.sleep(for: .milliseconds(20)) }
        await #expect(throws: (any Error).self) {
            _ = try await service.generate(prompt: "Hi", options: GenerationOptions(maxTokens: 1), makeEditor: { nil })
        }
        long.cancel()
        await #expect(throws: CancellationError.self) { _ = try await long.value }
        let start = Date()
        let next = try await service.generate(prompt: "Hi", options: GenerationOptions(maxTokens: 2), makeEditor: { nil })
        #expect(next.ids.count == 2)
        #expect(Date().timeIntervalSince(start) < 10)
        #expect(service.active == 0)
    }
}
