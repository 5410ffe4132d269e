// Routing at inference (arXiv 2404.02699 §3.4): all active indexing neurons are scored with one
// mat-vec on the request's routing key (RoutingKey.swift: layer L's down-projection input pooled
// over the prompt); if the best sigmoid score exceeds θ that edit's expert is applied to the whole
// request, otherwise the base model answers untouched.
//
// Two edits that both fire: the one whose neuron scores highest among those whose stored key also
// passes the key gate, and whose subject the request names (`SubjectNames`, when the request's
// text is given), answers; ties go to the later edit (higher position in `entries`). With
// `latestWinsCosine`, a later firing edit whose stored key is that close to the winner's (the same
// fact, corrected again in other words) answers instead. Only one expert is ever applied to a request.
//
// Concurrency: `EditIndex` is an immutable value (Sendable). Updates (`adding`, `removing`,
// `replacingNeurons`) return a new snapshot; the owner publishes it by swapping one reference
// (`EditIndexStore`, a lock-protected box). Each request takes the current snapshot and makes
// its own `SCENRouter` (the per-request `DownProjectionEditor`), so readers never block writers.

import Foundation

/// One active edit: what the router needs and what identifies it.
public struct EditEntry: Sendable {
    public var editID: String
    /// The prompt exactly as trained (a newer edit of the same prompt supersedes this one).
    public var prompt: String
    public var target: String
    /// Other wordings the correction came with (trained as positives too; the subject gate
    /// accepts the names of any wording, so a reporter's rephrase can name an alias).
    public var rephrases: [String]
    public var expert: Expert
    public var neuron: IndexingNeuron

    public init(editID: String, prompt: String, target: String, rephrases: [String] = [], expert: Expert, neuron: IndexingNeuron) {
        self.editID = editID; self.prompt = prompt; self.target = target; self.rephrases = rephrases
        self.expert = expert; self.neuron = neuron
    }

    /// The subject names of each wording (the subject gate's alternatives); a wording without a
    /// capitalised word ("who founded volvo") counts only when no wording has one.
    var subjectNames: [SubjectNames] {
        let all = ([prompt] + rephrases).map(SubjectNames.init(prompt:))
        let named = all.filter { !$0.isEmpty }
        return named.isEmpty ? [all[0]] : named
    }

    /// Stored bytes (Float32): expert + neuron + keys.
    public var byteCount: Int { expert.byteCount + neuron.byteCount }
}

public struct RoutingDecision: Sendable, Equatable {
    public var editID: String
    /// sigmoid(w·k + b) of the chosen neuron.
    public var score: Float
    /// Position of the edit in `EditIndex.entries`.
    public var entryIndex: Int
}

public struct EditIndex: Sendable {
    public let layer: Int
    public let ffnSize: Int
    public let pooling: KeyPooling
    /// The token weights of a `weighted` key (nil for the other poolings).
    public let tokenWeights: TokenWeights?
    public private(set) var theta: Float
    /// Optional key gate (see `SCENHyperparameters.keyGate`) and the standardiser it uses. With a
    /// gate, the routed edit is the best-scoring firing neuron (score > θ) whose stored key passes it.
    public let keyGate: Float?
    public let standardizer: KeyStandardizer?
    /// Latest wins among edits of one fact (see `SCENHyperparameters.latestWinsCosine`; nil: off).
    public private(set) var latestWinsCosine: Float?
    public let latestWinsScope: SCENHyperparameters.LatestWinsScope
    /// Route only to edits whose subject the request names (`SubjectNames`; requests given with
    /// their text).
    public let subjectGate: Bool
    private var keepsGateKeys: Bool { keyGate != nil || latestWinsCosine != nil }
    public private(set) var entries: [EditEntry] = []
    /// Neuron weights stacked [N, F] and biases [N], in `entries` order.
    private var weights: [Float] = []
    private var biases: [Float] = []
    /// Standardised, normalised stored keys [N, F] (only with a key gate).
    private var gateKeys: [Float] = []
    /// Each entry's subject names, one per wording, in `entries` order (only with the subject gate).
    private var subjects: [[SubjectNames]] = []

