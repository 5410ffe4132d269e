// The edit pipeline end to end on the local stack: the built scen-ingest and scen-trainer
// binaries as child processes, killed with SIGKILL at random moments and restarted. Each test
// uses its own topics (SCEN_TOPIC_PREFIX), database and consumer groups.
import Foundation
import Storage
import TestSupport
import Testing

/// One isolated pipeline: topic prefix, database, log folder.
final class PipelineHarness {
    let run: String
    let prefix: String
    let databaseURL: String
    let brokers: String
    let logs: URL
    private(set) var db: PostgresConnection
    private var counter = 0

    /// On the test stack, with a fresh database; or on `stack` (a migrated database and brokers).
    init(_ label: String, stack: (postgresURL: String, brokers: String)? = nil) throws {
        run = label + String(UUID().uuidString.prefix(6)).lowercased()
        prefix = "t.\(run)."
        databaseURL = try stack?.postgresURL ?? TestDatabase.create()
        brokers = try stack?.brokers ?? StackEnvironment.requireKafka()
        logs = FileManager.default.temporaryDirectory.appendingPathComponent("scen-pipeline-\(run)")
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        db = try PostgresConnection(url: databaseURL)
        try KafkaAdmin(brokers: brokers).createTopics([corrections, deadLetters, editJobs], partitions: 1)
    }

    func topic(_ name: String) -> String { prefix + String(name.dropFirst(PipelineTopics.prefix.count)) }
    var corrections: String { topic(PipelineTopics.corrections) }
    var deadLetters: String { topic(PipelineTopics.correctionsDeadLetters) }
    var editJobs: String { topic(PipelineTopics.editJobs) }

    var environment: [String: String] {
        // Each service as its own role (migration 0004), as deployed.
        ["SCEN_POSTGRES_URL": databaseURL, "SCEN_INGEST_POSTGRES_URL": TestDatabase.url(databaseURL, user: "scen_ingest"),
         "SCEN_TRAINER_POSTGRES_URL": TestDatabase.url(databaseURL, user: "scen_trainer"),
         "SCEN_ROUTER_POSTGRES_URL": TestDatabase.url(databaseURL, user: "scen_router"), "SCEN_KAFKA_BROKERS": brokers, "SCEN_TOPIC_PREFIX": prefix,
         "SCEN_KAFKA_SETTINGS": "session.timeout.ms=6000,heartbeat.interval.ms=1000",
         "SCEN_MODEL": ModelTestEnvironment.modelPath ?? "models/gemma-3-270m-q4_k_m.gguf",
         "SCEN_MIGRATIONS": TestDatabase.migrationsDirectory, "SCEN_METRICS_PORT": "0", "OPENBLAS_NUM_THREADS": "2"]
    }

    func publish(_ values: [[UInt8]]) throws {
        let producer = try KafkaProducer(brokers: brokers)
        try producer.send(values.map { KafkaOutgoing(topic: corrections, value: $0) }, timeout: 60)
    }

    func start(_ binary: String, group: String, idle: Double? = nil, extra: [String] = []) throws -> ServiceProcess {
        counter += 1
        var args = ["--group", "\(run)-\(group)"] + extra  // the database is migrated; the service roles could not
        if let idle { args += ["--exit-when-idle", String(idle)] }
        return try ServiceProcess(binary, arguments: args, environment: environment, logDirectory: logs, tag: "\(counter)-\(binary)")
    }

    /// A new connection for `db` (after a restart of PostgreSQL).
    func reconnect() throws { db = try PostgresConnection(url: databaseURL) }

    func count(_ sql: String, _ params: [PostgresValue?] = []) throws -> Int {
        Int(try db.query(sql, params).first?.int("n") ?? -1)
    }

