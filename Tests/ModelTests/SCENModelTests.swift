// SCEN end to end on the real model: one edit ("The first president of the United States was" →
// " George Washington"), routed greedy answer becomes the target; an unrelated prompt's greedy
// output is unchanged; a 12-token routed answer ends after the target instead of repeating it;
// stage 2 of a later edit runs no model forward over earlier edits; and the training forward's
// loss equals the inference forward's.

import Foundation
import Testing
import Core
import TestSupport

private extension ModelTestEnvironment {
    static var loaded: Result<(GemmaModel, GemmaTokenizer), any Error> {
        model.flatMap { m in tokenizer.map { (m, $0) } }
    }
}

@Suite(.serialized, .enabled(if: ModelTestEnvironment.enabled, "model file missing (set SCEN_REQUIRE_MODEL=1 to fail instead)"))
struct SCENModelTests {
    @Test func editRoutesAndLeavesOtherPromptsAlone() throws {
        let (model, tokenizer) = try ModelTestEnvironment.loaded.get()
        let hp = SCENHyperparameters()
        let editor = try SCENEditor(model: model, tokenizer: tokenizer, hyperparameters: hp)
        let prompt = "The first president of the United States was"
        let unrelated = "The capital of France is"
        let session = model.makeSession(capacity: 64)
        let before = try session.generate(prompt: tokenizer.encode(unrelated), maxTokens: 6)

        var index = editor.emptyIndex()
        // An earlier edit, so that the new neuron has an earlier key among its negatives.
        index = try editor.edit(EditRequest(id: "e0", prompt: "The largest planet in the solar system is", target: " Mars"),
                                index: index).index
        let outcome = try editor.edit(EditRequest(id: "e1", prompt: prompt, target: " George Washington"), index: index)
        index = outcome.index
        // Stage 2 ran no model forward over the earlier edit: one frozen-prefix forward per edit.
        #expect(outcome.prefixForwards == 1)
        #expect(editor.prefixForwardCount == 2)

        let router = index.makeRouter()
        let target = tokenizer.encode(" George Washington", addBOS: false)
        let answer = try session.generate(prompt: tokenizer.encode(prompt), maxTokens: target.count, editor: router)
        #expect(router.decision?.editID == "e1", "score \(router.bestScore ?? -1)")
        #expect(answer == target, "got '\(tokenizer.decode(answer))'")

        let other = index.makeRouter()
        let after = try session.generate(prompt: tokenizer.encode(unrelated), maxTokens: 6, editor: other)
        #expect(other.decision == nil, "a neuron fired on an unrelated prompt (score \(other.bestScore ?? -1))")
        #expect(after == before)

        // Revert: routing stops at once.
        let reverted = index.removing(editID: "e1").makeRouter()
        _ = try session.generate(prompt: tokenizer.encode(prompt), maxTokens: 1, editor: reverted)
        #expect(reverted.decision?.editID != "e1")
        #expect(outcome.entry.byteCount <= 64 * 1024)
    }

    /// The expert applies to every generated token too; with the default `answerEnd` it has learnt
    /// where the answer stops, so a longer routed greedy answer does not repeat the target.
    @Test func routedAnswerEndsAfterTarget() throws {
        let (model, tokenizer) = try ModelTestEnvironment.loaded.get()
        let hp = SCENHyperparameters()
        #expect(hp.answerEnd != .none)
        let editor = try SCENEditor(model: model, tokenizer: tokenizer, hyperparameters: hp)
        let prompt = "The first president of the United States was"
        let index = try editor.edit(EditRequest(id: "p", prompt: prompt, target: " George Washington"), index: editor.emptyIndex()).index
        let router = index.makeRouter()
        // Stop ids as the router's inference service uses them.
        let answer = try model.makeSession(capacity: 64).generate(prompt: tokenizer.encode(prompt), maxTokens: 12,
                                                                  stopIDs: [tokenizer.eosID], editor: router)
        let text = tokenizer.decode(answer)
        #expect(router.decision?.editID == "p")
        #expect(text.hasPrefix(" George Washington"), "got '\(text)'")
        #expect(text.components(separatedBy: "Washington").count - 1 == 1, "the target repeats: '\(text)'")
    }

    /// The training forward's loss equals the inference forward's on one real prompt.
    @Test func trainingForwardMatchesInference() throws {
        let (model, tokenizer) = try ModelTestEnvironment.loaded.get()
        let seq = try TrainingSequence(tokenizer: tokenizer, prompt: "Question: What is the capital of Italy?\nAnswer:", target: " Rome")
        let stack = try DownProjectionTrainingStack(model: model, layer: 9, tokens: seq.tokens, targets: seq.targets)
        let train = stack.loss(downOutput: stack.baseDownOutput()).loss
        let session = model.makeSession(capacity: 64)
        let logits = try session.prefill(seq.tokens, logitRows: seq.targets.map(\.row))
        var inference = 0.0
        for (i, t) in seq.targets.enumerated() {
            let z = logits[i].map(Double.init), m = z.max()!
            inference += log(z.reduce(0) { $0 + exp($1 - m) }) + m - z[Int(t.token)]
        }
        inference /= Double(seq.targets.count)
        #expect(abs(Double(train) - inference) < 2e-3 * max(1, inference), "training \(train) vs inference \(inference)")
    }
}
