// Generation for HTTP requests with continuous batching: one engine thread runs every
// forward pass. Each step it reads the next chunk of a waiting prompt (at most `prefillChunk`
// tokens, so a long prompt never stalls the others for long; several prompts while nothing is
// generating), then advances every sequence past its prompt by one token in one batched
// decode step (each weight block read once for all rows; each row carries its own KV cache and
// its own expert, or none). Sequences join and leave the batch at token boundaries. Sequence slots are fixed at
// start (`maxSequences` sessions, KV caches of `context` tokens each); a request beyond them
// waits, and beyond `queueLimit` waiting ones it is refused at once (HTTP 429). Greedy by
// default; sampling, stop strings and streaming (text handed out as it settles) on request.
//
// A row's logits do not depend on what shares its batch (GemmaSession.decode's contract), and
// each sequence samples from its own seeded generator: an answer is the same bits alone or
// with 15 neighbours.
//
// A prompt read in several chunks is routed once, on all its rows: earlier chunks' layer-L
// activations are kept and handed to the editor with the last chunk's. If an edit fires there,
// the prompt is read again from the start with the edit applied throughout, as a prompt read
// in one call would have been (the earlier chunks ran without it).
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
    /// Sequences decoded together at most (the preallocated sessions).
    public let maxSequences: Int
    /// Prompt tokens read per engine step, over all prompts being read.
    public let prefillChunk: Int
    /// KV cache tokens per sequence (prompt and answer).
    public let context: Int
    private let stopIDs: Set<Int32>
    private let engineQueue = DispatchQueue(label: "scen.router.engine", qos: .userInitiated)
    private let metrics: RouterMetrics?

    // Guarded by `lock`.
    private let lock = NSLock()
    private var waiting: [Sequence] = []
    private var free: [GemmaSession]
    private var engineRunning = false
    private var activeCount = 0
    private var largest = 0

    public init(model: GemmaModel, tokenizer: GemmaTokenizer, maxSequences: Int, queueLimit: Int, maxTokensCap: Int,
                context: Int = 2048, prefillChunk: Int = 64, metrics: RouterMetrics? = nil) {
        self.model = model
        self.metrics = metrics
        self.tokenizer = tokenizer
        self.maxTokensCap = maxTokensCap
        self.queueLimit = max(0, queueLimit)
        self.maxSequences = max(1, maxSequences)
        self.prefillChunk = max(1, prefillChunk)
        self.context = min(max(16, context), model.config.contextLength)
        free = (0..<self.maxSequences).map { [context = self.context] _ in model.makeSession(capacity: context) }
        var stop: Set<Int32> = [tokenizer.eosID]
        if let endOfTurn = tokenizer.endOfTurnID { stop.insert(endOfTurn) }
        stopIDs = stop
    }

    /// Requests waiting for a sequence slot right now.
    public var queued: Int { lock.withLock { waiting.count } }
    /// Sequences being read or generated right now.
    public var active: Int { lock.withLock { activeCount } }
    /// The most sequences one decode step has advanced together since start.
    public var largestBatch: Int { lock.withLock { largest } }

    /// The continuation of `prompt` (BOS added), with the edit the editor selects, if any.
    /// `makeEditor` runs when the request gets its slot, not when it is queued: a request that
    /// waited through a revert routes on the table as it is when it runs. `onStart` is called
    /// once the prompt is read (with the edit that fired); `onText` with each piece of text as it
    /// settles (never half a character, never what may be the start of a stop string), and
    /// returning false ends generation (the client went away). Cancelling the calling task does
    /// the same. Callbacks run on the engine thread: they must return quickly.
    public func generate(prompt: String, options: GenerationOptions, makeEditor: @escaping @Sendable () -> (any RequestEditor)?,
                  onStart: @escaping @Sendable ((id: Int64, score: Float)?) -> Void = { _ in },
                  onText: (@Sendable (String) -> Bool)? = nil) async throws -> GenerationResult {
        let ids = tokenizer.encode(prompt, addBOS: true)
        guard ids.count > 1 else { throw InferenceError.emptyPrompt }
        let maxTokens = min(options.maxTokens, maxTokensCap)
        let limit = context - maxTokens - 1
        guard ids.count <= limit else { throw InferenceError.promptTooLong(tokens: ids.count, limit: max(limit, 0)) }
        let sequence = Sequence(ids: ids, maxTokens: maxTokens, options: options, stopIDs: stopIDs, tokenizer: tokenizer,
                                makeEditor: makeEditor, onStart: onStart, onText: onText)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                sequence.continuation = continuation
                submit(sequence)
            }
        } onCancel: {
            cancel(sequence)
        }
    }

    private func submit(_ sequence: Sequence) {
        lock.lock()
        guard waiting.count < free.count + queueLimit else {
            let n = waiting.count
            lock.unlock()
            sequence.resume(.failure(InferenceError.busy(queued: n)))
            return
        }
        waiting.append(sequence)
        let start = !engineRunning
        engineRunning = true
        lock.unlock()
        if start { engineQueue.async { self.runEngine() } }
    }

    private func cancel(_ sequence: Sequence) {
        sequence.cancelled.raise()
        let dropped: Bool = lock.withLock {
            guard let i = waiting.firstIndex(where: { $0 === sequence }) else { return false }
            waiting.remove(at: i)
            return true
        }
        if dropped { sequence.resume(.failure(CancellationError())) }
    }

    // MARK: The engine

    /// Runs steps until no sequence is left, then stops (the next request starts it again).
    private func runEngine() {
        var running: [Sequence] = []
        while true {
            lock.lock()
            // A finished sequence's slot is free before its caller hears of the end.
            let done = running.filter(\.finished)
            for s in done { free.append(s.session!); s.session = nil }
            running.removeAll { $0.finished }
            while !free.isEmpty, !waiting.isEmpty {
                let s = waiting.removeFirst()
                s.session = free.removeLast()
                running.append(s)
            }
            activeCount = running.count
            let idle = running.isEmpty
            if idle { engineRunning = false }
            lock.unlock()
            for s in done { s.resume(s.outcome!) }
            if idle { return }
            step(running)
        }
    }

    private func step(_ running: [Sequence]) {
        for s in running where s.cancelled.isSet { s.complete(.failure(CancellationError())) }
        // Prompts first, in arrival order, up to the chunk budget; while other sequences are
        // generating, one prompt chunk per step (each prompt call costs a pass over the weights,
        // and every generating sequence waits for it).
        var budget = prefillChunk
        let generating = running.contains { !$0.finished && !$0.reading }
        for s in running where !s.finished && s.reading && budget > 0 {
            do {
                budget -= try s.readPrompt(upTo: budget)
            } catch {
                s.complete(.failure(error))
            }
            if generating { break }
        }
        // Then one token for every sequence past its prompt.
        let batch = running.filter { !$0.finished && !$0.reading }
        guard !batch.isEmpty else { return }
        do {
            let sessions = batch.map { $0.session! }
            if model.numerics == .float32 {
                try GemmaSession.decode(sessions, tokens: batch.map(\.next))
            } else {
                for s in batch { try s.session!.decodeInPlace(s.next) }
            }
            metrics?.recordBatch(size: batch.count)
            lock.withLock { largest = max(largest, batch.count) }
            for s in batch { s.advance() }
        } catch {
            for s in batch { s.complete(.failure(error)) }
        }
    }
}

