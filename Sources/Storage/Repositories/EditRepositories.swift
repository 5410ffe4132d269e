// The repositories of the edit pipeline, one protocol per client. `PostgresEditStore` and
// `InMemoryEditStore` implement all of them with the same semantics. Implementations are not
// thread-safe (one libpq connection each): give every task its own.
import Core
import Foundation

/// Ingest: one accepted correction → correction row + queued edit + audit row, atomically.
public protocol CorrectionRepository: AnyObject {
    /// Idempotent on `event.id`: a duplicate stores nothing and returns the existing edit.
    func recordCorrection(_ event: CorrectionEvent, at position: KafkaPosition, actor: String) throws -> IngestOutcome
}

/// Ingest: rejected input.
public protocol DeadLetterRepository: AnyObject {
    /// Stores the dead letter and an audit row, once per Kafka position; returns the stored row.
    func recordDeadLetter(raw: [UInt8], rejection: Rejection, at position: KafkaPosition, actor: String) throws -> DeadLetter
    /// Notes that the DLQ topic acknowledged dead letter `id` (so a replay does not resend it).
    func markDeadLetterProduced(id: Int64) throws
    /// Dead letters by id, ascending, after `afterID`.
    func deadLetters(afterID: Int64, limit: Int) throws -> [DeadLetter]
}

/// Trainer: claim, complete, fail. All guarded by status and attempt.
public protocol TrainingRepository: AnyObject {
    func edit(id: Int64) throws -> EditRecord?
    /// queued / training (a previous attempt died) / failed with attempts left → `training`,
    /// attempts + 1, audit row. Settled edits and exhausted ones → `.skipped`. An edit found
    /// in `training` with no attempts left is marked `failed` and skipped.
    func claimForTraining(editID: Int64, maxAttempts: Int, actor: String) throws -> TrainingClaim
    /// One transaction: expert + neuron + hyperparameters + metrics stored; the edit becomes
    /// `active` and supersedes the active edit of the same prompt, unless that one is a later
    /// correction (then this edit becomes `superseded` instead); audit rows for both; refined
    /// neurons of still-active edits updated; NOTIFY `scen_edits` for every edit whose status
    /// or neuron changed. Throws `claimLost` if the edit left
    /// training attempt `attempt`.
    func completeTraining(editID: Int64, attempt: Int, result: TrainedEdit, actor: String) throws -> EditRecord
    /// training → failed with `error` (+ audit). The caller retries while attempts remain.
    func failTraining(editID: Int64, attempt: Int, error: String, actor: String) throws -> EditRecord
    /// The active edits other than `editID` with their experts and neurons, by id (the index
    /// a new edit is trained against).
    func activeEdits(excluding editID: Int64) throws -> [StoredEdit]
    /// Ids of the active edits with a version that changes whenever the edit or its neuron
    /// does (cheap: no parameters are read). See `ActiveEditCache`.
    func activeEditVersions() throws -> [Int64: Double]
    /// These edits with their experts and neurons, by id (missing ids are left out).
    func storedEdits(ids: [Int64]) throws -> [StoredEdit]
}

/// The router's traffic reservoir (Core's `TrafficReservoir`) in `traffic_keys`: the router
/// writes changed slots, the trainer reads them all. Keys only, never prompt text.
public protocol TrafficKeyRepository: AnyObject {
    /// Upserts these slots of the reservoir of `layer` and `pooling`.
    func storeTrafficKeys(layer: Int, pooling: String, slots: [TrafficReservoir.Slot]) throws
    /// Every stored slot of `layer` and `pooling` whose key has `dims` values, by slot.
    func trafficKeys(layer: Int, pooling: String, dims: Int) throws -> [TrafficReservoir.Slot]
}

/// Router and operators: what is served, history, revert.
public protocol EditCatalog: AnyObject {
    /// Every active edit with its expert and indexing neuron, by id.
    func activeEdits() throws -> [StoredEdit]
    /// One edit with its expert and neuron when trained.
    func storedEdit(id: Int64) throws -> StoredEdit?
    /// One edit's row alone (no expert or neuron decoded).
    func edit(id: Int64) throws -> EditRecord?
    /// Edits by id ascending after `afterID` (keyset paging), optionally of one status.
    func edits(status: EditStatus?, afterID: Int64, limit: Int) throws -> [EditRecord]
    /// The audit rows of one edit, oldest first.
    func auditHistory(editID: Int64) throws -> [AuditEntry]
    /// active / queued / training / failed → `reverted` (+ audit with actor, NOTIFY).
    func revert(editID: Int64, actor: String, reason: String) throws -> EditRecord
}

/// The JSON payload of a `scen_edits` notification.
public struct EditNotification: Codable, Sendable, Equatable {
    public var editID: Int64
    public var status: EditStatus

    enum CodingKeys: String, CodingKey {
        case editID = "edit_id"
        case status
    }

    public init(editID: Int64, status: EditStatus) {
        self.editID = editID
        self.status = status
    }

    public var json: String { "{\"edit_id\":\(editID),\"status\":\"\(status.rawValue)\"}" }

    public static func decode(_ payload: String) -> EditNotification? {
        try? JSONDecoder().decode(EditNotification.self, from: Data(payload.utf8))
    }
}

/// A JSON object as text, for audit details (keys sorted).
func jsonObjectText(_ object: [String: Any]) -> String {
    guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return "{}" }
    return String(decoding: data, as: UTF8.self)
}

func jsonArrayText(_ array: [String]) -> String {
    guard let data = try? JSONSerialization.data(withJSONObject: array, options: [.withoutEscapingSlashes]) else { return "[]" }
    return String(decoding: data, as: UTF8.self)
}

func decodeStringArray(_ text: String) -> [String]? {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String]
}
