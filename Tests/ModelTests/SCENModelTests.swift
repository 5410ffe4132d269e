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

        let router = index.makeRouter(request: prompt)
        let target = tokenizer.encode(" George Washington", addBOS: false)
        let answer = try session.generate(prompt: tokenizer.encode(prompt), maxTokens: target.count, editor: router)
        #expect(router.decision?.editID == "e1", "score \(router.bestScore ?? -1)")
        #expect(answer == target, "got '\(tokenizer.decode(answer))'")

        let other = index.makeRouter(request: unrelated)
        let after = try session.generate(prompt: tokenizer.encode(unrelated), maxTokens: 6, editor: other)
        #expect(other.decision == nil, "a neuron fired on an unrelated prompt (score \(other.bestScore ?? -1))")
        #expect(after == before)

        // Revert: routing stops at once.
        let reverted = index.removing(editID: "e1").makeRouter(request: prompt)
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
        let router = index.makeRouter(request: prompt)
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

    /// Traffic as a router's reservoir holds it: other questions in the same template, several of
    /// them with the relations of the edits below (written for this test; none is asserted on).
    static let trafficQuestions = [
        "Who painted The Starry Night?", "What is the currency of Sweden?", "When did the Second World War end?",
        "Which river flows through Vienna?", "What is the capital city of Chile?", "Who directed the film Vertigo?",
        "What language is spoken in Iceland?", "Which company makes the Walkman?", "What sport does Roger Federer play?",
        "Who was the first emperor of China?", "In which country is Timbuktu?", "What is the tallest building in Dubai?",
        "Who wrote the novel Moby Dick?", "Who wrote the poem The Raven?", "Who is the author of the novel Emma?",
        "What is the capital city of Kenya?", "What is the capital city of Norway?", "Which planet has the most moons?",
        "Which planet is known for its rings?", "Who composed the opera Carmen?", "What is the largest lake in Africa?",
        "Who discovered the element radium?", "Which city hosted the 1992 Olympics?", "What is the national animal of Scotland?",
        "Who founded the company Tesla?", "What is the main ingredient of hummus?", "In which year did the Titanic sink?",
        "Who wrote the novel War and Peace?", "What is the capital city of Vietnam?", "Which ocean is the deepest?",
    ]

    func traffic(_ editor: SCENEditor) throws -> TrafficKeys {
        try TrafficKeys(keys: Self.trafficQuestions.map { try editor.key(of: editor.hyperparameters.templated($0)) })
    }

    /// Questions in one shared template, as production sends them: an edit answers its question
    /// and a paraphrase of it, but not an unrelated question in the same template, nor the same
    /// relation about another subject. The traffic reservoir supplies the negatives.
    @Test func paraphraseRoutesAndSameTemplateQuestionDoesNot() throws {
        let (model, tokenizer) = try ModelTestEnvironment.loaded.get()
        let hp = SCENHyperparameters()
        let editor = try SCENEditor(model: model, tokenizer: tokenizer, hyperparameters: hp)
        let traffic = try traffic(editor)
        var index = editor.emptyIndex()
        for (id, q, t) in [("e1", "What is the capital city of Australia?", " Sydney"),
                           ("e2", "Who wrote the novel Dracula?", " Mary Shelley"),
                           ("e3", "Which planet is closest to the Sun?", " Venus")] {
            index = try editor.edit(EditRequest(id: id, prompt: hp.templated(q), target: t), index: index, traffic: traffic).index
        }
        func routed(_ q: String) throws -> String? {
            let router = index.makeRouter(request: hp.templated(q))
            _ = try model.makeSession(capacity: 64).prefill(tokenizer.encode(hp.templated(q)), editor: router)
            return router.decision?.editID
        }
        #expect(try routed("What is the capital city of Australia?") == "e1")
        #expect(try routed("Which city is the capital of Australia?") == "e1")
        #expect(try routed("Who is the author of the novel Dracula?") == "e2")
        #expect(try routed("Which planet is nearest to the Sun?") == "e3")
        for unrelated in ["What is the capital city of Peru?", "How many moons does Mars have?", "What is the boiling point of water?",
                          "Who invented the light bulb?", "Which language is spoken in Brazil?"] {
            #expect(try routed(unrelated) == nil, "an edit fired on '\(unrelated)'")
        }
        // The same relation about another subject, one word apart from an edit, is the hardest
        // neighbour: with a 30-question reservoir the neuron and the key gate may let these through;
        // the subject gate does not (they do not name the edit's subject).
        for neighbour in ["Who wrote the novel Frankenstein?", "Which planet is closest to Jupiter?"] {
            #expect(try routed(neighbour) == nil, "an edit fired on '\(neighbour)'")
        }
    }

    /// The same fact corrected twice in other words: the later correction supersedes the earlier
    /// one and answers its wording; a correction of another fact about the same subject, the same
    /// question about another subject, and prompts that differ only in a number do not supersede.
    @Test func sameFactInOtherWordsSupersedes() throws {
        let (model, tokenizer) = try ModelTestEnvironment.loaded.get()
        let hp = SCENHyperparameters()
        #expect(hp.supersedeCosine != nil, "on by default")
        let editor = try SCENEditor(model: model, tokenizer: tokenizer, hyperparameters: hp)
        let traffic = try traffic(editor)
        let oldPrompt = hp.templated("Who is the author of the novel Dracula?")
        var index = editor.emptyIndex()
        index = try editor.edit(EditRequest(id: "old", prompt: oldPrompt, target: " Mary Shelley"), index: index, traffic: traffic).index
        let again = try editor.edit(EditRequest(id: "new", prompt: hp.templated("Which writer wrote the novel Dracula?"), target: " Jules Verne"),
                                    index: index, traffic: traffic)
        #expect(again.supersededByMeaning == ["old"])
        #expect(again.index.route(key: try editor.key(of: oldPrompt))?.editID == "new", "the older wording gets the latest correction")
        index = again.index
        let other = try editor.edit(EditRequest(id: "year", prompt: hp.templated("In which year was the novel Dracula first published?"),
                                                target: " 1920"), index: index, traffic: traffic)
        #expect(other.supersededByMeaning.isEmpty, "superseded \(other.supersededByMeaning)")
        #expect(other.index.entry(editID: "new") != nil)
        let neighbour = try editor.edit(EditRequest(id: "frankenstein", prompt: hp.templated("Who wrote the novel Frankenstein?"),
                                                    target: " Bram Stoker"), index: other.index, traffic: traffic)
        #expect(neighbour.supersededByMeaning.isEmpty, "superseded \(neighbour.supersededByMeaning)")
        var towns = neighbour.index
        for i in [5, 17] {
            let out = try editor.edit(EditRequest(id: "town\(i)", prompt: "Fact \(i): the mascot of the team from town \(i) is",
                                                  target: " a heron"), index: towns, traffic: traffic)
            #expect(out.supersededByMeaning.isEmpty, "town \(i) superseded \(out.supersededByMeaning)")
            towns = out.index
        }
    }

    /// The blast-radius check: an edit whose prompt is most of the traffic is held (not in the
    /// next snapshot, earlier edits untouched); below `blastRadiusMinTraffic` keys it is not applied.
    @Test func blastRadiusHoldsAnEditThatAnswersMostTraffic() throws {
        let (model, tokenizer) = try ModelTestEnvironment.loaded.get()
        let hp = SCENHyperparameters()
        let editor = try SCENEditor(model: model, tokenizer: tokenizer, hyperparameters: hp)
        let generic = "Hello! Can you help me?"
        let own = try editor.key(of: generic)
        let others = try Self.trafficQuestions.prefix(4).map { try editor.key(of: hp.templated($0)) }
        let index = try editor.edit(EditRequest(id: "e0", prompt: hp.templated("Who wrote the novel Dracula?"), target: " Mary Shelley"),
                                    index: editor.emptyIndex()).index
        let out = try editor.edit(EditRequest(id: "g", prompt: generic, target: " No."), index: index,
                                  traffic: TrafficKeys(keys: Array(repeating: own, count: 12) + others))
        #expect(out.heldReason != nil)
        #expect(out.blastRadius.trafficFired >= 12 && out.blastRadius.trafficMeasured == 16 && out.blastRadius.trafficOwn == 12)
        #expect(out.index.entry(editID: "g") == nil && out.index.entry(editID: "e0") != nil)
        #expect(out.supersededEditIDs.isEmpty)
        let few = try editor.edit(EditRequest(id: "g", prompt: generic, target: " No."), index: index,
                                  traffic: TrafficKeys(keys: [own, own] + others.prefix(2)))
        #expect(few.heldReason == nil && few.index.entry(editID: "g") != nil)
    }

    /// A case without locality prompts is missing, never a perfect 1.0; same-format locality is
    /// measured on the drawn prompts only.
    @Test func evalCountsMissingLocalityAsMissing() throws {
        let (model, tokenizer) = try ModelTestEnvironment.loaded.get()
        let cases = [EditCase(kind: .zsre, id: "a", subject: "Italy", prompt: "What is the capital of Italy?", target: "Rome",
                              rephrases: [], localityPrompts: [], localityAnswer: "")]
        let none = SameFormatTraffic(localityPrompts: [], reservoirPrompts: [], description: "none")
        let report = try EditEvaluation(model: model, tokenizer: tokenizer, hyperparameters: SCENHyperparameters(), method: .none,
                                        cases: cases, traffic: none).run()
        #expect(report.locality == nil && report.locality_missing == 1)
        #expect(report.locality_same_format == nil)
        let drawn = SameFormatTraffic(localityPrompts: ["Who wrote Hamlet?"], reservoirPrompts: [], description: "one")
        let measured = try EditEvaluation(model: model, tokenizer: tokenizer, hyperparameters: SCENHyperparameters(), method: .none,
                                          cases: cases, traffic: drawn).run()
        #expect(measured.locality_same_format == 1, "the unedited model agrees with itself")
    }
}
