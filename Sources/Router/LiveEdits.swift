// The router's routing table of active edits: loaded from PostgreSQL at start, then kept
// current by LISTEN scen_edits (new, superseded, reverted and refined edits) on a thread of its
// own. Requests read an immutable EditIndex snapshot; updates swap it, never blocking them.
import Core
import Foundation
import Logging
import Storage

/// Per-request editor over one snapshot; remembers which edit fired.
final class SCENRequestEditor: RequestEditor, @unchecked Sendable {
    private let router: SCENRouter
    var layer: Int { router.layer }

    init(router: SCENRouter) { self.router = router }

    func selectEdit(for activations: FFNActivations) -> (any DownProjectionEdit)? {
        router.selectEdit(for: activations)
    }

    var firedEdit: (id: Int64, score: Float)? {
        guard let d = router.decision, let id = Int64(d.editID) else { return nil }
        return (id, d.score)
    }
}

public final class LiveEdits: EditRouting, @unchecked Sendable {
    let store: EditIndexStore
    let hyperparameters: SCENHyperparameters
    private let empty: EditIndex
    private let logger: Logger
    private let stopped = NSLock()
    private var isStopped = false

    /// The empty table for `model`: the key statistics of the generic prompt pool at the edit
    /// layer are computed here (a few hundred forwards, cached per model and layer).
    public init(model: GemmaModel, tokenizer: GemmaTokenizer, hyperparameters: SCENHyperparameters, logger: Logger) throws {
        try hyperparameters.validate(for: model.config)
        let pool = try NegativePool.shared(model: model, tokenizer: tokenizer, layer: hyperparameters.layer) { done, total in
            if done == total || done % 100 == 0 { logger.info("key statistics", metadata: ["done": "\(done)", "total": "\(total)"]) }
        }
        empty = EditIndex(hyperparameters: hyperparameters, pool: pool, ffnSize: model.config.ffnSize)
        store = EditIndexStore(empty)
        self.hyperparameters = hyperparameters
        self.logger = logger
    }

    public func makeEditor() -> (any RequestEditor)? {
        let snapshot = store.snapshot
        return snapshot.isEmpty ? nil : SCENRequestEditor(router: snapshot.makeRouter())
    }

    public var activeCount: Int { store.snapshot.count }

    /// Ends `follow` within about a second.
    public func stop() { stopped.withLock { isStopped = true } }
    private var shouldStop: Bool { stopped.withLock { isStopped } }

    /// Rebuilds the table from every active edit (start, and after notifications).
    public func reload(from catalog: any EditCatalog) throws {
        try install(catalog.activeEdits())
    }

    /// Makes `active` the routing table.
    private func install(_ active: [StoredEdit]) throws {
        // Oldest correction first, so that of several edits of one prompt the latest wins.
        let edits = active.sorted { $1.record.isLater(than: $0.record) }
        let entries = edits.compactMap { $0.editEntry(hyperparameters: hyperparameters) }
        let skipped = edits.count - entries.count
        let loaded = try empty.adding(contentsOf: entries)
        store.update { _ in loaded }
        if skipped > 0 {
            logger.warning("active edits not routable by this router (other layer or untrained)", metadata: ["skipped": "\(skipped)"])
        }
    }

    /// Removes one edit at once (a revert answered by this router).
    public func remove(editID: Int64) {
        store.update { $0.removing(editID: String(editID)) }
    }

    /// Follows `scen_edits` until the process ends: each burst of notifications triggers one
    /// reload; a lost connection is re-opened, and a full reload every `resync` seconds covers
    /// anything missed meanwhile.
    public func follow(url: String, resync: Double = 30) {
        var lastReload = Date()
        while !shouldStop {
            do {
                let listener = try PostgresConnection(url: url)
                try listener.listen(PipelineChannels.edits)
                // Reloads decode only new or changed experts and neurons (ids and versions first).
                let cache = ActiveEditCache(repository: PostgresEditStore(try PostgresConnection(url: url)))
                try install(cache.activeEdits(excluding: 0))
                lastReload = Date()
                logger.info("following edits", metadata: ["active": "\(activeCount)"])
                while !shouldStop {
                    let notes = try listener.notifications(timeout: 1)
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
