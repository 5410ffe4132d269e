// The records the edit repositories read and write (tables in migrations/0001_edit_pipeline.sql).
import Foundation

/// Life of an edit: queued → training → active → superseded | reverted; training → held (its
/// blast radius is over the limit; never served) → reverted; training → failed → training
/// (bounded retries). `edits.status` has a CHECK with exactly these values.
public enum EditStatus: String, Sendable, Codable, CaseIterable {
    case queued, training, active, held, failed, superseded, reverted

    /// The trainer never touches an edit in these states again.
    public var isSettled: Bool { self == .active || self == .held || self == .superseded || self == .reverted }
}

/// Where a Kafka message was read.
public struct KafkaPosition: Sendable, Equatable, Hashable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64

    public init(topic: String, partition: Int32, offset: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }
}

/// One row of `edits`.
public struct EditRecord: Sendable, Equatable {
    public var id: Int64
    public var eventID: String
    public var prompt: String
    public var target: String
    public var rephrases: [String]
    public var status: EditStatus
    /// JSON text (jsonb), set when trained.
    public var hyperparameters: String?
    /// JSON text (jsonb), set when trained.
    public var metrics: String?
    public var error: String?
    /// Training attempts started so far.
    public var attempts: Int
    public var supersededBy: Int64?
    /// Why the edit is held for review (status `held`, and kept after a revert of it).
    public var heldReason: String?
    /// The correction's `created_at`: among edits of one prompt the latest correction wins.
    public var correctedAt: Date
    public var createdAt: Date
    public var updatedAt: Date

    public init(id: Int64, eventID: String, prompt: String, target: String, rephrases: [String], status: EditStatus,
                hyperparameters: String? = nil, metrics: String? = nil, error: String? = nil, attempts: Int = 0,
                supersededBy: Int64? = nil, heldReason: String? = nil, correctedAt: Date, createdAt: Date, updatedAt: Date) {
        self.id = id
        self.eventID = eventID
        self.prompt = prompt
        self.target = target
        self.rephrases = rephrases
        self.status = status
        self.hyperparameters = hyperparameters
        self.metrics = metrics
        self.error = error
        self.attempts = attempts
        self.supersededBy = supersededBy
        self.heldReason = heldReason
        self.correctedAt = correctedAt
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    /// True if `self` is a later correction than `other` (created_at, then arrival order).
    public func isLater(than other: EditRecord) -> Bool {
        correctedAt != other.correctedAt ? correctedAt > other.correctedAt : id > other.id
    }
}

/// An indexing neuron: its score sigmoid(w·k + bias) on a routing key k [F] (layer L's FFN
/// input pooled over the prompt, Core's `KeyPooling`) decides whether its edit's expert is used. `key` [F] is the edit
/// prompt's key, `extraKeys` [P][F] those of its rephrases.
public struct StoredIndexingNeuron: Sendable, Equatable {
    public var layer: Int
    /// w: [F] (raw key space).
    public var weights: [Float]
    public var bias: Float
    /// key: [F].
    public var key: [Float]
    /// [P][F].
    public var extraKeys: [[Float]]

    public var dims: Int { weights.count }

    public init(layer: Int, weights: [Float], bias: Float, key: [Float], extraKeys: [[Float]] = []) {
        self.layer = layer
        self.weights = weights
        self.bias = bias
        self.key = key
        self.extraKeys = extraKeys
    }

    var shapeProblem: String? {
        guard dims > 0, key.count == dims, extraKeys.allSatisfy({ $0.count == dims }) else {
            return "neuron has \(weights.count) weights, a key of \(key.count) and extra keys of \(Set(extraKeys.map(\.count)).sorted())"
        }
        guard weights.allSatisfy(\.isFinite), bias.isFinite, key.allSatisfy(\.isFinite) else { return "neuron has non-finite values" }
        return nil
    }
}

/// What training produced for one edit; stored in one transaction by `completeTraining`.
public struct TrainedEdit: Sendable, Equatable {
    public var expert: StoredExpert
    public var neuron: StoredIndexingNeuron
    /// Earlier edits' neurons that stage 2 refined so they stay silent on this edit's keys.
    /// Stored only for edits that are still active.
    public var refinedNeurons: [ActiveNeuron]
    /// The hyperparameters used, as JSON text.
    public var hyperparameters: String
    /// Training metrics (losses, blast radius, …), as JSON text.
    public var metrics: String
    /// Active edits of the same fact worded differently, which this one supersedes (by meaning,
    /// Core's `SameFact`); the later correction wins, as for identical prompts.
    public var supersedes: [Int64]
    /// Set when the blast-radius check refuses activation: the edit becomes `held` with this reason.
    public var heldReason: String?
    /// What the audit row of activation or hold records of the blast radius.
    public var blastRadius: [String: Double]