    /// Reads `topic` from the beginning with a fresh group until `done` says so or `timeout`.
    func read(_ topic: String, timeout: Double, until done: ([KafkaMessage]) -> Bool) throws -> [KafkaMessage] {
        let consumer = try KafkaConsumer(brokers: brokers, group: "\(run)-reader-\(UUID().uuidString.prefix(6))", topics: [topic],
                                         settings: testConsumerSettings)
        var got: [KafkaMessage] = []
        let deadline = Date().addingTimeInterval(timeout)
        while !done(got) && Date() < deadline {
            if let m = try consumer.poll(timeout: 0.5) { got.append(m) }
        }
        // Anything else already there (duplicates) within a short grace period.
        let grace = Date().addingTimeInterval(1.5)
        while Date() < grace { if let m = try consumer.poll(timeout: 0.3) { got.append(m) } }
        return got
    }

    /// Row counts that must not change when input is delivered again.
    func snapshot() throws -> [String: Int] {
        var out: [String: Int] = [:]
        for table in ["corrections", "edits", "experts", "neurons", "dead_letters", "audit_log"] {
            out[table] = try count("SELECT count(*) AS n FROM \(table)")
        }
        out["active"] = try count("SELECT count(*) AS n FROM edits WHERE status = 'active'")
        out["attempts"] = try count("SELECT coalesce(sum(attempts), 0)::bigint AS n FROM edits")
        return out
    }
}

@Suite("Edit pipeline end to end (local stack, built binaries)", .serialized, .enabled(if: StackEnvironment.enabled))
struct PipelineTests {
    /// 200 events (170 distinct valid, 10 re-sent ids, 20 malformed) through scen-ingest, killed
    /// with SIGKILL three times at random moments; then the whole topic delivered again.
    @Test(.timeLimit(.minutes(5))) func ingestTwoHundredEventsThroughKills() throws {
        let h = try PipelineHarness("ing")
        let valid = (0..<170).map { PipelineEvents.valid($0, run: h.run) }
        let malformed = PipelineEvents.malformed(run: h.run)
        var messages: [[UInt8]] = []
        var expectedReason: [Int64: RejectionReason] = [:]
        func add(_ bytes: [UInt8]) { messages.append(bytes) }
        for v in valid[0..<85] { add(v.bytes) }
        for m in malformed[0..<10] { expectedReason[Int64(messages.count)] = m.reason; add(m.bytes) }
        for v in valid[85...] { add(v.bytes) }
        for v in valid[0..<10] { add(v.bytes) }  // the same event ids again
        for m in malformed[10...] { expectedReason[Int64(messages.count)] = m.reason; add(m.bytes) }
        #expect(messages.count == 200)

        // Publish in four chunks while the ingest service is killed and restarted.
        try h.publish(Array(messages[0..<50]))
        var ingest = try h.start("scen-ingest", group: "ingest", idle: 4)
        for round in 1...3 {
            #expect(ingest.waitForLog("msg=consuming", timeout: 60), "ingest did not start: \(ingest.logText().suffix(2000))")
            Thread.sleep(forTimeInterval: Double.random(in: 0.2...3.0))
            ingest.kill9()
            try h.publish(Array(messages[(round * 50)..<(round * 50 + 50)]))
            ingest = try h.start("scen-ingest", group: "ingest", idle: 4)
        }
        #expect(ingest.waitForExit(timeout: 120), "ingest did not finish: \(ingest.logText().suffix(2000))")

        // Exactly one correction and one queued edit per distinct valid id.
        #expect(try h.count("SELECT count(*) AS n FROM corrections") == 170)
        #expect(try h.count("SELECT count(*) AS n FROM edits") == 170)
        #expect(try h.count("SELECT count(*) AS n FROM edits WHERE status = 'queued'") == 170)
        let ids = Set(try h.db.query("SELECT event_id FROM edits").map { try $0.string("event_id") })
        #expect(ids == Set(valid.map(\.id)))
        #expect(try h.count("SELECT count(*) AS n FROM audit_log WHERE action = 'edit.queued'") == 170)
        #expect(try h.count("SELECT count(DISTINCT edit_id) AS n FROM audit_log WHERE action = 'edit.queued'") == 170)

        // Every malformed event dead-lettered once, with its reason, in the table and the topic.
        let letters = try h.db.query("SELECT kafka_offset, reason, dlq_produced_at IS NOT NULL AS sent FROM dead_letters")
        #expect(letters.count == 20)
        for row in letters {
            let offset = try row.int("kafka_offset")
            #expect(try row.string("reason") == expectedReason[offset]?.rawValue, "offset \(offset)")
            #expect(try row.bool("sent"))
        }
        #expect(try h.count("SELECT count(*) AS n FROM audit_log WHERE action = 'event.dead_lettered'") == 20)
        let dlq = try h.read(h.deadLetters, timeout: 60) { Set($0.map { $0.headers[PipelineHeaders.originalOffset] ?? [] }).count >= 20 }
        var seen: [Int64: RejectionReason] = [:]
        for m in dlq {
            let offset = Int64(String(decoding: m.headers[PipelineHeaders.originalOffset] ?? [], as: UTF8.self)) ?? -1
            seen[offset] = RejectionReason(rawValue: String(decoding: m.headers[PipelineHeaders.reason] ?? [], as: UTF8.self))
            #expect(m.value == messages[Int(offset)], "DLQ value of offset \(offset) is the original bytes")
            #expect(String(decoding: m.headers[PipelineHeaders.originalTopic] ?? [], as: UTF8.self) == h.corrections)
        }
        #expect(seen == expectedReason)

        // A job for every edit (a replay after a kill may have sent one twice; the trainer skips those).
        let edits = Set(try h.db.query("SELECT id FROM edits").map { try $0.int("id") })
        let jobs = try h.read(h.editJobs, timeout: 60) { Set($0.compactMap { EditJob.decode($0.value)?.editID }) == edits }
        #expect(Set(jobs.compactMap { EditJob.decode($0.value)?.editID }) == edits)
        print("pipeline: 200 events through 3 SIGKILLs: \(jobs.count) job messages for \(edits.count) edits, \(dlq.count) DLQ messages for 20 dead letters")

        // The whole topic delivered again (a new consumer group): nothing changes.
        let before = try h.snapshot()
        let again = try h.start("scen-ingest", group: "ingest-again", idle: 4)
        #expect(again.waitForExit(timeout: 120))
        #expect(again.logText().contains("consumed=200"), "\(again.logText().suffix(1000))")
        #expect(try h.snapshot() == before)
    }

