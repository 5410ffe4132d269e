// The router's routing table of active edits: loaded from PostgreSQL at start, then kept
// current by LISTEN scen_edits (new, superseded, reverted and refined edits) on a thread of its
// own. Requests read an immutable EditIndex snapshot; updates swap it, never blocking them.
import Core
import Foundation
import Logging
import Storage

/// Per-request editor over one snapshot; remembers which edit fired and offers the prompt's
/// routing key to the traffic reservoir.
final class SCENRequestEditor: RequestEditor, @unchecked Sendable {
    private let router: SCENRouter
    private let reservoir: TrafficReservoir?
    var layer: Int { router.layer }

    init(router: SCENRouter, reservoir: TrafficReservoir?) {
        self.router = router
        self.reservoir = reservoir
    }

    func selectEdit(for activations: FFNActivations) -> (any DownProjectionEdit)? {
        let edit = router.selectEdit(for: activations)
        if let reservoir, let key = router.key { reservoir.offer(key) }
        return edit
    }

    var firedEdit: (id: Int64, score: Float)? {
        guard let d = router.decision, let id = Int64(d.editID) else { return nil }
        return (id, d.score)
    }
}

public final class LiveEdits: EditRouting, @unchecked Sendable {
    let store: EditIndexStore
    let hyperparameters: SCENHyperparameters
    /// Keys of served prompts for the trainer (nil: the reservoir is switched off).
    let reservoir: TrafficReservoir?
    private let empty: EditIndex
    /// The table kept between reloads (only changed edits are converted and re-indexed).
    private let builder: RoutingTableBuilder
    private let builderLock = NSLock()
    /// Active edits that cannot be routed (corrupt or mismatched), as of the last load.
    private var unroutable = 0
    /// Edits whose problem was logged already (logged once, not at every reload).
    private var reported = Set<Int64>()
    private let logger: Logger
    private let lock = NSLock()
    private var isStopped = false

    /// The empty table for `model`: the key statistics of the generic prompt pool at the edit
    /// layer are computed here (a few hundred forwards, cached per model and layer).
    /// `reservoir`: keep a sample of this many routing keys of served prompts (0: off).
    public init(model: GemmaModel, tokenizer: GemmaTokenizer, hyperparameters: SCENHyperparameters, reservoir: Int = 0,
                logger: Logger) throws {
        try hyperparameters.validate(for: model.config)
        let pool = try NegativePool.shared(model: model, tokenizer: tokenizer, layer: hyperparameters.layer, pooling: hyperparameters.keyPooling) { done, total in
            if done == total || done % 100 == 0 { logger.info("key statistics", metadata: ["done": "\(done)", "total": "\(total)"]) }
        }
        // The statistics ran the training forward (Float32 blocks, F16 embedding); serving needs
        // neither, so their ≈ 735 MB go back.
        model.releaseTrainingCopies()
        empty = EditIndex(hyperparameters: hyperparameters, pool: pool, ffnSize: model.config.ffnSize)
        builder = RoutingTableBuilder(empty: empty, hyperparameters: hyperparameters, ffnSize: model.config.ffnSize,
                                      hiddenSize: model.config.hiddenSize)
        store = EditIndexStore(empty)
        self.hyperparameters = hyperparameters
        self.reservoir = reservoir > 0 ? TrafficReservoir(capacity: reservoir) : nil
        self.logger = logger
    }

    public func makeEditor(prompt: String) -> (any RequestEditor)? {
        let snapshot = store.snapshot
        return snapshot.isEmpty && reservoir == nil ? nil : SCENRequestEditor(router: snapshot.makeRouter(request: prompt), reservoir: reservoir)
    }

    /// Stores the reservoir's changed slots (kept for the next flush if storing fails).
    public func flushTraffic(to repository: any TrafficKeyRepository) throws {
        guard let reservoir else { return }
        let changed = reservoir.takeChanged()
        do {
            try repository.storeTrafficKeys(layer: hyperparameters.layer, pooling: hyperparameters.keyPooling.rawValue, slots: changed)
        } catch {
            reservoir.markChanged(changed)
            throw error
        }
    }

    public var activeCount: Int { store.snapshot.count }
    public var unroutableCount: Int { lock.withLock { unroutable } }

    /// Ends `follow` within about a second.
    public func stop() { lock.withLock { isStopped = true } }
    private var shouldStop: Bool { lock.withLock { isStopped } }

    /// Rebuilds the table from every active edit (start, and after notifications).
    public func reload(from catalog: any EditCatalog) throws {
        try install(catalog.activeEdits())
    }

    /// Makes `active` the routing table.
    private func install(_ active: [StoredEdit]) throws {
        // One install at a time: a table built from older rows never replaces a newer one.
        let table = try builderLock.withLock {
            let table = try builder.table(of: active)
            // One bad row never stops the others from serving (nor freezes the table).
            for (id, why) in table.unusable where reported.insert(id).inserted {
                logger.error("active edit cannot be routed; serving without it", metadata: ["edit_id": "\(id)", "reason": "\(why)"])
            }
            store.update { _ in table.index }
            return table
        }
        lock.withLock { unroutable = table.unusable.count }
        if table.elsewhere > 0 {
            logger.warning("active edits not routable by this router (other layer or untrained)", metadata: ["skipped": "\(table.elsewhere)"])
        }
    }

    /// Removes one edit at once (a revert answered by this router).
    public func remove(editID: Int64) {
        store.update { $0.removing(editID: String(editID)) }
    }

    /// Follows `scen_edits` until the process ends: each burst of notifications triggers one
    /// reload; a lost connection is re-opened, and a full reload every `resync` seconds covers
    /// anything missed meanwhile.
    public func follow(url: String, resync: Double = 30, trafficFlush: Double = 5) {
        var lastReload = Date(), lastFlush = Date()
        while !shouldStop {
            do {
                let listener = try PostgresConnection(url: url)
                try listener.listen(PipelineChannels.edits)
                // Reloads decode only new or changed experts and neurons (ids and versions first).
                let writer = PostgresEditStore(try PostgresConnection(url: url))
                let cache = ActiveEditCache(repository: writer)
                try install(cache.activeEdits(excluding: 0))
                lastReload = Date()
                logger.info("following edits", metadata: ["active": "\(activeCount)"])
                while !shouldStop {
                    let notes = try listener.notifications(timeout: 1)
                    if Date().timeIntervalSince(lastFlush) > trafficFlush {
                        // A failed flush keeps its slots for the next one; it never stops edit following.
                        do { try flushTraffic(to: writer) } catch {
                            logger.warning("traffic reservoir not stored; retrying", metadata: ["error": "\(error)"])
                        }
                        lastFlush = Date()
                    }
                    if !notes.isEmpty || Date().timeIntervalSince(lastReload) > resync {
                        let start = Date()
                        try install(cache.activeEdits(excluding: 0))
                        lastReload = Date()
                        if !notes.isEmpty {
                            logger.info("edits changed", metadata: [
                                "notifications": "\(notes.count)", "active": "\(activeCount)",
                                "reload_ms": "\(Int(Date().timeIntervalSince(start) * 1000))",
                            ])
                        }
                    }
                }
            } catch {
                if shouldStop { return }
                logger.error("edit listener failed; reconnecting in 1 s", metadata: ["error": "\(error)"])
                Thread.sleep(forTimeInterval: 1)
            }
        }
    }
}
