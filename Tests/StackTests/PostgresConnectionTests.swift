import Foundation
import Storage
import Testing

@Suite("PostgreSQL through libpq (local stack)", .enabled(if: StackEnvironment.enabled))
struct PostgresConnectionTests {
    @Test func selectOne() throws {
        let db = try PostgresConnection(url: StackEnvironment.requirePostgres())
        let rows = try db.query("SELECT 1 AS one")
        #expect(try rows.first?.int("one") == 1)
    }

    /// Every connection bounds its statements and probes its peer, unless the URL says otherwise.
    @Test func connectionsHaveTimeoutsAndKeepalivesUnlessTheURLSetsThem() throws {
        let url = try StackEnvironment.requirePostgres()
        let db = try PostgresConnection(url: url)
        #expect(try db.query("SHOW statement_timeout").first?.string("statement_timeout") == "1min")
        let separator = url.contains("?") ? "&" : "?"
        let custom = try PostgresConnection(url: url + separator + "options=-c%20statement_timeout%3D200")
        #expect(try custom.query("SHOW statement_timeout").first?.string("statement_timeout") == "200ms")
        #expect {
            try custom.query("SELECT pg_sleep(2)")
        } throws: { error in
            guard case PostgresError.statementFailed(let state, _) = error else { return false }
            return state == "57014"  // query_canceled by statement_timeout
        }
    }

    /// A server that can no longer write (read-only after a failover) calls for a new connection.
    @Test func readOnlyAfterFailoverNeedsANewConnection() throws {
        let db = try PostgresConnection(url: StackEnvironment.requirePostgres())
        try db.query("SET default_transaction_read_only = on")
        #expect {
            try db.query("CREATE TEMP TABLE ro_probe (x int)")
            try db.query("INSERT INTO ro_probe VALUES (1)")
        } throws: { error in
            (error as? PostgresError)?.needsNewConnection == true
        }
        #expect(PostgresError.statementFailed(sqlState: "23505", message: "duplicate").needsNewConnection == false)
    }

    @Test func parametersArriveVerbatim() throws {
        let db = try PostgresConnection(url: StackEnvironment.requirePostgres())
        let hostile = "Robert'); DROP TABLE students;-- \u{1F600} \\x00"
        let bytes: [UInt8] = [0, 1, 2, 255, 39, 92]
        let rows = try db.query(
            "SELECT $1::text AS t, $2::bigint AS i, $3::bytea AS b, $4::text IS NULL AS n, $5::float8 AS d",
            [.text(hostile), .int(-42), .bytes(bytes), nil, .double(0.125)])
        let row = try #require(rows.first)
        #expect(try row.string("t") == hostile)
        #expect(try row.int("i") == -42)
        #expect(try row.bytes("b") == bytes)
        #expect(try row.bool("n"))
        #expect(try row.double("d") == 0.125)
    }

    @Test func failedTransactionRollsBack() throws {
        let db = try PostgresConnection(url: StackEnvironment.requirePostgres())
        let table = "tx_test_\(UInt32.random(in: 0...UInt32.max))"
        try db.query("CREATE TEMP TABLE \(table) (v int PRIMARY KEY)")
        #expect(throws: PostgresError.self) {
            try db.transaction { tx in
                try tx.query("INSERT INTO \(table) VALUES ($1)", [.int(1)])
                try tx.query("INSERT INTO \(table) VALUES ($1)", [.int(1)])  // duplicate key
            }
        }
        #expect(try db.query("SELECT count(*) AS c FROM \(table)").first?.int("c") == 0)
    }

    @Test func statementErrorsCarrySQLState() throws {
        let db = try PostgresConnection(url: StackEnvironment.requirePostgres())
        let error = #expect(throws: PostgresError.self) {
            try db.query("SELECT * FROM no_such_table_here")
        }
        guard case .statementFailed(let state, let message)? = error else {
            Issue.record("expected statementFailed, got \(String(describing: error))")
            return
        }
        #expect(state == "42P01")
        #expect(message.contains("no_such_table_here"))
    }

    @Test func listenReceivesNotify() throws {
        let url = try StackEnvironment.requirePostgres()
        let listener = try PostgresConnection(url: url)
        let sender = try PostgresConnection(url: url)
        let channel = "scen_test_\(UInt32.random(in: 0...UInt32.max))"
        try listener.listen(channel)
        try sender.notify(channel, payload: "edit 42")
        var got: [PostgresNotification] = []
        let deadline = Date().addingTimeInterval(5)
        while got.isEmpty && Date() < deadline { got += try listener.notifications(timeout: 0.5) }
        #expect(got == [PostgresNotification(channel: channel, payload: "edit 42")])
    }

    @Test func badURLIsAClearError() {
        #expect(throws: PostgresError.self) {
            _ = try PostgresConnection(url: "postgresql://postgres@127.0.0.1:1/scen?connect_timeout=2")
        }
    }
}