/// One request: its prompt, options and callbacks, and (on the engine thread) its state.
private final class Sequence: @unchecked Sendable {
    let ids: [Int32]
    let maxTokens: Int
    let stopIDs: Set<Int32>
    let tokenizer: GemmaTokenizer
    let makeEditor: @Sendable () -> (any RequestEditor)?
    let onStart: @Sendable ((id: Int64, score: Float)?) -> Void
    let onText: (@Sendable (String) -> Bool)?
    let arrived = DispatchTime.now().uptimeNanoseconds
    /// Text is followed token by token only when it is streamed or may hit a stop string.
    let follow: Bool
    let cancelled = Flag()

    private let lock = NSLock()
    var continuation: CheckedContinuation<GenerationResult, Error>?  // set before submit, then under `lock`

    // Engine thread only.
    var session: GemmaSession?
    private(set) var finished = false
    private(set) var outcome: Result<GenerationResult, Error>?
    private var editor: (any RequestEditor)?
    private var chunks: ChunkedPromptEditor?
    private var read = 0
    /// The edit found at the end of a prompt read in chunks; the prompt is read again with it.
    private var rereadWith: (layer: Int, edit: any DownProjectionEdit)?
    private var sampler: TokenSampler
    private var text: TextSettler
    private var out: [Int32] = []
    private(set) var next: Int32 = 0
    private var start: UInt64 = 0
    private var firstToken: UInt64 = 0
    private var stoppedByString = false

    init(ids: [Int32], maxTokens: Int, options: GenerationOptions, stopIDs: Set<Int32>, tokenizer: GemmaTokenizer,
         makeEditor: @escaping @Sendable () -> (any RequestEditor)?,
         onStart: @escaping @Sendable ((id: Int64, score: Float)?) -> Void, onText: (@Sendable (String) -> Bool)?) {
        self.ids = ids; self.maxTokens = maxTokens; self.stopIDs = stopIDs; self.tokenizer = tokenizer
        self.makeEditor = makeEditor; self.onStart = onStart; self.onText = onText
        follow = onText != nil || !options.stop.isEmpty
        sampler = TokenSampler(options.sampling)
        text = TextSettler(tokenizer: tokenizer, stop: options.stop)
    }

