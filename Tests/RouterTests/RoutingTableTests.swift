// The routing table survives bad rows: an active edit whose neuron does not fit the model, or
// that was trained on another routing key, is left out (and counted) while the others serve.
import Core
import Foundation
import Logging
import Router
import Storage
import TestSupport
import Testing

@Suite("Routing table with unusable edits (real model)", .enabled(if: ModelTestEnvironment.enabled), .serialized)
struct RoutingTableTests {
    @Test func anUnusableEditIsSkippedAndTheOthersServe() throws {
        let model = try ModelTestEnvironment.model.get()
        let tokenizer = try ModelTestEnvironment.tokenizer.get()
        let hp = SCENHyperparameters()
        let editor = try SCENEditor(model: model, tokenizer: tokenizer, hyperparameters: hp)
        let prompt = "Question: Who wrote the novel Frankenstein?\nAnswer:"
        let entry = try editor.edit(EditRequest(id: "good", prompt: prompt, target: " Jane Austen"), index: editor.emptyIndex()).entry
        let json = String(decoding: try JSONEncoder().encode(hp), as: UTF8.self)
        var older = hp
        older.keyPooling = .mean
        let olderJSON = String(decoding: try JSONEncoder().encode(older), as: UTF8.self)
        let good = StoredIndexingNeuron(entry.neuron, layer: hp.layer)
        var narrow = good
        narrow.weights = Array(good.weights.prefix(7))   // a neuron of another model's width, stored consistently
        narrow.key = Array(good.key.prefix(7))
        narrow.extraKeys = good.extraKeys.map { Array($0.prefix(7)) }

        let store = InMemoryEditStore()
        func activate(_ id: String, _ p: String, neuron: StoredIndexingNeuron, hyperparameters: String, offset: Int64) throws -> Int64 {
            let event = CorrectionEvent(id: id, prompt: p, target: " Jane Austen", rephrases: [], reporter: "test", source: "test",
                                        createdAt: Date(timeIntervalSince1970: 1_700_000_000 + Double(offset)), raw: Array(id.utf8))
            let edit = try store.recordCorrection(event, at: KafkaPosition(topic: "t", partition: 0, offset: offset), actor: "test").edit
            guard case .claimed(let c) = try store.claimForTraining(editID: edit.id, maxAttempts: 3, actor: "test") else {
                throw RepositoryError.notFound(editID: edit.id)
            }
            let result = TrainedEdit(expert: StoredExpert(entry.expert), neuron: neuron, refinedNeurons: [],
                                     hyperparameters: hyperparameters, metrics: "{}")
            return try store.completeTraining(editID: edit.id, attempt: c.attempts, result: result, actor: "test").id
        }
        let goodID = try activate("good", prompt, neuron: good, hyperparameters: json, offset: 1)
        _ = try activate("narrow", "Question: Who painted the Mona Lisa?\nAnswer:", neuron: narrow, hyperparameters: json, offset: 2)
        _ = try activate("old-key", "Question: What is the capital of Peru?\nAnswer:", neuron: good, hyperparameters: olderJSON, offset: 3)

        let live = try LiveEdits(model: model, tokenizer: tokenizer, hyperparameters: hp, logger: Logger(label: "routing-table-test"))
        try live.reload(from: store)
        #expect(live.activeCount == 1)
        #expect(live.unroutableCount == 2)

        let requestEditor = try #require(live.makeEditor(prompt: prompt))
        let session = model.makeSession(capacity: 64)
        _ = try session.generate(prompt: tokenizer.encode(prompt, addBOS: true), maxTokens: 1, editor: requestEditor)
        #expect(requestEditor.firedEdit?.id == goodID)
    }
}
