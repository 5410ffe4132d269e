import Core
import Foundation
import Hummingbird
import HummingbirdTesting
import TestSupport
import Testing

import Router

@Suite("Router HTTP (real model)", .enabled(if: ModelTestEnvironment.enabled), .serialized)
struct RouterHTTPTests {
    func makeApp(workers: Int = 1, queueLimit: Int = 8, cap: Int = 64, ready: Bool = true) throws -> some ApplicationProtocol {
        let (model, tokenizer) = (try ModelTestEnvironment.model.get(), try ModelTestEnvironment.tokenizer.get())
        let state = RouterState(modelName: "gemma-3-270m", defaultMaxTokens: 8)
        if ready {
            state.inference = InferenceService(model: model, tokenizer: tokenizer, workers: workers, queueLimit: queueLimit, maxTokensCap: cap)
            state.edits = NoActiveEdits()
        }
        return Application(router: buildRouter(state: state, metrics: RouterMetrics()))
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

    @Test func nonZeroTemperatureIsRefused() async throws {
        try await makeApp().test(.router) { client in
            try await client.execute(uri: "/v1/completions", method: .post,
                                     body: ByteBuffer(string: #"{"prompt": "Hi", "temperature": 0.7}"#)) { response in
                #expect(response.status == .badRequest)
            }
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
        try await makeApp(workers: 1, queueLimit: 1).test(.router) { client in
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
            try await client.execute(uri: "/metrics", method: .get) { response in
                let text = String(buffer: response.body)
                #expect(text.contains(#"scen_router_requests_total{path="/v1/generate",status="200"} 1"#))
                #expect(text.contains("scen_router_request_seconds_bucket"))
                #expect(text.contains("scen_router_edits_loaded 0"))
            }
        }
    }
}
