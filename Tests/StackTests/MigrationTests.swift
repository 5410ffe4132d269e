import Foundation
import EditStoreScenarios
import Storage
import Testing

@Suite("Migrations and the audit log (local stack)", .enabled(if: StackEnvironment.enabled))
struct MigrationTests {
    @Test func applyOnceThenNoOp() throws {
        let url = try TestDatabase.create(migrated: false)
        let db = try PostgresConnection(url: url)
        let files = try MigrationRunner.load(directory: TestDatabase.migrationsDirectory)
        #expect(files.first?.version == 1)
        let first = try MigrationRunner.migrate(db, migrations: files)
        #expect(first.applied == files.map(\.version) && first.alreadyApplied.isEmpty)
        let second = try MigrationRunner.migrate(db, migrations: files)
        #expect(second.applied.isEmpty && second.alreadyApplied == files.map(\.version))
        let rows = try db.query("SELECT version, checksum FROM schema_migrations ORDER BY version")
        #expect(try rows.map { try $0.string("checksum") } == files.map(\.checksum))
        let tables = Set(try db.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").map { try $0.string("tablename") })
        #expect(tables.isSuperset(of: ["corrections", "edits", "experts", "neurons", "dead_letters", "audit_log", "schema_migrations"]))
    }

    @Test func aChangedAppliedFileIsReported() throws {
        let url = try TestDatabase.create(migrated: true)
        var files = try MigrationRunner.load(directory: TestDatabase.migrationsDirectory)
        files[0] = Migration(version: files[0].version, name: files[0].name, sql: files[0].sql + "\n-- edited after release\n")
        let error = #expect(throws: MigrationError.self) { try MigrationRunner.migrate(try PostgresConnection(url: url), migrations: files) }
        guard case .checksumMismatch(let version, _, _, _)? = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(version == 1)
    }

    @Test func aFailingMigrationRollsBackEntirely() throws {
        let url = try TestDatabase.create(migrated: true)
        let db = try PostgresConnection(url: url)
        var files = try MigrationRunner.load(directory: TestDatabase.migrationsDirectory)
        files.append(Migration(version: 9999, name: "broken", sql: "CREATE TABLE half_done (x int);\nSELECT * FROM no_such_table;"))
        #expect(throws: MigrationError.self) { try MigrationRunner.migrate(db, migrations: files) }
        #expect(try db.query("SELECT to_regclass('half_done') IS NULL AS gone").first?.bool("gone") == true)
        #expect(try db.query("SELECT count(*) AS n FROM schema_migrations WHERE version = 9999").first?.int("n") == 0)
    }

    @Test func concurrentRunnersApplyEachFileOnce() async throws {
        let url = try TestDatabase.create(migrated: false)
        let files = try MigrationRunner.load(directory: TestDatabase.migrationsDirectory)
        let reports = try await withThrowingTaskGroup(of: MigrationReport.self) { group in
            for _ in 0..<4 {
                group.addTask { try MigrationRunner.migrate(try PostgresConnection(url: url), migrations: files) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(reports.flatMap(\.applied).sorted() == files.map(\.version))
    }

    @Test func auditLogIsAppendOnly() throws {
        let db = try PostgresConnection(url: try TestDatabase.create())
        try db.query("INSERT INTO audit_log (actor, action, details) VALUES ($1, $2, $3::jsonb)", [.text("test"), .text("probe"), .text("{}")])
        for sql in ["UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log", "TRUNCATE audit_log"] {
            let error = #expect(throws: PostgresError.self, "\(sql)") { try db.query(sql) }
            guard case .statementFailed(let state, let message)? = error else { Issue.record("\(sql): \(String(describing: error))"); continue }
            #expect(state == "42501")
            #expect(message.contains("append-only"))
        }
        #expect(try db.query("SELECT count(*) AS n FROM audit_log WHERE actor = 'test'").first?.int("n") == 1)
    }

    @Test func statusValuesAreChecked() throws {
        let store = try PostgresEditStore(url: try TestDatabase.create())
        let edit = try store.recordCorrection(EditStoreScenarios.correction("s1"), at: EditStoreScenarios.position, actor: "t").edit
        let error = #expect(throws: PostgresError.self) {
            try store.db.query("UPDATE edits SET status = $1 WHERE id = $2", [.text("done"), .int(edit.id)])
        }
        guard case .statementFailed(let state, _)? = error else { Issue.record(); return }
        #expect(state == "23514")  // check_violation
    }
}
