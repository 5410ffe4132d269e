// Runs greedy generation for HTTP requests on dedicated worker threads, each owning one
// GemmaSession (KV cache + scratch), behind a bounded queue: a request beyond the queue's
// limit is refused at once (HTTP 429) instead of waiting without bound.
import Core
import Foundation

/// What one generation produced.
public struct GenerationResult: Sendable {
    public var promptTokens: Int
    public var ids: [Int32]
    public var text: String
    /// The edit whose expert was applied, with its indexing-neuron score.
    public var edit: (id: Int64, score: Float)?
    public var seconds: Double
}

enum InferenceError: Error, Sendable {
    case busy(queued: Int)
    case promptTooLong(tokens: Int, limit: Int)
    case emptyPrompt
}

/// Chooses the edit for one request; made fresh per request from the current routing table,
/// used by one worker thread during the request, read after it.
public protocol RequestEditor: DownProjectionEditor, Sendable {
    /// The edit that fired during prefill (nil when none did or before prefill).
    var firedEdit: (id: Int64, score: Float)? { get }
}

public final class InferenceService: @unchecked Sendable {
    let model: GemmaModel
    let tokenizer: GemmaTokenizer
    let maxTokensCap: Int
    let queueLimit: Int
    private let workers: [Worker]
    private let lock = NSLock()
    private var waiting: [(Worker) -> Void] = []
    private var idle: [Worker]
    private var stopIDs: Set<Int32>

    /// `workers` sessions run at once (each forward uses the model's BLAS threads); at most
    /// `queueLimit` further requests wait.
    public init(model: GemmaModel, tokenizer: GemmaTokenizer, workers: Int, queueLimit: Int, maxTokensCap: Int) {
        self.model = model
        self.tokenizer = tokenizer
        self.maxTokensCap = maxTokensCap
        self.queueLimit = queueLimit
        let capacity = model.config.contextLength
        self.workers = (0..<max(1, workers)).map { Worker(index: $0, session: model.makeSession(capacity: min(capacity, 4096))) }
        self.idle = self.workers
        stopIDs = [tokenizer.eosID]
        if let endOfTurn = tokenizer.endOfTurnID { stopIDs.insert(endOfTurn) }
    }

    /// Requests waiting for a worker right now.
    var queued: Int { lock.withLock { waiting.count } }

    /// Greedy continuation of `prompt` (BOS added), with the edit the editor selects, if any.
    /// `makeEditor` runs when a worker takes the request, not when it is queued: a request that
    /// waited through a revert routes on the table as it is when it runs.
    func generate(prompt: String, maxTokens: Int, makeEditor: @escaping @Sendable () -> (any RequestEditor)?) async throws -> GenerationResult {
        let ids = tokenizer.encode(prompt, addBOS: true)
        guard ids.count > 1 else { throw InferenceError.emptyPrompt }
        let maxTokens = min(maxTokens, maxTokensCap)
        let limit = workers[0].session.capacity - maxTokens - 1
        guard ids.count <= limit else { throw InferenceError.promptTooLong(tokens: ids.count, limit: limit) }

        let worker = try await acquire()
        defer { release(worker) }
        return try await worker.run { session in
            let editor = makeEditor()
            let start = DispatchTime.now().uptimeNanoseconds
            var out = try session.generate(prompt: ids, maxTokens: maxTokens, stopIDs: self.stopIDs, editor: editor)
            if let last = out.last, self.stopIDs.contains(last) { out.removeLast() }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            return GenerationResult(promptTokens: ids.count, ids: out, text: self.tokenizer.decode(out),
                                    edit: editor?.firedEdit, seconds: seconds)
        }
    }

    private func acquire() async throws -> Worker {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Worker, Error>) in
            lock.lock()
            if let worker = idle.popLast() {
                lock.unlock()
                continuation.resume(returning: worker)
            } else if waiting.count >= queueLimit {
                let n = waiting.count
                lock.unlock()
                continuation.resume(throwing: InferenceError.busy(queued: n))
            } else {
                waiting.append { continuation.resume(returning: $0) }
                lock.unlock()
            }
        }
    }

    private func release(_ worker: Worker) {
        lock.lock()
        if waiting.isEmpty {
            idle.append(worker)
            lock.unlock()
        } else {
            let next = waiting.removeFirst()
            lock.unlock()
            next(worker)
        }
    }
}

/// A thread of its own with one session: CPU-bound forward passes never block the event loops
/// or Swift's cooperative pool.
private final class Worker: @unchecked Sendable {
    let session: GemmaSession
    private let queue: DispatchQueue

    init(index: Int, session: GemmaSession) {
        self.session = session
        self.queue = DispatchQueue(label: "scen.router.worker.\(index)", qos: .userInitiated)
    }

    func run<T: Sendable>(_ body: @escaping @Sendable (GemmaSession) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try body(self.session) }) }
        }
    }
}