    /// Still reading its prompt.
    var reading: Bool { read < ids.count }

    /// Ends the sequence (engine thread): it leaves the batch at the engine's next step, which
    /// frees its slot and then resumes the caller with `result`.
    func complete(_ result: Result<GenerationResult, Error>) {
        guard !finished else { return }
        finished = true
        outcome = result
    }

    /// Resumes the caller (once; later calls do nothing).
    func resume(_ result: Result<GenerationResult, Error>) {
        let c: CheckedContinuation<GenerationResult, Error>? = lock.withLock { defer { continuation = nil }; return continuation }
        c?.resume(with: result)
    }

    /// Reads the next chunk of the prompt (at most `budget` tokens); returns the tokens read.
    func readPrompt(upTo budget: Int) throws -> Int {
        let session = session!
        if read == 0 {
            session.reset()
            if let edit = rereadWith {
                session.setEdit(edit.edit, layer: edit.layer)
            } else {
                start = DispatchTime.now().uptimeNanoseconds
                editor = makeEditor()
                if let editor, ids.count > budget { chunks = ChunkedPromptEditor(editor) }
            }
        }
        let end = min(ids.count, read + budget)
        let last = end == ids.count
        var routing: (any DownProjectionEditor)?
        if rereadWith == nil { routing = chunks ?? editor }
        chunks?.isLastChunk = last
        try session.prefillInPlace(Array(ids[read..<end]), editor: routing, logits: last)
        let n = end - read
        read = end
        if last, rereadWith == nil, (chunks?.chunkCount ?? 0) > 1, let edit = session.activeEdit {
            // Routed at the last chunk; the earlier ones ran without the edit.
            rereadWith = edit
            chunks = nil
            read = 0
            return n
        }
        if last { accept(session.withLastLogits { sampler.next($0) }) }
        return n
    }

    /// Takes the token sampled from the last decode step's logits.
    func advance() { accept(session!.withLastLogits { sampler.next($0) }) }

    private func accept(_ id: Int32) {
        if out.isEmpty {
            firstToken = DispatchTime.now().uptimeNanoseconds
            onStart(editor?.firedEdit)
        }
        out.append(id)
        if stopIDs.contains(id) { return finish() }
        if follow {
            let (piece, hitStop) = text.append(id)
            stoppedByString = hitStop
            // A client that went away ends its generation here, as if at max_tokens.
            if let onText, !piece.isEmpty, !onText(piece) { return finish() }
            if hitStop { return finish() }
        }
        if out.count >= maxTokens || session!.position >= session!.capacity { return finish() }
        next = id
    }

    private func finish() {
        let ended = out.last.map(stopIDs.contains) ?? false
        if ended { out.removeLast() }
        if let onText { let rest = text.finish(); if !rest.isEmpty { _ = onText(rest) } }
        let end = DispatchTime.now().uptimeNanoseconds
        let produced = out.count + (ended ? 1 : 0)
        complete(.success(GenerationResult(
            promptTokens: ids.count, ids: out, text: follow ? text.text : tokenizer.decode(out), edit: editor?.firedEdit,
            seconds: Double(end - start) / 1e9, firstTokenSeconds: Double(firstToken - arrived) / 1e9,
            interTokenSeconds: produced > 1 ? Double(end - firstToken) / 1e9 / Double(produced - 1) : nil,
            finishReason: ended || stoppedByString ? "stop" : "length")))
    }
}

/// Routes a prompt read in several calls on all its rows: keeps each earlier chunk's layer-L
/// activations (and tokens) and consults the request's editor once, at the last chunk, with
/// the whole prompt's rows.
private final class ChunkedPromptEditor: DownProjectionEditor {
    let inner: any RequestEditor
    var layer: Int { inner.layer }
    var isLastChunk = false
    private(set) var chunkCount = 0
    private var rows: [Float] = []
    private var tokens: [Int32] = []

    init(_ inner: any RequestEditor) { self.inner = inner }

    func selectEdit(for activations: FFNActivations) -> (any DownProjectionEdit)? {
        chunkCount += 1
        rows.append(contentsOf: UnsafeBufferPointer(start: activations.base, count: activations.rowCount * activations.width))
        tokens += activations.tokens
        guard isLastChunk else { return nil }
        return rows.withUnsafeBufferPointer { all in
            inner.selectEdit(for: ActivationRows(layer: activations.layer, positions: 0 ..< tokens.count, width: activations.width,
                                                 base: all.baseAddress!, tokens: tokens))
        }
    }
}

/// Set once, read from any thread.
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var set = false
    var isSet: Bool { lock.withLock { set } }
    /// Sets it; true the first time.
    @discardableResult func raise() -> Bool { lock.withLock { defer { set = true }; return !set } }
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
