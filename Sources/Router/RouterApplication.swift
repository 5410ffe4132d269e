// The router's HTTP surface: routes, error mapping and the request context (body limit).
import Core
import Foundation
import Hummingbird
import Logging

public struct RouterRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public init(source: Source) { coreContext = .init(source: source) }
    /// Bodies are small JSON documents; anything bigger is refused with 413.
    public var maxUploadSize: Int { 64 * 1024 }
    /// snake_case bodies with ISO 8601 dates.
    public var responseEncoder: JSONEncoder { JSONEncoder.api }
}

/// What the routes need; the service fills it in as the model and edits load.
public final class RouterState: @unchecked Sendable {
    private let lock = NSLock()
    private var _inference: InferenceService?
    private var _edits: (any EditRouting)?
    let modelName: String
    let defaultMaxTokens: Int

    public init(modelName: String, defaultMaxTokens: Int) {
        self.modelName = modelName
        self.defaultMaxTokens = defaultMaxTokens
    }

    public var inference: InferenceService? {
        get { lock.withLock { _inference } }
        set { lock.withLock { _inference = newValue } }
    }

    public var edits: (any EditRouting)? {
        get { lock.withLock { _edits } }
        set { lock.withLock { _edits = newValue } }
    }

    /// Ready once the model and the active edits are loaded.
    public var isReady: Bool { lock.withLock { _inference != nil && _edits != nil } }
}

/// The current routing table of active edits (swapped as edits arrive or are reverted).
public protocol EditRouting: Sendable {
    /// A fresh editor over the current table for one request whose text is `prompt`, or nil when
    /// no edit is active.
    func makeEditor(prompt: String) -> (any RequestEditor)?
    var activeCount: Int { get }
    /// Active edits left out of the table because they cannot be routed (corrupt, wrong shape,
    /// trained on another key); each is logged once.
    var unroutableCount: Int { get }
    /// Stops routing to an edit at once (before the revert is answered).
    func remove(editID: Int64)
}

extension EditRouting {
    public var unroutableCount: Int { 0 }
}

