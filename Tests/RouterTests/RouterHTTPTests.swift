import Core
import Foundation
import Hummingbird
import HummingbirdTesting
import TestSupport
import Testing

import Router

@Suite("Router HTTP (real model)", .enabled(if: ModelTestEnvironment.enabled), .serialized)
struct RouterHTTPTests {
    func makeApp(slots: Int = 1, queueLimit: Int = 8, cap: Int = 64, ready: Bool = true) throws -> some ApplicationProtocol {
        let (model, tokenizer) = (try ModelTestEnvironment.model.get(), try ModelTestEnvironment.tokenizer.get())
        let state = RouterState(modelName: "gemma-3-270m", defaultMaxTokens: 8)
        let metrics = RouterMetrics()
        if ready {
            state.inference = InferenceService(model: model, tokenizer: tokenizer, maxSequences: slots, queueLimit: queueLimit, maxTokensCap: cap,
                                               context: 4096, metrics: metrics)
            state.edits = NoActiveEdits()
        }
        return Application(router: buildRouter(state: state, metrics: metrics))
    }

    func json(_ buffer: ByteBuffer) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(buffer: buffer)) as? [String: Any])
    }

    @Test func generateAnswersWithTheBaseModel() async throws {
        try await makeApp().test(.router) { client in
            try await client.execute(uri: "/v1/generate", method: .post,
                                     body: ByteBuffer(string: #"{"prompt": "The first president of the United States was", "max_tokens": 2}"#)) { response in
                #expect(response.status == .ok)
                let body = try json(response.body)
                #expect(body["text"] as? String == " Abraham Lincoln")
                #expect(body["tokens"] as? Int == 2)
                #expect(body["edit"] is NSNull)
            }
        }
    }

    @Test func completionsHaveTheOpenAIShape() async throws {
        try await makeApp().test(.router) { client in
            let request = #"{"model": "gemma", "prompt": "The first president of the United States was", "max_tokens": 2, "temperature": 0}"#
            try await client.execute(uri: "/v1/completions", method: .post, body: ByteBuffer(string: request)) { response in
                #expect(response.status == .ok)
                let body = try json(response.body)
                #expect(body["object"] as? String == "text_completion")
                let choice = try #require((body["choices"] as? [[String: Any]])?.first)
                #expect(choice["text"] as? String == " Abraham Lincoln")
                #expect(choice["finish_reason"] as? String == "length")
                let usage = try #require(body["usage"] as? [String: Any])
                #expect(usage["completion_tokens"] as? Int == 2)
                #expect(usage["total_tokens"] as? Int == (usage["prompt_tokens"] as? Int ?? -99) + 2)
            }
        }
    }

    @Test(arguments: [
        (#"{"prompt": 5}"#, "wrong type"),
        (#"{"max_tokens": 5}"#, "missing field \"prompt\""),
        (#"not json"#, "not valid JSON"),
        (#"{"prompt": ""}"#, "must not be empty"),
        (#"{"prompt": "hi", "max_tokens": 0}"#, "max_tokens"),
    ])
    func badGenerateBodiesAreClear400s(body: String, message: String) async throws {
        try await makeApp().test(.router) { client in
            try await client.execute(uri: "/v1/generate", method: .post, body: ByteBuffer(string: body)) { response in
                #expect(response.status == .badRequest)
                let error = try #require(try json(response.body)["error"] as? [String: Any])
                #expect((error["message"] as? String)?.contains(message) == true, "\(error)")
            }
        }
    }

    @Test(arguments: [
        (#"{"prompt": "Hi", "temperature": 5}"#, "temperature"),
        (#"{"prompt": "Hi", "top_p": 0}"#, "top_p"),
        (#"{"prompt": "Hi", "top_k": -1}"#, "top_k"),
        (#"{"prompt": "Hi", "stop": ["a", "b", "c", "d", "e"]}"#, "stop"),
        (#"{"prompt": "Hi", "n": 2}"#, "n must be 1"),
        (#"{"prompt": "Hi", "logprobs": 1}"#, "logprobs"),
    ])
    func badSamplingOptionsAreClear400s(body: String, message: String) async throws {
        try await makeApp().test(.router) { client in
            try await client.execute(uri: "/v1/completions", method: .post, body: ByteBuffer(string: body)) { response in
                #expect(response.status == .badRequest)
                let error = try #require(try json(response.body)["error"] as? [String: Any])
                #expect((error["message"] as? String)?.contains(message) == true, "\(error)")
            }
        }
    }

    /// Sampling: one seed gives one answer; a stop string ends the answer before it.
    @Test func samplingIsRepeatableBySeedAndStopStringsEndTheAnswer() async throws {
        try await makeApp().test(.router) { client in
            func text(_ body: String) async throws -> (String, String) {
                try await client.execute(uri: "/v1/completions", method: .post, body: ByteBuffer(string: body)) { response in
                    #expect(response.status == .ok)
                    let choice = try #require((try json(response.body)["choices"] as? [[String: Any]])?.first)
                    return (choice["text"] as? String ?? "?", choice["finish_reason"] as? String ?? "?")
                }
            }
            let sampled = #"{"prompt": "Once upon a time", "max_tokens": 12, "temperature": 1.0, "top_p": 0.95, "top_k": 50, "seed": 42}"#
            let first = try await text(sampled)
            #expect(try await text(sampled) == first)
            let stopped = try await text(#"{"prompt": "The first president of the United States was", "max_tokens": 8, "stop": " Lincoln"}"#)
            #expect(stopped == (" Abraham", "stop"))
        }
    }

    /// Streaming as curl sees it: Server-Sent Events whose texts add up to the unstreamed answer,
    /// the edit (none here) in the first chunk, the finish reason in the last, then [DONE].
    @Test func streamingIsServerSentEvents() async throws {
        try await makeApp().test(.live) { client in
            let port = try #require(client.port)
            let prompt = "The first president of the United States was"
            let whole = try await client.execute(uri: "/v1/generate", method: .post,
                                                 body: ByteBuffer(string: #"{"prompt": "\#(prompt)", "max_tokens": 6}"#)) {
                try json($0.body)["text"] as? String
            }
            for (path, request) in [("/v1/generate", #"{"prompt": "\#(prompt)", "max_tokens": 6, "stream": true}"#),
                                    ("/v1/completions", #"{"prompt": "\#(prompt)", "max_tokens": 6, "stream": true}"#)] {
                let out = try curl(["-sN", "-X", "POST", "-H", "Content-Type: application/json", "--data", request,
                                    "http://127.0.0.1:\(port)\(path)"])
                let events = out.components(separatedBy: "\n\n").filter { !$0.isEmpty }
                #expect(events.allSatisfy { $0.hasPrefix("data: ") }, "\(out)")
                #expect(events.last == "data: [DONE]")
                let chunks = try events.dropLast().map { e -> [String: Any] in
                    try #require(JSONSerialization.jsonObject(with: Data(e.dropFirst(6).utf8)) as? [String: Any])
                }
                func text(_ c: [String: Any]) -> String {
                    (c["text"] as? String) ?? ((c["choices"] as? [[String: Any]])?.first?["text"] as? String) ?? ""
                }
                #expect(chunks.map(text).joined() == whole, "\(path): \(out)")
                if path == "/v1/generate" {
                    #expect(chunks.first?["edit"] is NSNull, "the first chunk names the edit (none)")
                    #expect(chunks.last?["finish_reason"] as? String == "length")
                    #expect(chunks.last?["tokens"] as? Int == 6)
                } else {
                    #expect(chunks.first?["object"] as? String == "text_completion")
                    #expect((chunks.last?["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String == "length")
                }
            }
        }
    }

    /// A client that goes away mid-stream frees its sequence slot at the next token: with one slot
    /// and no queue, a 3,000-token stream cut after a second leaves room for the next request long
    /// before it could have finished.
    @Test func aDisconnectedStreamFreesItsSlot() async throws {
        try await makeApp(slots: 1, queueLimit: 0, cap: 3000).test(.live) { client in
            let port = try #require(client.port)
            _ = try? curl(["-sN", "--max-time", "1", "-X", "POST", "--data",
                           #"{"prompt": "Tell me a very long story", "max_tokens": 3000, "stream": true}"#,
                           "http://127.0.0.1:\(port)/v1/generate"])
            let deadline = Date().addingTimeInterval(30)
            var status: HTTPResponse.Status = .tooManyRequests
            while Date() < deadline {
                status = try await client.execute(uri: "/v1/generate", method: .post,
                                                  body: ByteBuffer(string: #"{"prompt": "Hi", "max_tokens": 1}"#)) { $0.status }
                if status == .ok { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(status == .ok, "the cancelled stream still holds the only slot")
        }
    }

    @Test func oversizedBodyIs413() async throws {
        let prompt = String(repeating: "a", count: 100_000)
        try await makeApp().test(.router) { client in
            try await client.execute(uri: "/v1/generate", method: .post, body: ByteBuffer(string: #"{"prompt": "\#(prompt)"}"#)) { response in
                #expect(response.status == .contentTooLarge)
            }
        }
    }

    @Test func maxTokensIsCapped() async throws {
        try await makeApp(cap: 3).test(.router) { client in
            try await client.execute(uri: "/v1/generate", method: .post,
                                     body: ByteBuffer(string: #"{"prompt": "Once upon a time", "max_tokens": 500}"#)) { response in
                #expect(response.status == .ok)
                let body = try json(response.body)
                #expect(body["tokens"] as? Int == 3)
            }
        }
    }

    @Test func aFullQueueAnswers429() async throws {
        try await makeApp(slots: 1, queueLimit: 1).test(.router) { client in
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for _ in 0..<6 {
                    group.addTask {
                        try await client.execute(uri: "/v1/generate", method: .post,
                                                 body: ByteBuffer(string: #"{"prompt": "Tell me a story", "max_tokens": 24}"#)) { $0.status }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.contains(.tooManyRequests))
            #expect(statuses.contains(.ok))
            #expect(statuses.allSatisfy { $0 == .ok || $0 == .tooManyRequests })
        }
    }

    @Test func healthReadinessAndMetrics() async throws {
        try await makeApp(ready: false).test(.router) { client in
            try await client.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/readyz", method: .get) { #expect($0.status == .serviceUnavailable) }
            try await client.execute(uri: "/v1/generate", method: .post, body: ByteBuffer(string: #"{"prompt": "Hi"}"#)) {
                #expect($0.status == .serviceUnavailable)
            }
        }
        try await makeApp().test(.router) { client in
            try await client.execute(uri: "/readyz", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v1/generate", method: .post, body: ByteBuffer(string: #"{"prompt": "Hi", "max_tokens": 1}"#)) { _ in }
            try await client.execute(uri: "/v1/generate", method: .post, body: ByteBuffer(string: #"{"prompt": "Hi", "max_tokens": 3}"#)) { _ in }
            try await client.execute(uri: "/metrics", method: .get) { response in
                let text = String(buffer: response.body)
                #expect(text.contains(#"scen_router_requests_total{path="/v1/generate",status="200"} 2"#))
                #expect(text.contains("scen_router_request_seconds_bucket"))
                #expect(text.contains("scen_router_time_to_first_token_seconds_count 2"))
                #expect(text.contains("scen_router_inter_token_seconds_count 1"), "one generation had more than one token")
                #expect(text.contains("scen_router_edits_loaded 0"))
                #expect(text.contains("scen_router_batch_size_count 2"), "one decode step of one row, from the 3-token answer")
                #expect(text.contains("scen_router_queued_requests 0") && text.contains("scen_router_active_sequences 0"))
            }
        }
    }
}

/// Runs curl (a real HTTP client) and returns what it printed; waits for curl alone.
func curl(_ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}
