// PostgreSQL and the broker restarted under a running pipeline: a stack of its own (scripts/stack
// with its own folder and ports, the broker's log in S3 on scripts/s3_local.py so that it survives), the
// built scen-ingest and scen-trainer as their service roles. Nothing accepted may be lost or
// doubled, and neither service may exit.
import Foundation
import Storage
import Testing

/// A durable local stack in a temporary folder, stopped by `down()`.
final class DurableStack {
    let folder: URL
    let settings: [String: String]
    private let environment: [String: String]

    init(pgPort: Int, kafkaPort: Int) throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("scen-durable-\(UUID().uuidString.prefix(8))")
        environment = ["SCEN_STACK_DIR": folder.path, "SCEN_STACK_PG_PORT": "\(pgPort)", "SCEN_STACK_KAFKA_PORT": "\(kafkaPort)",
                       "SCEN_STACK_DURABLE": "1"]
        try Self.script(["up"], environment)
        var out: [String: String] = [:]
        for line in try String(contentsOf: folder.appendingPathComponent("env"), encoding: .utf8).split(separator: "\n") {
            let kv = line.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { out[String(kv[0])] = String(kv[1]) }
        }
        settings = out
    }

    func restart(_ what: String) throws { try Self.script(["restart", what], environment) }
    func down() { try? Self.script(["down"], environment) }

    /// Runs scripts/stack through system(3), which waits for the script's own pid: Foundation's
    /// Process would wait until every descendant closed its inherited descriptors, and the
    /// broker and the S3 endpoint it starts keep running.
    private static func script(_ arguments: [String], _ environment: [String: String]) throws {
        // Every value is made by this file (a temporary path, ports, words): nothing to quote.
        let assignments = environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let command = "\(assignments) \(StackEnvironment.packageRoot.appendingPathComponent("scripts/stack").path) \(arguments.joined(separator: " "))"
        let status = system(command)
        guard status == 0 else { throw StackScriptFailed(arguments: arguments, status: status) }
    }

    struct StackScriptFailed: Error { let arguments: [String]; let status: Int32 }
}

@Suite("Restarts of PostgreSQL and the broker (durable local stack)", .serialized, .enabled(if: StackEnvironment.enabled))
struct RestartTests {
    @Test(.timeLimit(.minutes(15))) func nothingIsLostOrDoubledAcrossRestarts() throws {
        let stack = try DurableStack(pgPort: 55437, kafkaPort: 59097)
        defer { stack.down() }
        let owner = try #require(stack.settings["SCEN_POSTGRES_URL"])
        try MigrationRunner.migrate(try PostgresConnection(url: owner), migrations: try MigrationRunner.load(directory: TestDatabase.migrationsDirectory))
        let h = try PipelineHarness("rst", stack: (owner, try #require(stack.settings["SCEN_KAFKA_BROKERS"])))
        let valid = (0..<12).map { PipelineEvents.valid($0, run: h.run) }
        func waitFor(_ sql: String, _ n: Int, timeout: Double) throws -> Int {
            let deadline = Date().addingTimeInterval(timeout)
            var got = -1
            repeat {
                do { got = try h.count(sql) } catch { try? h.reconnect() }   // the test's own connection dies with a restart too
                if got >= n { break }
                Thread.sleep(forTimeInterval: 0.5)
            } while Date() < deadline
            return got
        }

        try h.publish(valid[0..<4].map(\.bytes))
        let ingest = try h.start("scen-ingest", group: "ingest")
        let trainer = try h.start("scen-trainer", group: "trainer")
        #expect(try waitFor("SELECT count(*) AS n FROM corrections", 4, timeout: 120) == 4, "\(ingest.logText().suffix(2000))")

        try stack.restart("postgres")
        try h.publish(valid[4..<8].map(\.bytes))
        #expect(try waitFor("SELECT count(*) AS n FROM corrections", 8, timeout: 180) == 8, "\(ingest.logText().suffix(2000))")

        try stack.restart("kafka")
        try h.publish(valid[8...].map(\.bytes))
        #expect(try waitFor("SELECT count(*) AS n FROM corrections", 12, timeout: 180) == 12, "\(ingest.logText().suffix(2000))")
        #expect(try waitFor("SELECT count(*) AS n FROM edits WHERE status = 'active'", 12, timeout: 600) == 12,
                "\(trainer.logText().suffix(3000))")
        #expect(ingest.isRunning && trainer.isRunning, "a service exited instead of riding the restarts out")

        let rows = try h.db.query("SELECT event_id, status FROM edits")
        #expect(rows.count == 12)
        #expect(Set(try rows.map { try $0.string("event_id") }) == Set(valid.map(\.id)))
        #expect(try h.count("SELECT count(*) AS n FROM dead_letters") == 0)
        #expect(try h.count("SELECT count(*) AS n FROM audit_log WHERE action = 'edit.activated'") == 12)
        ingest.terminate()
        trainer.terminate()
    }
}