/// The router's routes. `database` serves /v1/edits (absent: those routes are not offered).
public func buildRouter(state: RouterState, metrics: RouterMetrics, database: Database? = nil,
                 adminToken: String? = nil) -> Router<RouterRequestContext> {
    let router = Router(context: RouterRequestContext.self)
    router.middlewares.add(metrics.middleware())
    if let database { addEditRoutes(to: router, state: state, database: database, adminToken: adminToken) }

    router.get("/healthz") { _, _ in StatusResponse(status: "ok") }
    router.get("/readyz") { _, _ -> Response in
        let ready = state.isReady
        return try JSONEncoder().encodeResponse(
            StatusResponse(status: ready ? "ready" : "loading", detail: ready ? nil : "model or active edits not loaded yet"),
            status: ready ? .ok : .serviceUnavailable)
    }
    router.get("/metrics") { _, _ -> Response in
        Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                 body: .init(byteBuffer: .init(string: metrics.render(state: state))))
    }

    router.post("/v1/generate") { request, context -> Response in
        let body = try await decodeBody(GenerateRequest.self, request, context)
        let options = try body.sampling.options(maxTokens: try validatedMaxTokens(body.maxTokens, default: state.defaultMaxTokens))
        if body.sampling.stream == true {
            return try await streamed(state: state, metrics: metrics, prompt: body.prompt, options: options) { event in
                switch event {
                case .start(let edit): GenerateChunk(text: "", edit: .some(edit.map(FiredEdit.init)))
                case .text(let piece): GenerateChunk(text: piece)
                case .end(let r): GenerateChunk(text: "", tokens: r.ids.count, promptTokens: r.promptTokens, finishReason: r.finishReason)
                case .failed: nil
                }
            }
        }
        let result = try await generate(state: state, metrics: metrics, prompt: body.prompt, options: options)
        return try context.responseEncoder.encodeResponse(
            GenerateResponse(text: result.text, tokens: result.ids.count, promptTokens: result.promptTokens,
                             edit: result.edit.map(FiredEdit.init), finishReason: result.finishReason), status: .ok)
    }

    router.post("/v1/completions") { request, context -> Response in
        let body = try await decodeBody(CompletionRequest.self, request, context)
        if let n = body.n, n != 1 { throw HTTPError(.badRequest, message: "n must be 1") }
        if body.logprobs != nil { throw HTTPError(.badRequest, message: "logprobs are not offered") }
        let options = try body.sampling.options(maxTokens: try validatedMaxTokens(body.maxTokens, default: 16))
        let id = "cmpl-\(UUID().uuidString.lowercased())", created = Int(Date().timeIntervalSince1970)
        let model = body.model ?? state.modelName
        if body.sampling.stream == true {
            return try await streamed(state: state, metrics: metrics, prompt: body.prompt, options: options) { event in
                switch event {
                case .start(let edit): CompletionChunk(id: id, created: created, model: model, text: "", scenEdit: edit.map(FiredEdit.init))
                case .text(let piece): CompletionChunk(id: id, created: created, model: model, text: piece)
                case .end(let r): CompletionChunk(id: id, created: created, model: model, text: "", finishReason: r.finishReason)
                case .failed: nil
                }
            }
        }
        let result = try await generate(state: state, metrics: metrics, prompt: body.prompt, options: options)
        return try context.responseEncoder.encodeResponse(CompletionResponse(
            id: id, created: created, model: model,
            choices: [.init(text: result.text, index: 0, finishReason: result.finishReason)],
            usage: .init(promptTokens: result.promptTokens, completionTokens: result.ids.count,
                         totalTokens: result.promptTokens + result.ids.count),
            scenEdit: result.edit.map(FiredEdit.init)), status: .ok)
    }
    return router
}

extension FiredEdit {
    init(_ edit: (id: Int64, score: Float)) { self.init(id: edit.id, score: edit.score) }
}

/// What a stream reports, in order: the prompt was read (with the edit that answers), text as it
/// settles, the end (or a failure after the start).
enum StreamEvent: Sendable {
    case start((id: Int64, score: Float)?)
    case text(String)
    case end(GenerationResult)
    case failed(String)
}

/// A generation streamed as Server-Sent Events (`data: {json}` per chunk, then `data: [DONE]`).
/// Errors before the prompt is read (queue full, prompt too long) are HTTP errors as without
/// streaming; one after it ends the stream with `data: {"error": {"message"}}` and no [DONE]. A
/// client that disconnects ends the generation at the next token, freeing the worker.
private func streamed<Chunk: Encodable>(state: RouterState, metrics: RouterMetrics, prompt: String, options: GenerationOptions,
                                        chunk: @escaping @Sendable (StreamEvent) -> Chunk?) async throws -> Response {
    let (events, sink) = AsyncStream<StreamEvent>.makeStream()
    let gone = Flag(), started = Flag()
    try await withCheckedThrowingContinuation { (ready: CheckedContinuation<Void, any Error>) in
        Task {
            do {
                let result = try await generate(state: state, metrics: metrics, prompt: prompt, options: options,
                    onStart: { edit in
                        sink.yield(.start(edit))
                        if started.raise() { ready.resume() }
                    },
                    onText: { piece in
                        sink.yield(.text(piece))
                        return !gone.isSet
                    })
                sink.yield(.end(result))
            } catch {
                if started.raise() { ready.resume(throwing: error) } else {
                    Logger(label: "scen-router").error("streamed generation failed", metadata: ["error": "\(error)"])
                    sink.yield(.failed("generation failed: \(error)"))
                }
            }
            sink.finish()
        }
    }
    let encoder = JSONEncoder()
    return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                    body: ResponseBody { writer in
        do {
            for await event in events {
                var line = ByteBuffer(string: "data: ")
                if case .failed(let message) = event {
                    line.writeBytes(try encoder.encode(["error": ["message": message]]))
                    line.writeString("\n\n")
                    try await writer.write(line)
                    try await writer.finish(nil)
                    return
                }
                guard let c = chunk(event) else { continue }
                line.writeBytes(try encoder.encode(c))
                line.writeString("\n\n")
                try await writer.write(line)
            }
            try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
            try await writer.finish(nil)
        } catch {
            _ = gone.raise()
            throw error
        }
    })
}