    public init(layer: Int, ffnSize: Int, pooling: KeyPooling, tokenWeights: TokenWeights? = nil, theta: Float,
                keyGate: Float? = nil, standardizer: KeyStandardizer? = nil, latestWinsCosine: Float? = nil,
                latestWinsScope: SCENHyperparameters.LatestWinsScope = .firing, subjectGate: Bool = false) {
        precondition(pooling != .weighted || tokenWeights != nil, "a weighted key needs token weights")
        self.layer = layer; self.ffnSize = ffnSize; self.pooling = pooling; self.tokenWeights = tokenWeights; self.theta = theta
        self.keyGate = keyGate; self.standardizer = standardizer; self.latestWinsCosine = latestWinsCosine
        self.latestWinsScope = latestWinsScope; self.subjectGate = subjectGate
    }

    public init(hyperparameters hp: SCENHyperparameters, pool: NegativePool, ffnSize: Int) {
        self.init(layer: hp.layer, ffnSize: ffnSize, pooling: hp.keyPooling, tokenWeights: pool.tokenWeights, theta: hp.theta,
                  keyGate: hp.keyGate, standardizer: pool.standardizer, latestWinsCosine: hp.latestWinsCosine,
                  latestWinsScope: hp.latestWinsScope, subjectGate: hp.subjectGate)
    }

    /// The routing key this index reads from a prompt's layer-L activations.
    public func key(_ activations: FFNActivations) -> [Float] { pooling.key(activations, weights: tokenWeights) }

    public var count: Int { entries.count }

    /// Bytes this snapshot holds: every entry (expert, neuron, keys) plus the stacked neuron
    /// weights, biases and gate keys the routing mat-vec reads.
    public var residentBytes: Int {
        entries.reduce(0) { $0 + $1.byteCount } + 4 * (weights.count + biases.count + gateKeys.count)
    }
    public var isEmpty: Bool { entries.isEmpty }

    public func entry(editID: String) -> EditEntry? { entries.first { $0.editID == editID } }

    /// A snapshot with `entry` added; an active edit of the same prompt (or id) is superseded (latest wins).
    public func adding(_ entry: EditEntry) throws -> EditIndex {
        guard entry.expert.layer == layer else { throw SCENError.layerMismatch(expected: layer, found: entry.expert.layer) }
        guard entry.neuron.weight.count == ffnSize else { throw SCENError.shapeMismatch("neuron width \(entry.neuron.weight.count) ≠ F \(ffnSize)") }
        var next = superseding(prompt: entry.prompt).removing(editID: entry.editID)
        next.entries.append(entry)
        next.weights += entry.neuron.weight
        next.biases.append(entry.neuron.bias)
        if keepsGateKeys { next.gateKeys += gateKey(entry.neuron.key) }
        if subjectGate { next.subjects.append(entry.subjectNames) }
        return next
    }

    /// A snapshot with all of `newEntries` added in order (later ones supersede earlier ones of
    /// the same prompt), built in one pass: O(N·F) where N single `adding` calls copy O(N²·F).
    public func adding(contentsOf newEntries: [EditEntry]) throws -> EditIndex {
        var latest: [String: Int] = [:]  // prompt → index in newEntries of its last edit
        for (i, e) in newEntries.enumerated() {
            guard e.expert.layer == layer else { throw SCENError.layerMismatch(expected: layer, found: e.expert.layer) }
            guard e.neuron.weight.count == ffnSize else { throw SCENError.shapeMismatch("neuron width \(e.neuron.weight.count) ≠ F \(ffnSize)") }
            latest[e.prompt] = i
        }
        let ids = Set(newEntries.map(\.editID))
        var next = filtered { latest[$0.prompt] == nil && !ids.contains($0.editID) }
        let kept = newEntries.enumerated().filter { latest[$0.element.prompt] == $0.offset }.map(\.element)
        next.entries.reserveCapacity(next.entries.count + kept.count)
        next.weights.reserveCapacity(next.weights.count + kept.count * ffnSize)
        if keepsGateKeys { next.gateKeys.reserveCapacity(next.gateKeys.count + kept.count * ffnSize) }
        for e in kept {
            next.entries.append(e)
            next.weights += e.neuron.weight
            next.biases.append(e.neuron.bias)
            if keepsGateKeys { next.gateKeys += gateKey(e.neuron.key) }
            if subjectGate { next.subjects.append(e.subjectNames) }
        }
        return next
    }

    /// A snapshot without the edits of this exact prompt.
    public func superseding(prompt: String) -> EditIndex {
        filtered { $0.prompt != prompt }
    }

    /// The same snapshot routing with another θ (the eval harness's sweep).
    public func withTheta(_ t: Float) -> EditIndex {
        var next = self
        next.theta = t
        return next
    }