    /// Ingest throughput without kills: validation (with the real tokenizer) + one transaction +
    /// the job's acknowledgement, per event.
    @Test(.timeLimit(.minutes(3))) func ingestThroughput() throws {
        let h = try PipelineHarness("thr")
        let n = 1_000
        try h.publish((0..<n).map { PipelineEvents.valid($0, run: h.run).bytes })
        let ingest = try h.start("scen-ingest", group: "ingest", idle: 3)
        #expect(ingest.waitForExit(timeout: 150))
        #expect(try h.count("SELECT count(*) AS n FROM edits") == n)
        let span = try h.db.query("SELECT extract(epoch FROM max(received_at) - min(received_at))::float8 AS s FROM corrections")
        let seconds = try span.first?.double("s") ?? 0
        let rate = Double(n - 1) / max(seconds, 1e-6)
        print("pipeline: ingest throughput \(Int(rate)) events/s (\(n) events in \(String(format: "%.2f", seconds)) s)")
        #expect(rate > 20)
    }

    /// 200 events (180 valid, 20 malformed in 20 ways; +3 re-sent ids) trained by the real SCEN
    /// engine, with scen-ingest killed once and scen-trainer killed twice at random moments.
    @Test(.timeLimit(.minutes(20))) func editsTrainedThroughKills() throws {
        let h = try PipelineHarness("e2e")
        let valid = (0..<180).map { PipelineEvents.valid($0, run: h.run) }
        let n = valid.count
        let malformed = PipelineEvents.malformed(run: h.run)
        var messages: [[UInt8]] = []
        for (i, v) in valid.enumerated() {
            messages.append(v.bytes)
            if i < malformed.count { messages.append(malformed[i].bytes) }
        }
        messages += valid[0..<3].map(\.bytes)
        try h.publish(messages)

        var trainer = try h.start("scen-trainer", group: "trainer")
        var ingest = try h.start("scen-ingest", group: "ingest")
        #expect(ingest.waitForLog("msg=consuming", timeout: 60))
        Thread.sleep(forTimeInterval: Double.random(in: 0.5...4))
        ingest.kill9()
        ingest = try h.start("scen-ingest", group: "ingest")

        let started = Date()
        for (kill, afterTrained) in [(1, Int.random(in: 1...6)), (2, Int.random(in: 10...18))] {
            let deadline = Date().addingTimeInterval(300)
            while try h.count("SELECT count(*) AS n FROM edits WHERE status = 'active'") < afterTrained && Date() < deadline {
                Thread.sleep(forTimeInterval: 0.2)
            }
            Thread.sleep(forTimeInterval: Double.random(in: 0...1.2))
            trainer.kill9()
            print("pipeline: trainer SIGKILL \(kill) with \(try h.count("SELECT count(*) AS n FROM edits WHERE status = 'active'")) edits active")
            trainer = try h.start("scen-trainer", group: "trainer")
        }
        let deadline = Date().addingTimeInterval(900)
        while try h.count("SELECT count(*) AS n FROM edits WHERE status IN ('active', 'failed')") < n && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.5)
        }
        let wall = Date().timeIntervalSince(started)

        // Graceful shutdown: SIGTERM between messages exits cleanly.
        ingest.terminate()
        trainer.terminate()
        #expect(ingest.exitCode == 0 && trainer.exitCode == 0)
        #expect(trainer.logText().contains("shutdown requested"))

        // Exactly one active edit per valid event; nothing lost, nothing doubled.
        let rows = try h.db.query("SELECT id, event_id, status, attempts FROM edits ORDER BY id")
        #expect(rows.count == n)
        #expect(Set(try rows.map { try $0.string("event_id") }) == Set(valid.map(\.id)))
        for row in rows {
            let id = try row.int("id")
            #expect(try row.string("status") == "active", "edit \(id)")
            #expect((1...3).contains(try row.int("attempts")))
        }
        #expect(try h.count("SELECT count(*) AS n FROM experts") == n)
        #expect(try h.count("SELECT count(*) AS n FROM neurons") == n)
        #expect(try h.count("SELECT count(*) AS n FROM dead_letters") == 20)
        // Each edit's history: queued, one training row per attempt, activated, then at most
        // refinements of its neuron by later edits.
        var refinements = 0
        for row in rows {
            let id = try row.int("id")
            let actions = try h.db.query("SELECT action FROM audit_log WHERE edit_id = $1 ORDER BY id", [.int(id)]).map { try $0.string("action") }
            let settled = actions.prefix { $0 != "edit.neuron_refined" }
            #expect(settled.first == "edit.queued" && settled.last == "edit.activated", "edit \(id): \(actions)")
            #expect(actions.filter { $0 == "edit.training" }.count == Int(try row.int("attempts")), "edit \(id): \(actions)")
            #expect(actions.filter { $0 == "edit.activated" }.count == 1, "edit \(id): \(actions)")
            #expect(actions.dropFirst(settled.count).allSatisfy { $0 == "edit.neuron_refined" }, "edit \(id): \(actions)")
            refinements += actions.count - settled.count
        }
        let mean = try h.db.query("SELECT avg((metrics->>'seconds')::float8) AS s FROM edits").first?.double("s") ?? 0
        print("pipeline: \(n) edits active after 1 ingest and 2 trainer SIGKILLs in \(Int(wall)) s wall clock (\(String(format: "%.1f", Double(n) / wall * 60)) edits/min including restarts; \(refinements) neuron refinements); training alone \(String(format: "%.2f", mean)) s/edit = \(String(format: "%.0f", 60 / max(mean, 1e-6))) edits/min")

        // All jobs delivered again to a fresh trainer group: every one is skipped.
        let before = try h.snapshot()
        let again = try h.start("scen-trainer", group: "trainer-again", idle: 4)
        #expect(again.waitForExit(timeout: 180))
        #expect(again.logText().contains("trained=0"), "\(again.logText().suffix(1500))")
        #expect(try h.snapshot() == before)
    }
}
