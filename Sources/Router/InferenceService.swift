// Runs generation for HTTP requests on dedicated worker threads, each owning one GemmaSession
// (KV cache + scratch), behind a bounded queue: a request beyond the queue's limit is refused at
// once (HTTP 429) instead of waiting without bound. Greedy by default; sampling, stop strings
// and streaming (text handed out as it settles) on request.
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
    /// From the request's arrival (queueing included) to its first token, and the mean time
    /// between its following tokens (nil with one token).
    public var firstTokenSeconds: Double
    public var interTokenSeconds: Double?
    /// "stop" (end of turn or a stop string) or "length" (max_tokens or the context).
    public var finishReason: String
}

/// How one request is generated.
public struct GenerationOptions: Sendable {
    public var maxTokens: Int
    public var sampling: SamplingParameters
    /// Generation ends before the first of these strings; it is not part of the text.
    public var stop: [String]

    public init(maxTokens: Int, sampling: SamplingParameters = .greedy, stop: [String] = []) {
        self.maxTokens = maxTokens; self.sampling = sampling; self.stop = stop
    }
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

    /// The continuation of `prompt` (BOS added), with the edit the editor selects, if any.
    /// `makeEditor` runs when a worker takes the request, not when it is queued: a request that
    /// waited through a revert routes on the table as it is when it runs. `onStart` is called
    /// once the prompt is read (with the edit that fired); `onText` with each piece of text as it
    /// settles (never half a character, never what may be the start of a stop string), and
    /// returning false ends generation (the client went away).
    func generate(prompt: String, options: GenerationOptions, makeEditor: @escaping @Sendable () -> (any RequestEditor)?,
                  onStart: @escaping @Sendable ((id: Int64, score: Float)?) -> Void = { _ in },
                  onText: (@Sendable (String) -> Bool)? = nil) async throws -> GenerationResult {
        let ids = tokenizer.encode(prompt, addBOS: true)
        guard ids.count > 1 else { throw InferenceError.emptyPrompt }
        let maxTokens = min(options.maxTokens, maxTokensCap)
        let limit = workers[0].session.capacity - maxTokens - 1
        guard ids.count <= limit else { throw InferenceError.promptTooLong(tokens: ids.count, limit: limit) }

        let arrived = DispatchTime.now().uptimeNanoseconds
        let worker = try await acquire()
        defer { release(worker) }
        return try await worker.run { session in
            let editor = makeEditor()
            let start = DispatchTime.now().uptimeNanoseconds
            var firstToken = start
            // Text is followed token by token only when it is streamed or may hit a stop string.
            let follow = onText != nil || !options.stop.isEmpty
            var text = TextSettler(tokenizer: self.tokenizer, stop: options.stop)
            var started = false, stopped = false
            var out = try session.generate(prompt: ids, maxTokens: maxTokens, stopIDs: self.stopIDs, editor: editor,
                                           sampling: options.sampling) { id in
                if !started { started = true; firstToken = DispatchTime.now().uptimeNanoseconds; onStart(editor?.firedEdit) }
                if self.stopIDs.contains(id) || !follow { return true }
                let (piece, hitStop) = text.append(id)
                stopped = hitStop
                if let onText, !piece.isEmpty, !onText(piece) { return false }
                return !hitStop
            }
            if !started { onStart(editor?.firedEdit) }
            let ended = out.last.map(self.stopIDs.contains) ?? false
            if ended { out.removeLast() }
            if let onText { let rest = text.finish(); if !rest.isEmpty { _ = onText(rest) } }
            let end = DispatchTime.now().uptimeNanoseconds
            let produced = out.count + (ended ? 1 : 0)
            return GenerationResult(promptTokens: ids.count, ids: out, text: follow ? text.text : self.tokenizer.decode(out),
                                    edit: editor?.firedEdit,
                                    seconds: Double(end - start) / 1e9, firstTokenSeconds: Double(firstToken - arrived) / 1e9,
                                    interTokenSeconds: produced > 1 ? Double(end - firstToken) / 1e9 / Double(produced - 1) : nil,
                                    finishReason: ended || stopped ? "stop" : "length")
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

/// The text of the tokens generated so far, cut before the first stop string, and how much of it
/// is settled: a trailing U+FFFD (a character whose bytes are still arriving) and a tail that is
/// the start of a stop string are held back until the next token decides them. Positions count
/// Unicode scalars, so a token that joins the previous character (a combining mark, "\r" then
/// "\n") adds its scalars and the pieces always add up to the text.
struct TextSettler {
    let tokenizer: GemmaTokenizer
    let stop: [String]
    private var ids: [Int32] = []
    private(set) var text = ""
    private var handedOut = 0  // scalars of `text` already returned

    init(tokenizer: GemmaTokenizer, stop: [String]) {
        self.tokenizer = tokenizer
        self.stop = stop.filter { !$0.isEmpty }
    }

    /// Adds a token; returns the newly settled text and whether a stop string came up.
    mutating func append(_ id: Int32) -> (String, Bool) {
        ids.append(id)
        text = tokenizer.decode(ids)
        if let cut = stop.compactMap({ text.range(of: $0)?.lowerBound }).min() {
            text = String(text[..<cut])
            return (finish(), true)
        }
        let scalars = Array(text.unicodeScalars)
        var settled = scalars.count
        if scalars.last == "\u{FFFD}" { settled -= 1 }
        let head = scalars[..<settled]
        let held = stop.map { s -> Int in
            let p = Array(s.unicodeScalars)
            return (1..<max(p.count, 1)).last { k in k <= head.count && head.suffix(k).elementsEqual(p.prefix(k)) } ?? 0
        }.max() ?? 0
        return (take(upTo: settled - held), false)
    }

    /// Whatever was held back (generation ended).
    mutating func finish() -> String { take(upTo: text.unicodeScalars.count) }

    private mutating func take(upTo n: Int) -> String {
        guard n > handedOut else { return "" }
        var piece = String.UnicodeScalarView()
        piece.append(contentsOf: text.unicodeScalars.dropFirst(handedOut).prefix(n - handedOut))
        handedOut = n
        return String(piece)
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
