// The in-memory twin of PostgresEditStore: the same semantics (idempotency, guarded
// transitions, supersede, revert, bounded attempts, append-only audit), for hermetic tests.
// Notifications are appended to `notifications` instead of sent.
import Core
import Foundation

public final class InMemoryEditStore {
    public private(set) var edits: [Int64: EditRecord] = [:]
    public private(set) var corrections: [String: (event: CorrectionEvent, position: KafkaPosition)] = [:]
    public private(set) var experts: [Int64: [UInt8]] = [:]
    public private(set) var neurons: [Int64: StoredIndexingNeuron] = [:] {
        didSet { for (id, n) in neurons where oldValue[id] != n { bump(id) } }
    }
    /// A change counter per edit (stands in for greatest(edits.updated_at, neurons.updated_at)).
    private var versions: [Int64: Double] = [:]
    private var versionCounter = 0.0

    private func bump(_ id: Int64) {
        versionCounter += 1
        versions[id] = versionCounter
    }
    public private(set) var letters: [DeadLetter] = []
    /// Traffic reservoir slots by "layer/pooling", then slot.
    public private(set) var traffic: [String: [Int: TrafficReservoir.Slot]] = [:]
    public private(set) var audit: [AuditEntry] = []
    public private(set) var notifications: [EditNotification] = []
    private var nextEditID: Int64 = 1
    private let clock: () -> Date

    public init(clock: @escaping () -> Date = Date.init) { self.clock = clock }

    private func log(_ actor: String, _ action: String, _ edit: EditRecord?, from: EditStatus?, to: EditStatus?, _ details: [String: Any] = [:]) {
        audit.append(AuditEntry(id: Int64(audit.count + 1), at: clock(), actor: actor, action: action, editID: edit?.id,
                                eventID: edit?.eventID, fromStatus: from, toStatus: to, details: jsonObjectText(details)))
    }

    private func set(_ id: Int64, _ status: EditStatus, _ change: (inout EditRecord) -> Void = { _ in }) -> EditRecord {
        var e = edits[id]!
        e.status = status
        e.updatedAt = clock()
        change(&e)
        edits[id] = e
        bump(id)
        return e
    }

    private func existing(_ id: Int64) throws -> EditRecord {
        guard let e = edits[id] else { throw RepositoryError.notFound(editID: id) }
        return e
    }
}

extension InMemoryEditStore: CorrectionRepository {
    public func recordCorrection(_ event: CorrectionEvent, at position: KafkaPosition, actor: String) throws -> IngestOutcome {
        if corrections[event.id] != nil {
            guard let edit = edits.values.first(where: { $0.eventID == event.id }) else { throw RepositoryError.corrupt("no edit for \(event.id)") }
            return .duplicate(edit)
        }
        corrections[event.id] = (event, position)
        let now = clock()
        let edit = EditRecord(id: nextEditID, eventID: event.id, prompt: event.prompt, target: event.target, rephrases: event.rephrases,
                              status: .queued, correctedAt: event.createdAt, createdAt: now, updatedAt: now)
        nextEditID += 1
        edits[edit.id] = edit
        log(actor, "edit.queued", edit, from: nil, to: .queued, ["reporter": event.reporter, "source": event.source, "topic": position.topic,
                                                               "partition": position.partition, "offset": position.offset])
        return .queued(edit)
    }
}

extension InMemoryEditStore: DeadLetterRepository {
    public func recordDeadLetter(raw: [UInt8], rejection: Rejection, at position: KafkaPosition, actor: String) throws -> DeadLetter {
        if let known = letters.first(where: { $0.position == position && $0.raw == raw }) { return known }
        let letter = DeadLetter(id: Int64(letters.count + 1), raw: raw, reason: rejection.reason.rawValue, detail: rejection.detail,
                                position: position, producedToTopic: false)
        letters.append(letter)
        log(actor, "event.dead_lettered", nil, from: nil, to: nil, ["dead_letter_id": letter.id, "reason": rejection.reason.rawValue,
                                                                    "detail": rejection.detail, "topic": position.topic,
                                                                    "partition": position.partition, "offset": position.offset])
        return letter
    }

    public func markDeadLetterProduced(id: Int64) throws {
        if let i = letters.firstIndex(where: { $0.id == id }) { letters[i].producedToTopic = true }
    }

    public func deadLetters(afterID: Int64, limit: Int) throws -> [DeadLetter] {
        Array(letters.filter { $0.id > afterID }.prefix(limit))
    }
}

extension InMemoryEditStore: TrainingRepository {
    public func edit(id: Int64) throws -> EditRecord? { edits[id] }

    public func claimForTraining(editID: Int64, maxAttempts: Int, actor: String) throws -> TrainingClaim {
        guard let edit = edits[editID] else { return .notFound }
        if edit.status.isSettled { return .skipped(edit) }
        if edit.attempts >= maxAttempts {
            guard edit.status == .training else { return .skipped(edit) }
            let message = "gave up after \(edit.attempts) attempts (the trainer stopped during the last one)"
            let failed = set(editID, .failed) { $0.error = message }
            log(actor, "edit.failed", failed, from: .training, to: .failed, ["attempt": edit.attempts, "error": message, "final": true])
            return .skipped(failed)
        }
        let claimed = set(editID, .training) { $0.attempts += 1 }
        log(actor, "edit.training", claimed, from: edit.status, to: .training, ["attempt": claimed.attempts])
        return .claimed(claimed)
    }