    public init(expert: StoredExpert, neuron: StoredIndexingNeuron, refinedNeurons: [ActiveNeuron] = [],
                hyperparameters: String, metrics: String, supersedes: [Int64] = [], heldReason: String? = nil,
                blastRadius: [String: Double] = [:]) {
        self.expert = expert
        self.neuron = neuron
        self.refinedNeurons = refinedNeurons
        self.hyperparameters = hyperparameters
        self.metrics = metrics
        self.supersedes = supersedes
        self.heldReason = heldReason
        self.blastRadius = blastRadius
    }
}

/// An edit with its trained parameters (present once trained).
public struct StoredEdit: Sendable, Equatable {
    public var record: EditRecord
    public var expert: StoredExpert?
    public var neuron: StoredIndexingNeuron?
    /// Why the stored expert or neuron could not be read (corrupt blob, bad checksum, wrong
    /// size); such an edit is never routed, but it does not stop the others from loading.
    public var defect: String?

    public init(record: EditRecord, expert: StoredExpert?, neuron: StoredIndexingNeuron?, defect: String? = nil) {
        self.record = record
        self.expert = expert
        self.neuron = neuron
        self.defect = defect
    }
}

/// The indexing neuron of an active edit: stage 2 trains a new neuron to stay silent on the
/// keys of these, and may refine them (`TrainedEdit.refinedNeurons`).
public struct ActiveNeuron: Sendable, Equatable {
    public var editID: Int64
    public var neuron: StoredIndexingNeuron

    public init(editID: Int64, neuron: StoredIndexingNeuron) {
        self.editID = editID
        self.neuron = neuron
    }
}

/// One row of `audit_log`.
public struct AuditEntry: Sendable, Equatable {
    public var id: Int64
    public var at: Date
    public var actor: String
    /// `edit.queued`, `edit.training`, `edit.activated`, `edit.failed`, `edit.superseded`,
    /// `edit.reverted`, `edit.neuron_refined` (a later edit retrained this edit's neuron),
    /// `event.dead_lettered`.
    public var action: String
    public var editID: Int64?
    public var eventID: String?
    public var fromStatus: EditStatus?
    public var toStatus: EditStatus?
    /// JSON object text.
    public var details: String

    public init(id: Int64, at: Date, actor: String, action: String, editID: Int64?, eventID: String?,
                fromStatus: EditStatus?, toStatus: EditStatus?, details: String) {
        self.id = id
        self.at = at
        self.actor = actor
        self.action = action
        self.editID = editID
        self.eventID = eventID
        self.fromStatus = fromStatus
        self.toStatus = toStatus
        self.details = details
    }
}

/// One row of `dead_letters`.
public struct DeadLetter: Sendable, Equatable {
    public var id: Int64
    public var raw: [UInt8]
    public var reason: String
    public var detail: String
    public var position: KafkaPosition
    /// True once the DLQ topic acknowledged the message.
    public var producedToTopic: Bool

    public init(id: Int64, raw: [UInt8], reason: String, detail: String, position: KafkaPosition, producedToTopic: Bool) {
        self.id = id
        self.raw = raw
        self.reason = reason
        self.detail = detail
        self.position = position
        self.producedToTopic = producedToTopic
    }
}

/// Result of recording a correction.
public enum IngestOutcome: Sendable, Equatable {
    /// A new correction and a queued edit were stored.
    case queued(EditRecord)
    /// The event id was seen before; nothing was stored. `edit` is the existing edit.
    case duplicate(EditRecord)

    public var edit: EditRecord {
        switch self { case .queued(let e), .duplicate(let e): e }
    }

    /// Whether Ingest must (re)produce the edit job: a new edit, or a duplicate whose edit is
    /// still queued (the job may have been lost to a crash before it was produced).
    public var needsJob: Bool { edit.status == .queued }
}

/// Result of a trainer's claim on an edit.
public enum TrainingClaim: Sendable, Equatable {
    /// Status is now `training`, `attempts` incremented: train it (attempt = record.attempts).
    case claimed(EditRecord)
    /// Nothing to do: settled already, or failed with no attempts left.
    case skipped(EditRecord)
    case notFound
}

public enum RepositoryError: Error, Sendable, Equatable, CustomStringConvertible {
    case notFound(editID: Int64)
    case invalidTransition(editID: Int64, from: EditStatus, action: String)
    /// The edit is no longer in the training attempt the caller claimed (reverted meanwhile,
    /// or claimed again by another trainer).
    case claimLost(editID: Int64, attempt: Int)
    case corrupt(String)

    public var description: String {
        switch self {
        case .notFound(let id): "edit \(id) does not exist"
        case .invalidTransition(let id, let from, let action): "edit \(id) is \(from.rawValue): cannot \(action)"
        case .claimLost(let id, let attempt): "edit \(id) is no longer in training attempt \(attempt)"
        case .corrupt(let m): "stored data is corrupt: \(m)"
        }
    }
}
