// Least privilege (migration 0004): each service connects as a role that can do its own work and
// nothing else. The audit log stays append-only for every one of them (they own no table, so they
// cannot disable its triggers), and the router changes an edit only by reverting it.
import Core
import EditStoreScenarios
import Foundation
import Storage
import Testing

@Suite("Service roles (local stack)", .enabled(if: StackEnvironment.enabled))
struct ServiceRoleTests {
    /// The statement fails with SQLSTATE 42501: insufficient privilege, or "must be owner".
    func refused(_ db: PostgresConnection, _ sql: String, _ params: [PostgresValue?] = [],
                 sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            try db.query(sql, params)
            Issue.record("\(sql) was allowed", sourceLocation: sourceLocation)
        } catch let PostgresError.statementFailed(state, message) {
            #expect(state == "42501", "\(sql): \(state) \(message)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("\(sql): \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func eachServiceDoesItsWorkAsItsOwnRole() throws {
        let url = try TestDatabase.create()
        let ingest = try PostgresEditStore(url: TestDatabase.url(url, user: "scen_ingest"))
        let trainer = try PostgresEditStore(url: TestDatabase.url(url, user: "scen_trainer"))
        let router = try PostgresEditStore(url: TestDatabase.url(url, user: "scen_router"))

        let edit = try ingest.recordCorrection(EditStoreScenarios.correction("role-1"), at: EditStoreScenarios.position, actor: "ingest").edit
        var dlPosition = EditStoreScenarios.position
        dlPosition.offset = 9
        let letter = try ingest.recordDeadLetter(raw: Array("{".utf8), rejection: Rejection(.invalidJSON, "cut short"),
                                                 at: dlPosition, actor: "ingest")
        try ingest.markDeadLetterProduced(id: letter.id)

        guard case .claimed(let claimed) = try trainer.claimForTraining(editID: edit.id, maxAttempts: 3, actor: "trainer") else {
            Issue.record("trainer could not claim"); return
        }
        let active = try trainer.completeTraining(editID: edit.id, attempt: claimed.attempts, result: EditStoreScenarios.trained(),
                                                  actor: "trainer")
        #expect(active.status == .active)

        #expect(try router.activeEdits().map(\.record.id) == [edit.id])
        let reverted = try router.revert(editID: edit.id, actor: "operator:carol", reason: "wrong")
        #expect(reverted.status == .reverted)
        #expect(throws: RepositoryError.invalidTransition(editID: edit.id, from: .reverted, action: "revert")) {
            try router.revert(editID: edit.id, actor: "operator:carol", reason: "again")
        }
        #expect(throws: RepositoryError.notFound(editID: 987_654)) { try router.revert(editID: 987_654, actor: "x", reason: "") }
        let last = try #require(try router.auditHistory(editID: edit.id).last)
        #expect(last.action == "edit.reverted" && last.actor == "operator:carol" && last.fromStatus == .active && last.details.contains("wrong"))
        try router.storeTrafficKeys(layer: 9, pooling: "weighted", slots: [TrafficReservoir.Slot(slot: 0, key: [1, 2], seen: 1)])
    }

    @Test func noServiceCanRewriteHistoryOrWidenItsRights() throws {
        let url = try TestDatabase.create()
        let owner = try PostgresEditStore(url: url)
        let edit = try EditStoreScenarios.activate(owner, EditStoreScenarios.correction("role-2"), offset: 1)
        for user in ["scen_ingest", "scen_trainer", "scen_router"] {
            let db = try PostgresConnection(url: TestDatabase.url(url, user: user))
            refused(db, "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update_delete")
            refused(db, "DROP TRIGGER audit_log_no_truncate ON audit_log")
            refused(db, "UPDATE audit_log SET actor = 'nobody'")
            refused(db, "DELETE FROM audit_log")
            refused(db, "TRUNCATE audit_log")
            refused(db, "DROP FUNCTION audit_log_refuse_change() CASCADE")
            refused(db, "CREATE TABLE audit_log_copy (id int)")
            refused(db, "DELETE FROM edits WHERE id = $1", [.int(edit.id)])
        }
        let router = try PostgresConnection(url: TestDatabase.url(url, user: "scen_router"))
        refused(router, "UPDATE edits SET target = 'hijacked' WHERE id = $1", [.int(edit.id)])
        refused(router, "UPDATE neurons SET bias = 100 WHERE edit_id = $1", [.int(edit.id)])
        refused(router, "INSERT INTO audit_log (actor, action) VALUES ('router', 'forged')")
        let ingest = try PostgresConnection(url: TestDatabase.url(url, user: "scen_ingest"))
        refused(ingest, "UPDATE edits SET status = 'active' WHERE id = $1", [.int(edit.id)])
        refused(ingest, "UPDATE experts SET rank = 0 WHERE edit_id = $1", [.int(edit.id)])
        let trainer = try PostgresConnection(url: TestDatabase.url(url, user: "scen_trainer"))
        refused(trainer, "UPDATE edits SET prompt = 'other' WHERE id = $1", [.int(edit.id)])
        refused(trainer, "UPDATE corrections SET reporter = 'mallory'")
        refused(trainer, "SELECT * FROM scen_revert_edit($1, 'trainer', 'not mine')", [.int(edit.id)])
        #expect(try owner.edit(id: edit.id)?.status == .active)
        #expect(try owner.auditHistory(editID: edit.id).allSatisfy { $0.actor != "nobody" })
    }
}