/// Decodes a JSON body, turning decoding failures into a 400 that says what is wrong.
private func decodeBody<T: Decodable>(_ type: T.Type, _ request: Request, _ context: RouterRequestContext) async throws -> T {
    let buffer: ByteBuffer
    do {
        buffer = try await request.body.collect(upTo: context.maxUploadSize)
    } catch {
        throw HTTPError(.contentTooLarge, message: "the body is larger than \(context.maxUploadSize) bytes")
    }
    do {
        return try JSONDecoder().decode(type, from: buffer)
    } catch let DecodingError.keyNotFound(key, _) {
        throw HTTPError(.badRequest, message: "missing field \"\(key.stringValue)\"")
    } catch let DecodingError.typeMismatch(_, ctx) {
        throw HTTPError(.badRequest, message: "wrong type for \"\(ctx.codingPath.map(\.stringValue).joined(separator: "."))\"")
    } catch let DecodingError.valueNotFound(_, ctx) {
        throw HTTPError(.badRequest, message: "null for \"\(ctx.codingPath.map(\.stringValue).joined(separator: "."))\"")
    } catch {
        throw HTTPError(.badRequest, message: "the body is not valid JSON")
    }
}

private func validatedMaxTokens(_ value: Int?, default fallback: Int) throws -> Int {
    let v = value ?? fallback
    guard v >= 1 else { throw HTTPError(.badRequest, message: "max_tokens must be at least 1") }
    return v  // capped by the service
}

private func generate(state: RouterState, metrics: RouterMetrics, prompt: String, options: GenerationOptions,
                      onStart: @escaping @Sendable ((id: Int64, score: Float)?) -> Void = { _ in },
                      onText: (@Sendable (String) -> Bool)? = nil) async throws -> GenerationResult {
    guard let inference = state.inference, let edits = state.edits else {
        throw HTTPError(.serviceUnavailable, message: "the model is still loading; see /readyz")
    }
    guard !prompt.isEmpty else { throw HTTPError(.badRequest, message: "prompt must not be empty") }
    do {
        let result = try await inference.generate(prompt: prompt, options: options, makeEditor: { edits.makeEditor(prompt: prompt) },
                                                  onStart: onStart, onText: onText)
        metrics.recordGeneration(result)
        return result
    } catch InferenceError.busy(let queued) {
        metrics.recordRejection()
        throw HTTPError(.tooManyRequests, headers: [.retryAfter: "1"], message: "too many requests in flight (\(queued) queued); retry later")
    } catch InferenceError.promptTooLong(let tokens, let limit) {
        throw HTTPError(.badRequest, message: "prompt is \(tokens) tokens; at most \(limit) fit with max_tokens")
    } catch InferenceError.emptyPrompt {
        throw HTTPError(.badRequest, message: "prompt must not be empty")
    }
}

extension JSONEncoder {
    func encodeResponse<T: Encodable>(_ value: T, status: HTTPResponse.Status) throws -> Response {
        Response(status: status, headers: [.contentType: "application/json; charset=utf-8"],
                 body: .init(byteBuffer: .init(bytes: try encode(value))))
    }
}

/// The routing table when no edit is active: every request gets the base model.
public struct NoActiveEdits: EditRouting {
    public init() {}
    public func makeEditor(prompt: String) -> (any RequestEditor)? { nil }
    public var activeCount: Int { 0 }
    public func remove(editID: Int64) {}
}