    /// A snapshot without the edits `ids` (superseded by meaning).
    public func filteringOut(editIDs ids: Set<String>) -> EditIndex {
        filtered { !ids.contains($0.editID) }
    }

    /// A snapshot without `editID` (revert: it stops routing as soon as the snapshot is published).
    public func removing(editID: String) -> EditIndex {
        filtered { $0.editID != editID }
    }

    /// A snapshot where the neurons of the given edits are replaced (refinement).
    public func replacingNeurons(_ neurons: [String: IndexingNeuron]) -> EditIndex {
        guard !neurons.isEmpty else { return self }
        var next = self
        for (i, e) in entries.enumerated() {
            guard let n = neurons[e.editID] else { continue }
            next.entries[i].neuron = n
            next.weights.replaceSubrange(i * ffnSize ..< (i + 1) * ffnSize, with: n.weight)
            next.biases[i] = n.bias
        }
        return next
    }

    private func filtered(_ keep: (EditEntry) -> Bool) -> EditIndex {
        guard entries.contains(where: { !keep($0) }) else { return self }
        var next = EditIndex(layer: layer, ffnSize: ffnSize, pooling: pooling, tokenWeights: tokenWeights, theta: theta,
                             keyGate: keyGate, standardizer: standardizer, latestWinsCosine: latestWinsCosine,
                             latestWinsScope: latestWinsScope, subjectGate: subjectGate)
        for (i, e) in entries.enumerated() where keep(e) {
            next.entries.append(e)
            next.weights += weights[i * ffnSize ..< (i + 1) * ffnSize]
            next.biases.append(biases[i])
            if keepsGateKeys { next.gateKeys += gateKeys[i * ffnSize ..< (i + 1) * ffnSize] }
            if subjectGate { next.subjects.append(subjects[i]) }
        }
        return next
    }

    /// Cosine of the standardised keys a and b (the gate's measure of "same question").
    public func keyCosine(_ a: [Float], _ b: [Float]) -> Float {
        let x = gateKey(a), y = gateKey(b)
        return zip(x, y).reduce(0) { $0 + $1.0 * $1.1 }
    }

    /// `keyCosine(key, stored key)` for every entry, from the stored gate keys when kept.
    public func keyCosines(_ key: [Float]) -> [Float] {
        guard keepsGateKeys else { return entries.map { keyCosine(key, $0.neuron.key) } }
        let z = gateKey(key)
        return entries.indices.map { gateCosine(z, entry: $0) }
    }

