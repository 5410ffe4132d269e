// The routing table of the active edits, for the trainer (every job trains against it) and the
// router (every notification reloads it), kept between calls: building it from every active
// edit took 1.2 s at 5,000 edits (`scen bench routing`, table_build_ms), on top of checking and
// converting each stored edit, and the trainer paid that for every job. Here an unchanged edit
// (the same stored value: `ActiveEditCache` hands out the same one until its version changes,
// so comparing is cheap) keeps its entry; the table drops removed edits, swaps refined neurons
// and appends new ones. When a new edit is not the latest correction (a retried or older event
// activated late) or an edit's routability changes, it is rebuilt, so it always equals the table
// built from scratch in correction order.
import Core

public final class RoutingTableBuilder {
    public struct Table {
        public var index: EditIndex
        /// Active edits trained for another layer or not trained yet.
        public var elsewhere: Int
        /// Active edits that cannot be routed here, with the reason.
        public var unusable: [(editID: Int64, reason: String)]
    }

    private let empty: EditIndex
    private let hyperparameters: SCENHyperparameters
    private let ffnSize: Int
    private let hiddenSize: Int
    private var table: Table
    /// The edits the table was built from, by id, with what became of each.
    private var known: [Int64: (edit: StoredEdit, routability: EditRoutability)] = [:]
    /// The latest correction among the table's entries when it was last built or extended.
    private var latest: EditRecord?
    /// Full rebuilds so far (for tests and logs).
    public private(set) var rebuilds = 0

    public init(empty: EditIndex, hyperparameters: SCENHyperparameters, ffnSize: Int, hiddenSize: Int) {
        self.empty = empty
        self.hyperparameters = hyperparameters
        self.ffnSize = ffnSize
        self.hiddenSize = hiddenSize
        table = Table(index: empty, elsewhere: 0, unusable: [])
    }

    /// The table of `active` (every active edit; order does not matter): oldest correction first,
    /// so that of two edits of one prompt the latest wins. (The database keeps one active edit
    /// per prompt, so removing an edit never has to bring back an older one of its prompt.)
    /// Nothing is kept when it throws: the next call starts from the last good table.
    public func table(of active: [StoredEdit]) throws -> Table {
        var known = self.known, latest = self.latest
        var removed = Set(known.keys)
        var fresh: [StoredEdit] = []
        var refined: [String: IndexingNeuron] = [:]
        var rebuild = false
        for edit in active {
            let id = edit.record.id
            removed.remove(id)
            guard let old = known[id] else { fresh.append(edit); continue }
            if old.edit == edit { continue }
            let now = edit.routability(hyperparameters: hyperparameters, ffnSize: ffnSize, hiddenSize: hiddenSize)
            switch (old.routability, now) {
            case (.routable(let a), .routable(let b)) where a.prompt == b.prompt && a.rephrases == b.rephrases
                && a.neuron.key == b.neuron.key && a.expert.a == b.expert.a && a.expert.b == b.expert.b:
                refined[a.editID] = b.neuron  // refinement: new weights and bias, same key
            case (.elsewhere, .elsewhere), (.unusable, .unusable):
                break
            default:
                rebuild = true
            }
            known[id] = (edit, now)
        }
        for id in removed { known[id] = nil }
        fresh.sort { $1.record.isLater(than: $0.record) }
        var added: [EditEntry] = []
        for edit in fresh {
            let r = edit.routability(hyperparameters: hyperparameters, ffnSize: ffnSize, hiddenSize: hiddenSize)
            known[edit.record.id] = (edit, r)
            guard let entry = r.entry else { continue }
            if let latest, !edit.record.isLater(than: latest) { rebuild = true }
            latest = edit.record
            added.append(entry)
        }
        var next = table
        if rebuild {
            let ordered = known.values.sorted { $1.edit.record.isLater(than: $0.edit.record) }
            next.index = try empty.adding(contentsOf: ordered.compactMap(\.routability.entry))
            latest = ordered.last { $0.routability.entry != nil }?.edit.record
            rebuilds += 1
        } else {
            let gone = Set(removed.map(String.init))
            next.index = try table.index.filteringOut(editIDs: gone).replacingNeurons(refined).adding(contentsOf: added)
        }
        next.elsewhere = known.values.filter { if case .elsewhere = $0.routability { true } else { false } }.count
        next.unusable = known.compactMap { id, k in k.routability.problem.map { (id, $0) } }.sorted { $0.editID < $1.editID }
        (self.known, self.latest, table) = (known, latest, next)
        return next
    }
}
