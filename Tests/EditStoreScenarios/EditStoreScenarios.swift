// Semantics every edit store must have, run against InMemoryEditStore (StorageTests) and
// PostgresEditStore (StackTests): a small test-support library both test targets link.
import Core
import Foundation
import Storage
import Testing

public typealias EditStore = CorrectionRepository & DeadLetterRepository & TrainingRepository & EditCatalog

public enum EditStoreScenarios {
    public static let position = KafkaPosition(topic: "scen.corrections", partition: 0, offset: 0)

    public static func correction(_ id: String, prompt: String = "The capital of Freedonia is", target: String = " Fredville",
                           at seconds: Double = 1_700_000_000) -> CorrectionEvent {
        let raw = Array("{\"id\":\"\(id)\"}".utf8)
        return CorrectionEvent(id: id, prompt: prompt, target: target, rephrases: ["Freedonia's capital:"], reporter: "alice",
                               source: "test", createdAt: Date(timeIntervalSince1970: seconds), raw: raw)
    }

    public static func trained(seed: Float = 1, refined: [ActiveNeuron] = []) -> TrainedEdit {
        let f = 8, d = 4, r = 2
        return TrainedEdit(
            expert: StoredExpert(layer: 9, a: Matrix(rows: r, cols: f, values: (0..<(r * f)).map { Float($0) * seed }),
                                 b: Matrix(rows: d, cols: r, values: (0..<(d * r)).map { Float($0) / seed })),
            neuron: StoredIndexingNeuron(layer: 9, weights: Array(repeating: seed, count: f), bias: -seed,
                                         key: Array(repeating: 0.5, count: f), extraKeys: [Array(repeating: 0.25, count: f)]),
            refinedNeurons: refined, hyperparameters: "{\"rank\": 2}", metrics: "{\"seconds\": 0.5}")
    }

    /// Records, claims and completes one edit; returns it.
    @discardableResult
    public static func activate(_ store: EditStore, _ event: CorrectionEvent, offset: Int64, seed: Float = 1) throws -> EditRecord {
        var p = position
        p.offset = offset
        let edit = try store.recordCorrection(event, at: p, actor: "test").edit
        guard case .claimed(let claimed) = try store.claimForTraining(editID: edit.id, maxAttempts: 3, actor: "test") else {
            throw RepositoryError.notFound(editID: edit.id)
        }
        return try store.completeTraining(editID: edit.id, attempt: claimed.attempts, result: trained(seed: seed), actor: "test")
    }

    public static func idempotentIngest(_ store: EditStore) throws {
        let first = try store.recordCorrection(correction("a"), at: position, actor: "ingest")
        guard case .queued(let edit) = first else { Issue.record("first record should queue"); return }
        #expect(edit.status == .queued && edit.attempts == 0 && edit.eventID == "a")
        #expect(edit.rephrases == ["Freedonia's capital:"])
        #expect(first.needsJob)

        // A duplicate (even with other content) stores nothing and returns the same edit.
        let again = try store.recordCorrection(correction("a", target: " Other"), at: position, actor: "ingest")
        #expect(again == .duplicate(edit))
        #expect(again.needsJob, "still queued: the job may have been lost, produce it again")

        _ = try store.claimForTraining(editID: edit.id, maxAttempts: 3, actor: "trainer")
        let third = try store.recordCorrection(correction("a"), at: position, actor: "ingest")
        #expect(third.edit.status == .training)
        #expect(!third.needsJob)
        #expect(try store.edits(status: nil, afterID: 0, limit: 100).count == 1)
        #expect(try store.auditHistory(editID: edit.id).map(\.action) == ["edit.queued", "edit.training"])
    }

