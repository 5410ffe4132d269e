// Batched decoding on the real model: a sequence's logits are the same bits whether it decodes
// alone or beside 1 or 15 other sequences, each with its own prompt, position and edit (a rank-4
// delta, a replaced down projection, or none).

import Foundation
import Testing
import Core
import TestSupport

@Suite(.enabled(if: ModelTestEnvironment.enabled), .serialized)
struct BatchedDecodeTests {
    static let prompts = [
        "The first president of the United States was",
        "Water boils at a temperature of",
        "The capital city of Australia is",
        "Photosynthesis is the process by which plants",
    ]

    /// Deterministic pseudo-random values in [-a, a].
    private static func values(_ n: Int, seed: UInt64, scale a: Float) -> [Float] {
        var state = seed
        return (0..<n).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return (Float(state >> 40) / Float(1 << 24) * 2 - 1) * a
        }
    }

    /// Sequence i's prompt and edit: a low-rank delta at layer 6, a full replacement of layer 9's
    /// down projection, or none.
    private static func prepare(_ session: GemmaSession, _ i: Int, model: GemmaModel, tokenizer: GemmaTokenizer) throws -> Int32 {
        let c = model.config
        session.reset()
        let logits = try session.prefill(tokenizer.encode(prompts[i % prompts.count], addBOS: true))
        switch i % 3 {
        case 0:
            let a = Matrix(rows: 4, cols: c.ffnSize, values: values(4 * c.ffnSize, seed: UInt64(i), scale: 0.02))
            let b = Matrix(rows: c.hiddenSize, cols: 4, values: values(c.hiddenSize * 4, seed: UInt64(i) + 99, scale: 0.5))
            session.setEdit(LowRankDownProjectionDelta(a: a, b: b), layer: 6)
        case 1:
            var w = model.blocks[9].down
            for k in stride(from: 0, to: w.values.count, by: 7) { w.values[k] *= 1.5 }
            session.setEdit(DownProjectionReplacement(weight: w), layer: 9)
        default:
            break
        }
        return Int32(logits.indices.max { logits[$0] < logits[$1] }!)
    }

    /// Greedy steps of each sequence decoded alone, then with n − 1 neighbours: identical logits.
    @Test(arguments: [2, 16])
    func aSequenceDecodesTheSameBitsWithNeighbours(batch n: Int) throws {
        let model = try ModelTestEnvironment.model.get()
        let tokenizer = try ModelTestEnvironment.tokenizer.get()
        let steps = 5
        // Alone: every step's logits of each sequence.
        var alone: [[[Float]]] = []
        let single = model.makeSession(capacity: 64)
        for i in 0..<n {
            var next = try Self.prepare(single, i, model: model, tokenizer: tokenizer)
            var perStep: [[Float]] = []
            for _ in 0..<steps {
                try single.decodeInPlace(next)
                let logits = single.withLastLogits { Array($0) }
                perStep.append(logits)
                next = Int32(logits.indices.max { logits[$0] < logits[$1] }!)
            }
            alone.append(perStep)
        }
        // Together.
        let sessions = (0..<n).map { _ in model.makeSession(capacity: 64) }
        var next = try (0..<n).map { try Self.prepare(sessions[$0], $0, model: model, tokenizer: tokenizer) }
        for step in 0..<steps {
            try GemmaSession.decode(sessions, tokens: next)
            for i in 0..<n {
                let logits = sessions[i].withLastLogits { Array($0) }
                #expect(logits.elementsEqual(alone[i][step]), "sequence \(i) of \(n), step \(step): logits differ from decoding alone")
                next[i] = Int32(logits.indices.max { logits[$0] < logits[$1] }!)
            }
        }
        // The edits changed the outputs (the test would not notice a dropped edit otherwise).
        let plain = model.makeSession(capacity: 64)
        _ = try plain.prefill(tokenizer.encode(Self.prompts[0], addBOS: true))
        try plain.decodeInPlace(try Self.prepare(model.makeSession(capacity: 64), 0, model: model, tokenizer: tokenizer))
        #expect(!plain.withLastLogits { Array($0) }.elementsEqual(alone[0][0]), "the rank-4 delta changed nothing")
    }

    @Test func badBatchesAreRejected() throws {
        let model = try ModelTestEnvironment.model.get()
        let s = model.makeSession(capacity: 8)
        _ = try s.prefill([2, 818])
        #expect(throws: GemmaError.self) { try GemmaSession.decode([s, s], tokens: [1, 2]) }
        #expect(throws: GemmaError.self) { try GemmaSession.decode([s], tokens: [1, 2]) }
        #expect(throws: GemmaError.self) { try GemmaSession.decode([s], tokens: [-1]) }
    }
}
