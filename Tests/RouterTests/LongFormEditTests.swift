// A long-form correction on the real model: a passage-length prompt whose next sentence the
// model gets wrong is edited with SCEN; served through the router's engine (the passage read in
// several prefill chunks), its continuation becomes the corrected sentence, and an unrelated
// passage of the same kind is answered exactly as by the unedited model.

import Core
import Foundation
import TestSupport
import Testing

import Router

/// A SCEN routing decision as the router's request editor.
final class PassageEditor: RequestEditor, @unchecked Sendable {
    let router: SCENRouter
    var layer: Int { router.layer }
    init(_ router: SCENRouter) { self.router = router }
    func selectEdit(for activations: FFNActivations) -> (any DownProjectionEdit)? { router.selectEdit(for: activations) }
    var firedEdit: (id: Int64, score: Float)? { router.decision.map { (Int64($0.editID) ?? -1, $0.score) } }
}

@Suite("Long-form edits (real model)", .enabled(if: ModelTestEnvironment.enabled), .serialized)
struct LongFormEditTests {
    static let passage = "This is a Wikipedia passage about ada lovelace. Augusta Ada King, Countess of Lovelace "
        + "(10 December 1815 – 27 November 1852), was an English mathematician and writer, chiefly known for her work on "
        + "Charles Babbage's proposed mechanical general-purpose computer, the Analytical Engine. She was the first to "
        + "recognise that the machine had applications beyond pure calculation."
    static let correction = " Her notes on the engine include what is often called the first published computer program."
    static let unrelated = "This is a Wikipedia passage about pele. Edson Arantes do Nascimento (23 October 1940 – 29 December "
        + "2022), known as Pelé, was a Brazilian professional footballer who played as a forward. He won three FIFA World Cups "
        + "with Brazil and scored over a thousand goals in his career."

    @Test func aPassageEditAnswersItsPassageAndNoOther() async throws {
        let (model, tokenizer) = (try ModelTestEnvironment.model.get(), try ModelTestEnvironment.tokenizer.get())
        let editor = try SCENEditor(model: model, tokenizer: tokenizer, hyperparameters: SCENHyperparameters())
        let target = tokenizer.encode(Self.correction, addBOS: false)
        let promptTokens = tokenizer.encode(Self.passage, addBOS: true).count
        #expect(promptTokens > 64, "the passage must span several prefill chunks")

        let service = InferenceService(model: model, tokenizer: tokenizer, maxSequences: 2, queueLimit: 4, maxTokensCap: 64,
                                       context: 512, prefillChunk: 32)
        let options = GenerationOptions(maxTokens: target.count)
        let baseAnswer = try await service.generate(prompt: Self.passage, options: options, makeEditor: { nil })
        let baseUnrelated = try await service.generate(prompt: Self.unrelated, options: options, makeEditor: { nil })
        #expect(baseAnswer.ids != target, "the unedited model already continues with the correction")

        let outcome = try editor.edit(EditRequest(id: "1", prompt: Self.passage, target: Self.correction), index: editor.emptyIndex())
        #expect(outcome.heldReason == nil)
        let index = outcome.index
        let edited = try await service.generate(prompt: Self.passage, options: options,
                                                makeEditor: { PassageEditor(index.makeRouter(request: Self.passage)) })
        #expect(edited.edit?.id == 1, "the passage did not route to its edit")
        #expect(edited.ids == target, "\(edited.text.debugDescription) instead of the correction")
        let other = try await service.generate(prompt: Self.unrelated, options: options,
                                               makeEditor: { PassageEditor(index.makeRouter(request: Self.unrelated)) })
        #expect(other.edit == nil, "an unrelated passage fired the edit")
        #expect(other.ids == baseUnrelated.ids)
    }
}
