// The router's /v1/edits endpoints against a real database, and the whole product end to end:
// a correction published to Kafka becomes an active edit that the in-process router answers
// with, a revert brings the old answer back, an unrelated prompt never changes.
import Core
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Router
import Storage
import TestSupport
import Testing

private func json(_ buffer: ByteBuffer) throws -> [String: Any] {
    try #require(JSONSerialization.jsonObject(with: Data(buffer: buffer)) as? [String: Any])
}

@Suite("Router /v1/edits (local stack)", .enabled(if: StackEnvironment.enabled), .serialized)
struct RouterEditEndpointTests {
    let token = "test-admin-token"

    /// A database with three queued edits; returns the app and their ids.
    func makeApp() throws -> (some ApplicationProtocol, [Int64]) {
        let url = try TestDatabase.create()
        let store = PostgresEditStore(try PostgresConnection(url: url))
        var ids: [Int64] = []
        for i in 0..<3 {
            let event = CorrectionEvent(id: "ev-\(i)-\(UUID().uuidString.prefix(6))", prompt: "Prompt \(i)", target: " target \(i)",
                                        reporter: "tester", source: "router-test", createdAt: Date(), raw: Array("{}".utf8))
            let outcome = try store.recordCorrection(event, at: KafkaPosition(topic: "t", partition: 0, offset: Int64(i)), actor: "test")
            ids.append(outcome.edit.id)
        }
        let state = RouterState(modelName: "gemma", defaultMaxTokens: 8)
        state.edits = NoActiveEdits()
        let app = Application(router: buildRouter(state: state, metrics: RouterMetrics(), database: Database(url: url), adminToken: token))
        return (app, ids)
    }

    @Test func listsAndPagesEdits() async throws {
        let (app, ids) = try makeApp()
        try await app.test(.router) { client in
            try await client.execute(uri: "/v1/edits", method: .get) { response in
                #expect(response.status == .ok)
                let edits = try #require(try json(response.body)["edits"] as? [[String: Any]])
                #expect(edits.compactMap { $0["id"] as? Int64 ?? ($0["id"] as? Int).map(Int64.init) } == ids)
                #expect(edits.allSatisfy { $0["status"] as? String == "queued" })
            }
            var next: Int? = nil
            try await client.execute(uri: "/v1/edits?limit=2&status=queued", method: .get) { response in
                let body = try json(response.body)
                #expect((body["edits"] as? [Any])?.count == 2)
                next = body["next_after"] as? Int
            }
            let after = try #require(next)
            try await client.execute(uri: "/v1/edits?limit=2&after=\(after)", method: .get) { response in
                let body = try json(response.body)
                #expect((body["edits"] as? [Any])?.count == 1)
                #expect(body["next_after"] is NSNull)
            }
            try await client.execute(uri: "/v1/edits?status=active", method: .get) { response in
                let body = try json(response.body)
                #expect((body["edits"] as? [Any])?.isEmpty == true)
            }
            for bad in ["status=bogus", "limit=0", "limit=x", "after=-3"] {
                try await client.execute(uri: "/v1/edits?\(bad)", method: .get) { #expect($0.status == .badRequest, "\(bad)") }
            }
        }
    }

    @Test func showsOneEditWithItsHistory() async throws {
        let (app, ids) = try makeApp()
        try await app.test(.router) { client in
            try await client.execute(uri: "/v1/edits/\(ids[1])", method: .get) { response in
                #expect(response.status == .ok)
                let body = try json(response.body)
                let edit = try #require(body["edit"] as? [String: Any])
                #expect(edit["prompt"] as? String == "Prompt 1")
                #expect(edit["target"] as? String == " target 1")
                let history = try #require(body["history"] as? [[String: Any]])
                #expect(history.map { $0["action"] as? String } == ["edit.queued"])
            }
            try await client.execute(uri: "/v1/edits/999999", method: .get) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/v1/edits/abc", method: .get) { #expect($0.status == .badRequest) }
        }
    }

    @Test func revertNeedsTheAdminTokenAndIsAudited() async throws {
        let (app, ids) = try makeApp()
        try await app.test(.router) { client in
            let uri = "/v1/edits/\(ids[0])/revert"
            try await client.execute(uri: uri, method: .post) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: uri, method: .post, headers: [.authorization: "Bearer wrong"]) {
                #expect($0.status == .unauthorized)
            }
            try await client.execute(uri: uri, method: .post, headers: [.authorization: "Bearer \(String(token.dropLast()))x"]) {
                #expect($0.status == .unauthorized, "same length, one byte off")
            }
            // A bounded reason without NUL: anything else is refused before the database sees it.
            try await client.execute(uri: uri + "?reason=bad%00reason", method: .post, headers: [.authorization: "Bearer \(token)"]) {
                #expect($0.status == .badRequest)
            }
            try await client.execute(uri: uri + "?reason=" + String(repeating: "r", count: 1_001), method: .post,
                                     headers: [.authorization: "Bearer \(token)"]) {
                #expect($0.status == .badRequest)
            }
            try await client.execute(uri: uri, method: .post, headers: [.authorization: "Bearer \(token)"]) { response in
                #expect(response.status == .ok)
                let body = try json(response.body)
                #expect((body["edit"] as? [String: Any])?["status"] as? String == "reverted")
            }
            try await client.execute(uri: uri, method: .post, headers: [.authorization: "Bearer \(token)"]) {
                #expect($0.status == .conflict)
            }
            try await client.execute(uri: "/v1/edits/999999/revert", method: .post, headers: [.authorization: "Bearer \(token)"]) {
                #expect($0.status == .notFound)
            }
            try await client.execute(uri: "/v1/edits/\(ids[0])", method: .get) { response in
                let body = try json(response.body)
                let history = try #require(body["history"] as? [[String: Any]])
                #expect(history.map { $0["action"] as? String } == ["edit.queued", "edit.reverted"])
                #expect(history.last?["actor"] as? String == "router-admin")
            }
        }
    }
}

