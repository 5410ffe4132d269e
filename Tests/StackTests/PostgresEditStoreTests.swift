import Foundation
import EditStoreScenarios
import Storage
import Testing

@Suite("PostgreSQL edit store (local stack)", .enabled(if: StackEnvironment.enabled))
struct PostgresEditStoreTests {
    func store() throws -> PostgresEditStore { try PostgresEditStore(url: try TestDatabase.create()) }

    @Test func idempotentIngest() throws { try EditStoreScenarios.idempotentIngest(try store()) }
    @Test func trainingLifecycle() throws { try EditStoreScenarios.trainingLifecycle(try store()) }
    @Test func latestCorrectionWins() throws { try EditStoreScenarios.latestCorrectionWins(try store()) }
    @Test func revert() throws { try EditStoreScenarios.revert(try store()) }
    @Test func boundedRetries() throws { try EditStoreScenarios.boundedRetries(try store()) }
    @Test func refinedNeurons() throws { try EditStoreScenarios.refinedNeuronsOnlyForActiveEdits(try store()) }
    @Test func paging() throws { try EditStoreScenarios.paging(try store()) }
    @Test func activeEditCache() throws { try EditStoreScenarios.activeEditCache(try store()) }
    @Test func deadLetters() throws { try EditStoreScenarios.deadLetters(try store()) }

    /// A corrupt expert blob marks its own edit defective; the others still load (the router
    /// leaves that one edit out instead of failing its whole routing table).
    @Test func aCorruptExpertSpoilsOnlyItsOwnEdit() throws {
        let url = try TestDatabase.create()
        let s = try PostgresEditStore(url: url)
        let a = try EditStoreScenarios.activate(s, EditStoreScenarios.correction("k1", prompt: "p1", at: 1), offset: 1)
        let b = try EditStoreScenarios.activate(s, EditStoreScenarios.correction("k2", prompt: "p2", at: 2), offset: 2)
        let db = try PostgresConnection(url: url)
        let blob = try #require(try db.query("SELECT bytes FROM experts WHERE edit_id = $1", [.int(a.id)]).first?.bytes("bytes"))
        var flipped = blob
        flipped[blob.count / 2] ^= 0x40   // one bit of one value: the checksum no longer matches
        try db.query("UPDATE experts SET bytes = $1 WHERE edit_id = $2", [.bytes(flipped), .int(a.id)])
        let active = try s.activeEdits()
        #expect(active.map(\.record.id) == [a.id, b.id])
        let byID = Dictionary(uniqueKeysWithValues: active.map { ($0.record.id, $0) })
        #expect(byID[a.id]?.defect?.contains("expert unreadable") == true && byID[a.id]?.expert == nil)
        #expect(byID[b.id]?.defect == nil && byID[b.id]?.expert != nil && byID[b.id]?.neuron != nil)
        #expect(try s.storedEdit(id: a.id)?.defect != nil)
    }

    @Test func hostileTextIsStoredVerbatim() throws {
        let s = try store()
        let prompt = "Robert'); DROP TABLE edits;-- \u{1F600} $1 \\x00"
        let edit = try s.recordCorrection(EditStoreScenarios.correction("h1", prompt: prompt, target: " 'quoted' \"x\""),
                                          at: EditStoreScenarios.position, actor: "ingest; DELETE").edit
        #expect(try s.edit(id: edit.id)?.prompt == prompt)
        #expect(try s.edit(id: edit.id)?.target == " 'quoted' \"x\"")
        #expect(try s.auditHistory(editID: edit.id).first?.actor == "ingest; DELETE")
    }

    @Test func notifiesOnCommitOnly() throws {
        let url = try TestDatabase.create()
        let s = try PostgresEditStore(url: url)
        let listener = try PostgresConnection(url: url)
        try listener.listen(PipelineChannels.edits)
        let a = try EditStoreScenarios.activate(s, EditStoreScenarios.correction("n1", at: 1), offset: 1)
        let b = try EditStoreScenarios.activate(s, EditStoreScenarios.correction("n2", at: 2), offset: 2)
        _ = try s.revert(editID: b.id, actor: "op", reason: "")
        // A failed transaction sends nothing: a stale completion is refused before NOTIFY.
        _ = try? s.completeTraining(editID: a.id, attempt: 1, result: EditStoreScenarios.trained(), actor: "t")
        var got: [EditNotification] = []
        let deadline = Date().addingTimeInterval(5)
        while got.count < 4 && Date() < deadline {
            got += try listener.notifications(timeout: 0.5).compactMap { EditNotification.decode($0.payload) }
        }
        got += try listener.notifications(timeout: 0.3).compactMap { EditNotification.decode($0.payload) }
        #expect(got == [
            EditNotification(editID: a.id, status: .active),
            EditNotification(editID: a.id, status: .superseded),
            EditNotification(editID: b.id, status: .active),
            EditNotification(editID: b.id, status: .reverted),
        ])
    }

    @Test func concurrentDuplicatesMakeOneEdit() async throws {
        let url = try TestDatabase.create()
        let outcomes = try await withThrowingTaskGroup(of: IngestOutcome.self) { group in
            for i in 0..<6 {
                group.addTask {
                    var p = EditStoreScenarios.position
                    p.offset = Int64(i)
                    return try PostgresEditStore(url: url).recordCorrection(EditStoreScenarios.correction("same"), at: p, actor: "ingest")
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(outcomes.map(\.edit.id)).count == 1)
        #expect(outcomes.filter { if case .queued = $0 { true } else { false } }.count == 1)
    }
}