    private func gateKey(_ k: [Float]) -> [Float] {
        let z = standardizer?.apply(k) ?? k
        let norm = max(z.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
        return z.map { $0 / norm }
    }

    /// sigmoid(W·k + b) [N] for a key k [F]: one mat-vec.
    public func scores(key: UnsafeBufferPointer<Float>) -> [Float] {
        precondition(key.count == ffnSize, "key has \(key.count) values, expected \(ffnSize)")
        let n = entries.count
        guard n > 0 else { return [] }
        var s = biases
        weights.withUnsafeBufferPointer { w in s.withUnsafeMutableBufferPointer { o in
            BLAS.gemv(m: n, n: ffnSize, a: w.baseAddress!, lda: ffnSize, x: key.baseAddress!, beta: 1, y: o.baseAddress!)
        } }
        return s.map { 1 / (1 + expf(-$0)) }
    }

    public func scores(key: [Float]) -> [Float] { key.withUnsafeBufferPointer { scores(key: $0) } }

    /// The edit to apply for this key, or nil (the base model answers). `request`: the words of
    /// the request's text, for the subject gate (nil: keys only, as for the traffic reservoir).
    public func route(key: UnsafeBufferPointer<Float>, request: RequestWords? = nil) -> RoutingDecision? {
        route(key: key, scores: scores(key: key), request: request)
    }

    /// Whether entry i's subject is named in `request` (true without the gate or the words).
    public func namesSubject(entry i: Int, in request: RequestWords?) -> Bool {
        guard subjectGate, let request else { return true }
        return subjects[i].contains { $0.named(in: request) }
    }

    /// `route(key:request:)` with the key's `scores(key:)` already computed.
    public func route(key: UnsafeBufferPointer<Float>, scores s: [Float], request: RequestWords? = nil) -> RoutingDecision? {
        var candidates = s.indices.filter { s[$0] > theta && namesSubject(entry: $0, in: request) }
        guard !candidates.isEmpty else { return nil }
        candidates.sort { s[$0] != s[$1] ? s[$0] > s[$1] : $0 > $1 }
        var z: [Float] = []
        if let gate = keyGate {
            // The best-scoring firing neuron whose stored key has cosine ≥ the gate with this key
            // (picking the nearest key instead measured slightly worse: gen 0.70 vs 0.75 at T=30).
            z = gateKey(Array(key))
            candidates = candidates.filter { gateCosine(z, entry: $0) >= gate }
        }
        guard var best = candidates.first else { return nil }
        if let same = latestWinsCosine {
            // Of the later edits whose stored keys are this close to the best one's (the same fact
            // corrected again in other words), the latest correction answers. In scope: the other
            // firing candidates, or (`.gated`) every later edit whose key passes the gate here.
            let b = best
            let later: [Int]
            switch latestWinsScope {
            case .firing:
                later = candidates.filter { $0 > b }
            case .gated:
                if z.isEmpty { z = gateKey(Array(key)) }
                let gate = keyGate ?? -1
                later = ((b + 1)..<entries.count).filter { gateCosine(z, entry: $0) >= gate && namesSubject(entry: $0, in: request) }
            }
            let sameFact = later.filter { storedCosine($0, b) >= same }
            if let latest = sameFact.max() { best = latest }
        }
        return RoutingDecision(editID: entries[best].editID, score: s[best], entryIndex: best)
    }

    /// Cosine of entries i's and j's stored gate keys.
    private func storedCosine(_ i: Int, _ j: Int) -> Float {
        gateKeys.withUnsafeBufferPointer { g in Kernels.dot(g.baseAddress! + i * ffnSize, g.baseAddress! + j * ffnSize, count: ffnSize) }
    }

    /// Cosine of a gate key z (standardised, normalised) with entry i's stored gate key.
    private func gateCosine(_ z: [Float], entry i: Int) -> Float {
        z.withUnsafeBufferPointer { zp in gateKeys.withUnsafeBufferPointer { g in
            Kernels.dot(zp.baseAddress!, g.baseAddress! + i * ffnSize, count: ffnSize)
        } }
    }

    public func route(key: [Float], request: RequestWords? = nil) -> RoutingDecision? {
        key.withUnsafeBufferPointer { route(key: $0, request: request) }
    }

    /// A per-request editor over this snapshot for a request whose text is `request` (nil: route
    /// on the key alone, without the subject gate).
    public func makeRouter(request: String?) -> SCENRouter { SCENRouter(index: self, request: request.map(RequestWords.init)) }
}

/// The per-request `DownProjectionEditor`: consulted once at layer L during prefill, it routes the
/// prompt's routing key and returns the chosen expert's edit (or nil). One per request.
public final class SCENRouter: DownProjectionEditor {
    public let index: EditIndex
    public var layer: Int { index.layer }
    /// The decision of the last prefill (nil: no edit fired).
    public private(set) var decision: RoutingDecision?
    /// The best score of the last prefill, fired or not (nil with an empty index).
    public private(set) var bestScore: Float?
    /// The routing key of the last prefill (what the traffic reservoir samples).
    public private(set) var key: [Float]?
    /// The request's words, for the subject gate.
    public let request: RequestWords?

    public init(index: EditIndex, request: RequestWords?) { self.index = index; self.request = request }

    public func selectEdit(for activations: FFNActivations) -> (any DownProjectionEdit)? {
        let k = index.key(activations)
        key = k
        let s = index.scores(key: k)
        bestScore = s.max()
        decision = k.withUnsafeBufferPointer { index.route(key: $0, scores: s, request: request) }
        return decision.map { index.entries[$0.entryIndex].expert.edit }
    }
}

/// A lock-protected holder of the current snapshot: requests read `snapshot`, the background
/// listener calls `update`. Reads are a lock + a reference copy.
public final class EditIndexStore: @unchecked Sendable {
    private let lock = NSLock()
    private var current: EditIndex

    public init(_ index: EditIndex) { current = index }

    public var snapshot: EditIndex {
        lock.lock(); defer { lock.unlock() }
        return current
    }

    /// Replaces the snapshot with `body(current)` atomically (writers are serialised).
    public func update(_ body: (EditIndex) throws -> EditIndex) rethrows {
        lock.lock(); defer { lock.unlock() }
        current = try body(current)
    }
}