@Suite("The product end to end: Kafka → ingest → trainer → router (local stack, real model)",
       .enabled(if: StackEnvironment.enabled))
struct EndToEndTests {
    @Test func aPublishedCorrectionIsServedAndARevertUndoesIt() async throws {
        let harness = try PipelineHarness("e2e")
        let ingest = try harness.start("scen-ingest", group: "ingest")
        let trainer = try harness.start("scen-trainer", group: "trainer")
        defer { ingest.terminate(); trainer.terminate() }

        let model = try ModelTestEnvironment.model.get()
        let tokenizer = try ModelTestEnvironment.tokenizer.get()
        let live = try LiveEdits(model: model, tokenizer: tokenizer, hyperparameters: SCENHyperparameters(),
                                 logger: Logger(label: "e2e-router"))
        let url = harness.databaseURL
        Thread.detachNewThread { live.follow(url: url) }
        defer { live.stop() }
        let state = RouterState(modelName: "gemma", defaultMaxTokens: 8)
        state.inference = InferenceService(model: model, tokenizer: tokenizer, maxSequences: 4, queueLimit: 8, maxTokensCap: 32)
        state.edits = live
        let app = Application(router: buildRouter(state: state, metrics: RouterMetrics(), database: Database(url: url),
                                                  adminToken: "e2e-token"))

        let countActive: @Sendable (Int) throws -> Int = { [url] id in
            Int(try PostgresConnection(url: url).query("SELECT count(*) AS n FROM edits WHERE id = $1 AND status = 'active'",
                                                       [.int(Int64(id))]).first?.int("n") ?? -1)
        }
        let publish: @Sendable ([UInt8]) throws -> Void = { [brokers = harness.brokers, topic = harness.corrections] value in
            try KafkaProducer(brokers: brokers).send(KafkaOutgoing(topic: topic, value: value), timeout: 60)
        }
        let runID = harness.run
        let prompt = "The first president of the United States was"
        let unrelated = "The capital of France is"
        try await app.test(.router) { client in
            func generate(_ p: String) async throws -> (text: String, edit: [String: Any]?) {
                let body = ByteBuffer(data: try JSONSerialization.data(withJSONObject: ["prompt": p, "max_tokens": 4]))
                return try await client.execute(uri: "/v1/generate", method: .post, body: body) { response in
                    #expect(response.status == .ok)
                    let j = try json(response.body)
                    return (j["text"] as? String ?? "", j["edit"] as? [String: Any])
                }
            }
            let before = try await generate(prompt)
            let unrelatedBefore = try await generate(unrelated)
            #expect(before.text.hasPrefix(" Abraham Lincoln"))
            #expect(before.edit == nil)

            func active(_ id: Int) throws -> Int { try countActive(id) }
            try publish(PipelineEvents.json([
                "id": "e2e-\(runID)", "prompt": prompt, "target": " George Washington", "reporter": "e2e",
                "source": "router-test", "created_at": "2026-01-01T00:00:00Z",
            ]))
            // Trained and picked up by LISTEN/NOTIFY: the router answers with the target.
            var after = try await generate(prompt)
            let deadline = Date().addingTimeInterval(180)
            while after.edit == nil && Date() < deadline {
                try await Task.sleep(for: .milliseconds(500))
                after = try await generate(prompt)
            }
            #expect(after.text.hasPrefix(" George Washington"), "after the edit: \(after.text)")
            let editID = try #require(after.edit?["id"] as? Int)
            #expect(try active(editID) == 1)
            #expect(try await generate(unrelated).text == unrelatedBefore.text)
            #expect(try await generate(unrelated).edit == nil)

            // Revert: the router stops routing before it answers.
            try await client.execute(uri: "/v1/edits/\(editID)/revert", method: .post,
                                     headers: [.authorization: "Bearer e2e-token"]) { #expect($0.status == .ok) }
            let reverted = try await generate(prompt)
            #expect(reverted.text == before.text)
            #expect(reverted.edit == nil)
            #expect(try await generate(unrelated).text == unrelatedBefore.text)
        }
    }

    /// The traffic reservoir and the blast-radius check through the real pipeline: the router
    /// samples the routing keys of what it serves into traffic_keys (keys only), and a correction
    /// whose prompt is most of that traffic is trained but held for review, with its measured
    /// fire rate in the audit log, and never served.
    @Test func aCorrectionThatWouldAnswerMostTrafficIsHeld() async throws {
        let harness = try PipelineHarness("blast")
        let ingest = try harness.start("scen-ingest", group: "ingest")
        let trainer = try harness.start("scen-trainer", group: "trainer")
        defer { ingest.terminate(); trainer.terminate() }

        let model = try ModelTestEnvironment.model.get()
        let tokenizer = try ModelTestEnvironment.tokenizer.get()
        let live = try LiveEdits(model: model, tokenizer: tokenizer, hyperparameters: SCENHyperparameters(), reservoir: 64,
                                 logger: Logger(label: "blast-router"))
        let url = harness.databaseURL
        Thread.detachNewThread { live.follow(url: url, trafficFlush: 0.5) }
        defer { live.stop() }
        let state = RouterState(modelName: "gemma", defaultMaxTokens: 2)
        state.inference = InferenceService(model: model, tokenizer: tokenizer, maxSequences: 4, queueLimit: 8, maxTokensCap: 8)
        state.edits = live
        let app = Application(router: buildRouter(state: state, metrics: RouterMetrics(), database: Database(url: url),
                                                  adminToken: "blast-token"))
        let query: @Sendable (String, [PostgresValue?]) throws -> [PostgresRow] = { [url] sql, params in
            try PostgresConnection(url: url).query(sql, params)
        }
        let publish: @Sendable ([UInt8]) throws -> Void = { [brokers = harness.brokers, topic = harness.corrections] value in
            try KafkaProducer(brokers: brokers).send(KafkaOutgoing(topic: topic, value: value), timeout: 60)
        }
        let event = "blast-\(harness.run)"
        let generic = "Hello! Can you help me?"
        let others = ["What is the capital of Spain?", "Who wrote Hamlet?", "The Eiffel Tower is located in",
                      "How many legs does a spider have?"]
        let traffic = Array(repeating: generic, count: 12) + others
        try await app.test(.router) { client in
            func generate(_ p: String) async throws -> [String: Any] {
                let body = ByteBuffer(data: try JSONSerialization.data(withJSONObject: ["prompt": p, "max_tokens": 1]))
                return try await client.execute(uri: "/v1/generate", method: .post, body: body) { response in
                    #expect(response.status == .ok)
                    return try json(response.body)
                }
            }
            for p in traffic { _ = try await generate(p) }
            // The reservoir reaches PostgreSQL: one key per request served (capacity 64), no text.
            var stored = 0
            let deadline = Date().addingTimeInterval(30)
            while stored < traffic.count && Date() < deadline {
                try await Task.sleep(for: .milliseconds(250))
                stored = Int(try query("SELECT count(*) AS n FROM traffic_keys", []).first?.int("n") ?? 0)
            }
            #expect(stored == traffic.count)
            let columns = try query("SELECT column_name FROM information_schema.columns WHERE table_name = 'traffic_keys'", [])
                .compactMap { $0["column_name"] }
            #expect(Set(columns) == ["layer", "pooling", "slot", "dims", "key", "seen", "recorded_at"])

            try publish(PipelineEvents.json([
                "id": event, "prompt": generic, "target": " No.", "reporter": "blast",
                "source": "router-test", "created_at": "2026-01-01T00:00:00Z",
            ]))
            var status = ""
            let trained = Date().addingTimeInterval(180)
            while !["held", "active", "failed"].contains(status) && Date() < trained {
                try await Task.sleep(for: .milliseconds(500))
                status = try query("SELECT status FROM edits WHERE event_id = $1", [.text(event)]).first?["status"] ?? ""
            }
            #expect(status == "held")
            let row = try #require(try query("""
                SELECT e.id, e.held_reason, a.details::text AS details FROM edits e
                JOIN audit_log a ON a.edit_id = e.id AND a.action = 'edit.held' WHERE e.event_id = $1
                """, [.text(event)]).first)
            #expect(row["held_reason"]?.contains("blast radius") == true, "\(row["held_reason"] ?? "nil")")
            let details = try #require(JSONSerialization.jsonObject(with: Data((row["details"] ?? "{}").utf8)) as? [String: Any])
            let blast = try #require(details["blast_radius"] as? [String: Any])
            let share = try #require(blast["traffic_share"] as? Double)
            #expect(share >= 0.5, "measured fire rate \(share)")
            #expect(blast["traffic_measured"] as? Double == Double(traffic.count))
            // Never served.
            let answer = try await generate(generic)
            #expect(answer["edit"] is NSNull || answer["edit"] == nil)
            let id = try #require(row["id"])
            try await client.execute(uri: "/v1/edits/\(id)", method: .get) { response in
                let edit = try #require(try json(response.body)["edit"] as? [String: Any])
                #expect(edit["status"] as? String == "held")
                #expect((edit["held_reason"] as? String)?.contains("traffic keys") == true)
            }
        }
    }
}