    public static func trainingLifecycle(_ store: EditStore) throws {
        let edit = try store.recordCorrection(correction("b"), at: position, actor: "ingest").edit
        guard case .claimed(let claimed) = try store.claimForTraining(editID: edit.id, maxAttempts: 3, actor: "trainer") else {
            Issue.record("should claim"); return
        }
        #expect(claimed.status == .training && claimed.attempts == 1)
        let active = try store.completeTraining(editID: edit.id, attempt: 1, result: trained(), actor: "trainer")
        #expect(active.status == .active && active.error == nil)
        #expect(active.metrics != nil && active.hyperparameters != nil)

        // A replayed job finds it settled; a late completion of a stale attempt is refused.
        #expect(try store.claimForTraining(editID: edit.id, maxAttempts: 3, actor: "trainer") == .skipped(active))
        #expect(throws: RepositoryError.claimLost(editID: edit.id, attempt: 1)) {
            try store.completeTraining(editID: edit.id, attempt: 1, result: trained(), actor: "trainer")
        }
        #expect(try store.claimForTraining(editID: 999_999, maxAttempts: 3, actor: "trainer") == .notFound)

        let stored = try #require(try store.storedEdit(id: edit.id))
        #expect(stored.expert == trained().expert)
        #expect(stored.neuron == trained().neuron)
        #expect(try store.activeEdits().map(\.record.id) == [edit.id])
        let history = try store.auditHistory(editID: edit.id)
        #expect(history.map(\.action) == ["edit.queued", "edit.training", "edit.activated"])
        #expect(history.map(\.toStatus) == [.queued, .training, .active])
        #expect(history.map(\.actor) == ["ingest", "trainer", "trainer"])
    }

    public static func latestCorrectionWins(_ store: EditStore) throws {
        let old = try activate(store, correction("c1", target: " Paris", at: 1_000), offset: 1)
        let new = try activate(store, correction("c2", target: " Rome", at: 2_000), offset: 2)
        #expect(new.status == .active)
        let oldNow = try #require(try store.edit(id: old.id))
        #expect(oldNow.status == .superseded && oldNow.supersededBy == new.id)
        #expect(try store.auditHistory(editID: old.id).last?.action == "edit.superseded")

        // An older correction trained later does not take over: it is superseded at once.
        let late = try activate(store, correction("c0", target: " Oslo", at: 500), offset: 3)
        #expect(late.status == .superseded && late.supersededBy == new.id)
        #expect(try store.edit(id: new.id)?.status == .active)

        // Another prompt is independent.
        let other = try activate(store, correction("c3", prompt: "Who wrote Hamlet?", target: " Kyd", at: 100), offset: 4)
        #expect(other.status == .active)
        #expect(try store.activeEdits().map(\.record.id) == [new.id, other.id])
    }

    public static func revert(_ store: EditStore) throws {
        let active = try activate(store, correction("r1"), offset: 1)
        let reverted = try store.revert(editID: active.id, actor: "operator:bob", reason: "wrong fact")
        #expect(reverted.status == .reverted)
        #expect(throws: RepositoryError.invalidTransition(editID: active.id, from: .reverted, action: "revert")) {
            try store.revert(editID: active.id, actor: "operator:bob", reason: "again")
        }
        let last = try #require(try store.auditHistory(editID: active.id).last)
        #expect(last.action == "edit.reverted" && last.actor == "operator:bob" && last.fromStatus == .active)
        #expect(last.details.contains("wrong fact"))
        #expect(try store.activeEdits().isEmpty)

        // Reverting an edit while it trains: the trainer's result is refused.
        let edit = try store.recordCorrection(correction("r2", prompt: "Other prompt"), at: position, actor: "ingest").edit
        _ = try store.claimForTraining(editID: edit.id, maxAttempts: 3, actor: "trainer")
        _ = try store.revert(editID: edit.id, actor: "operator:bob", reason: "changed my mind")
        #expect(throws: RepositoryError.claimLost(editID: edit.id, attempt: 1)) {
            try store.completeTraining(editID: edit.id, attempt: 1, result: trained(), actor: "trainer")
        }
        #expect(try store.claimForTraining(editID: edit.id, maxAttempts: 3, actor: "trainer") == .skipped(try store.edit(id: edit.id)!))
        #expect(throws: RepositoryError.notFound(editID: 424_242)) { try store.revert(editID: 424_242, actor: "x", reason: "") }
    }

    public static func boundedRetries(_ store: EditStore) throws {
        let edit = try store.recordCorrection(correction("f1"), at: position, actor: "ingest").edit
        for attempt in 1...3 {
            guard case .claimed(let c) = try store.claimForTraining(editID: edit.id, maxAttempts: 3, actor: "trainer") else {
                Issue.record("attempt \(attempt) should claim"); return
            }
            #expect(c.attempts == attempt)
            let failed = try store.failTraining(editID: edit.id, attempt: attempt, error: "boom \(attempt)", actor: "trainer")
            #expect(failed.status == .failed && failed.error == "boom \(attempt)")
        }
        guard case .skipped(let exhausted) = try store.claimForTraining(editID: edit.id, maxAttempts: 3, actor: "trainer") else {
            Issue.record("exhausted edit should be skipped"); return
        }
        #expect(exhausted.status == .failed && exhausted.attempts == 3)
        #expect(throws: RepositoryError.claimLost(editID: edit.id, attempt: 3)) {
            try store.failTraining(editID: edit.id, attempt: 3, error: "again", actor: "trainer")
        }

        // A trainer that dies in every attempt: the edit ends failed, not in an endless loop.
        let crashy = try store.recordCorrection(correction("f2", prompt: "Crashy"), at: position, actor: "ingest").edit
        for _ in 1...3 { _ = try store.claimForTraining(editID: crashy.id, maxAttempts: 3, actor: "trainer") }
        guard case .skipped(let gaveUp) = try store.claimForTraining(editID: crashy.id, maxAttempts: 3, actor: "trainer") else {
            Issue.record("crash-looping edit should be given up"); return
        }
        #expect(gaveUp.status == .failed && gaveUp.error?.contains("gave up") == true)
        #expect(try store.auditHistory(editID: crashy.id).map(\.action)
                == ["edit.queued", "edit.training", "edit.training", "edit.training", "edit.failed"])
    }

    public static func refinedNeuronsOnlyForActiveEdits(_ store: EditStore) throws {
        let a = try activate(store, correction("n1", prompt: "P1"), offset: 1, seed: 1)
        let b = try activate(store, correction("n2", prompt: "P2"), offset: 2, seed: 2)
        _ = try store.revert(editID: b.id, actor: "op", reason: "")
        let c = try store.recordCorrection(correction("n3", prompt: "P3"), at: position, actor: "ingest").edit
        _ = try store.claimForTraining(editID: c.id, maxAttempts: 3, actor: "trainer")
        #expect(try store.activeEdits(excluding: c.id).map(\.record.id) == [a.id])
        let newA = StoredIndexingNeuron(layer: 9, weights: Array(repeating: 7, count: 8), bias: 3, key: Array(repeating: 0.5, count: 8),
                                        extraKeys: [Array(repeating: 0.25, count: 8)])
        let newB = StoredIndexingNeuron(layer: 9, weights: Array(repeating: 8, count: 8), bias: 3, key: Array(repeating: 0.5, count: 8))
        _ = try store.completeTraining(editID: c.id, attempt: 1,
                                       result: trained(seed: 3, refined: [ActiveNeuron(editID: a.id, neuron: newA),
                                                                          ActiveNeuron(editID: b.id, neuron: newB)]), actor: "trainer")
        #expect(try store.storedEdit(id: a.id)?.neuron == newA)
        #expect(try store.auditHistory(editID: a.id).last?.action == "edit.neuron_refined")
        #expect(try store.auditHistory(editID: b.id).last?.action == "edit.reverted")
        #expect(try store.storedEdit(id: b.id)?.neuron == trained(seed: 2).neuron, "a reverted edit keeps its neuron")
        #expect(try store.activeEdits().map(\.record.id) == [a.id, c.id])
    }

    public static func activeEditCache(_ store: EditStore) throws {
        let cache = ActiveEditCache(repository: store)
        let a = try activate(store, correction("k1", prompt: "P1"), offset: 1, seed: 1)
        let b = try activate(store, correction("k2", prompt: "P2"), offset: 2, seed: 2)
        #expect(try cache.activeEdits(excluding: 0) == store.activeEdits(excluding: 0))
        #expect(cache.fetched == 2)
        #expect(try cache.activeEdits(excluding: a.id).map(\.record.id) == [b.id])
        #expect(cache.fetched == 2, "nothing changed: nothing fetched")

        // A new edit that refines a's neuron: the new edit and a are fetched again.
        let c = try store.recordCorrection(correction("k3", prompt: "P3"), at: position, actor: "ingest").edit
        _ = try store.claimForTraining(editID: c.id, maxAttempts: 3, actor: "trainer")
        let refinedA = StoredIndexingNeuron(layer: 9, weights: Array(repeating: 9, count: 8), bias: 1, key: Array(repeating: 0.5, count: 8),
                                            extraKeys: [Array(repeating: 0.25, count: 8)])
        _ = try store.completeTraining(editID: c.id, attempt: 1,
                                       result: trained(seed: 3, refined: [ActiveNeuron(editID: a.id, neuron: refinedA)]), actor: "trainer")
        #expect(try cache.activeEdits(excluding: 0) == store.activeEdits(excluding: 0))
        #expect(try cache.activeEdits(excluding: 0).first?.neuron == refinedA)
        #expect(cache.fetched == 4)

        // A revert drops the edit from the cache without fetching anything.
        _ = try store.revert(editID: b.id, actor: "op", reason: "")
        #expect(try cache.activeEdits(excluding: 0).map(\.record.id) == [a.id, c.id])
        #expect(cache.fetched == 4)
    }

    public static func paging(_ store: EditStore) throws {
        var ids: [Int64] = []
        for i in 0..<7 {
            var p = position
            p.offset = Int64(i)
            ids.append(try store.recordCorrection(correction("p\(i)", prompt: "prompt \(i)"), at: p, actor: "ingest").edit.id)
        }
        _ = try store.claimForTraining(editID: ids[2], maxAttempts: 3, actor: "trainer")
        let page1 = try store.edits(status: .queued, afterID: 0, limit: 4)
        #expect(page1.map(\.id) == [ids[0], ids[1], ids[3], ids[4]])
        let page2 = try store.edits(status: .queued, afterID: page1.last!.id, limit: 4)
        #expect(page2.map(\.id) == [ids[5], ids[6]])
        #expect(try store.edits(status: .training, afterID: 0, limit: 10).map(\.id) == [ids[2]])
        #expect(try store.edits(status: nil, afterID: ids[4], limit: 10).map(\.id) == [ids[5], ids[6]])
        #expect(try store.edits(status: .active, afterID: 0, limit: 10).isEmpty)
    }

    public static func deadLetters(_ store: EditStore) throws {
        let raw: [UInt8] = [0xFF, 0x00, 0x7B]
        let p = KafkaPosition(topic: "scen.corrections", partition: 0, offset: 17)
        let first = try store.recordDeadLetter(raw: raw, rejection: Rejection(.invalidUTF8, "bad byte"), at: p, actor: "ingest")
        #expect(first.raw == raw && first.reason == "invalid_utf8" && first.detail == "bad byte" && !first.producedToTopic)
        let again = try store.recordDeadLetter(raw: raw, rejection: Rejection(.invalidUTF8, "bad byte"), at: p, actor: "ingest")
        #expect(again.id == first.id)
        try store.markDeadLetterProduced(id: first.id)
        let third = try store.recordDeadLetter(raw: raw, rejection: Rejection(.invalidUTF8, "bad byte"), at: p, actor: "ingest")
        #expect(third.producedToTopic)
        var p2 = p
        p2.offset = 18
        _ = try store.recordDeadLetter(raw: [1], rejection: Rejection(.invalidJSON, "x"), at: p2, actor: "ingest")
        #expect(try store.deadLetters(afterID: 0, limit: 10).map(\.position.offset) == [17, 18])
        #expect(try store.deadLetters(afterID: first.id, limit: 10).map(\.position.offset) == [18])
        // The topic's offsets started again (broker restarted on memory storage, topic recreated):
        // another malformed event at a used position is a new dead letter, not a silent duplicate.
        let reused = try store.recordDeadLetter(raw: [0x7B, 0x7B], rejection: Rejection(.invalidJSON, "y"), at: p, actor: "ingest")
        #expect(reused.id != first.id && reused.raw == [0x7B, 0x7B] && !reused.producedToTopic)
        #expect(try store.deadLetters(afterID: 0, limit: 10).map(\.position.offset) == [17, 18, 17])
    }
}