    public func completeTraining(editID: Int64, attempt: Int, result: TrainedEdit, actor: String) throws -> EditRecord {
        let blob = try ExpertCodec.encode(result.expert)
        for problem in ([result.neuron] + result.refinedNeurons.map(\.neuron)).compactMap(\.shapeProblem) {
            throw RepositoryError.corrupt(problem)
        }
        let edit = try existing(editID)
        guard edit.status == .training, edit.attempts == attempt else { throw RepositoryError.claimLost(editID: editID, attempt: attempt) }
        experts[editID] = blob
        neurons[editID] = result.neuron
        for refined in result.refinedNeurons where edits[refined.editID]?.status == .active && refined.editID != editID {
            neurons[refined.editID] = refined.neuron
            log(actor, "edit.neuron_refined", edits[refined.editID], from: .active, to: .active, ["by_edit": editID])
            notifications.append(EditNotification(editID: refined.editID, status: .active))
        }
        let trained: (inout EditRecord) -> Void = {
            $0.hyperparameters = result.hyperparameters
            $0.metrics = result.metrics
            $0.error = nil
        }
        if let reason = result.heldReason {
            let held = set(editID, .held) { trained(&$0); $0.heldReason = reason }
            log(actor, "edit.held", held, from: .training, to: .held, ["attempt": attempt, "reason": reason, "blast_radius": result.blastRadius])
            notifications.append(EditNotification(editID: editID, status: .held))
            return held
        }
        let current = edits.values.filter {
            $0.status == .active && $0.id != editID && ($0.prompt == edit.prompt || result.supersedes.contains($0.id))
        }.sorted { $0.id < $1.id }
        if let newer = current.first(where: { $0.isLater(than: edit) }) {
            let mine = set(editID, .superseded) { trained(&$0); $0.supersededBy = newer.id }
            log(actor, "edit.superseded", mine, from: .training, to: .superseded, ["attempt": attempt, "superseded_by": newer.id])
            notifications.append(EditNotification(editID: editID, status: .superseded))
            return mine
        }
        for older in current {
            let old = set(older.id, .superseded) { $0.supersededBy = editID }
            log(actor, "edit.superseded", old, from: .active, to: .superseded, ["superseded_by": editID])
            notifications.append(EditNotification(editID: older.id, status: .superseded))
        }
        let active = set(editID, .active, trained)
        log(actor, "edit.activated", active, from: .training, to: .active,
            ["attempt": attempt, "superseded": current.map(\.id), "blast_radius": result.blastRadius])
        notifications.append(EditNotification(editID: editID, status: .active))
        return active
    }

    public func failTraining(editID: Int64, attempt: Int, error: String, actor: String) throws -> EditRecord {
        let edit = try existing(editID)
        guard edit.status == .training, edit.attempts == attempt else { throw RepositoryError.claimLost(editID: editID, attempt: attempt) }
        let failed = set(editID, .failed) { $0.error = error }
        log(actor, "edit.failed", failed, from: .training, to: .failed, ["attempt": attempt, "error": error])
        return failed
    }

    public func activeEditVersions() throws -> [Int64: Double] {
        var out: [Int64: Double] = [:]
        for e in edits.values where e.status == .active {
            out[e.id] = versions[e.id] ?? 0
        }
        return out
    }

    public func storedEdits(ids: [Int64]) throws -> [StoredEdit] {
        try ids.sorted().compactMap { edits[$0] }.map(stored)
    }

    public func activeEdits(excluding editID: Int64) throws -> [StoredEdit] {
        try activeEdits().filter { $0.record.id != editID }
    }
}

extension InMemoryEditStore: EditCatalog {
    private func stored(_ e: EditRecord) throws -> StoredEdit {
        StoredEdit(record: e, expert: try experts[e.id].map { try ExpertCodec.decode($0) }, neuron: neurons[e.id])
    }

    public func activeEdits() throws -> [StoredEdit] {
        try edits.values.filter { $0.status == .active }.sorted { $0.id < $1.id }.map(stored)
    }

    public func storedEdit(id: Int64) throws -> StoredEdit? { try edits[id].map(stored) }

    public func edits(status: EditStatus?, afterID: Int64, limit: Int) throws -> [EditRecord] {
        Array(edits.values.filter { (status == nil || $0.status == status) && $0.id > afterID }.sorted { $0.id < $1.id }.prefix(max(0, limit)))
    }

    public func auditHistory(editID: Int64) throws -> [AuditEntry] { audit.filter { $0.editID == editID } }

    public func revert(editID: Int64, actor: String, reason: String) throws -> EditRecord {
        let edit = try existing(editID)
        guard edit.status != .superseded, edit.status != .reverted else {
            throw RepositoryError.invalidTransition(editID: editID, from: edit.status, action: "revert")
        }
        let reverted = set(editID, .reverted)
        log(actor, "edit.reverted", reverted, from: edit.status, to: .reverted, ["reason": reason])
        notifications.append(EditNotification(editID: editID, status: .reverted))
        return reverted
    }
}

extension InMemoryEditStore: TrafficKeyRepository {
    public func storeTrafficKeys(layer: Int, pooling: String, slots: [TrafficReservoir.Slot]) throws {
        for s in slots { traffic["\(layer)/\(pooling)", default: [:]][s.slot] = s }
    }

    public func trafficKeys(layer: Int, pooling: String, dims: Int) throws -> [TrafficReservoir.Slot] {
        (traffic["\(layer)/\(pooling)"] ?? [:]).values.filter { $0.key.count == dims }.sorted { $0.slot < $1.slot }
    }
}
