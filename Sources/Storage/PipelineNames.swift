// Every external name of the edit pipeline in one place: Kafka topics, message headers,
// consumer groups and the PostgreSQL notification channel. (Table names live in migrations/.)
import Foundation

/// Kafka topics of the edit pipeline. Each is created with one partition (see `KafkaAdmin`).
/// `$SCEN_TOPIC_PREFIX` (default empty) is put in front of every name, so that several
/// pipelines (e.g. test runs) can share one broker.
public enum PipelineTopics {
    public static let prefix = ProcessInfo.processInfo.environment["SCEN_TOPIC_PREFIX"] ?? ""
    /// Correction events v1 (docs/events.md), produced by clients and `scen publish`.
    public static let corrections = prefix + "scen.corrections"
    /// Rejected input: the original bytes as value, the reason in `PipelineHeaders.reason`.
    public static let correctionsDeadLetters = prefix + "scen.corrections.dlq"
    /// Ingest → Trainer: key = edit id (decimal), value = `EditJob` JSON.
    public static let editJobs = prefix + "scen.edit-jobs"

    public static let all = [corrections, correctionsDeadLetters, editJobs]
}

/// Headers on `scen.corrections.dlq` messages (values are UTF-8 text).
public enum PipelineHeaders {
    /// The rejection code (`RejectionReason.code`, e.g. `missing_field`).
    public static let reason = "scen-reason"
    /// A human-readable detail (e.g. `field "target" is missing`).
    public static let reasonDetail = "scen-reason-detail"
    public static let originalTopic = "scen-original-topic"
    public static let originalPartition = "scen-original-partition"
    public static let originalOffset = "scen-original-offset"
    /// On a DLQ message whose original payload was too large to forward: "true". The value is
    /// then a small JSON note (dead letter id, size, SHA-256); the full bytes are in `dead_letters`.
    public static let payloadOmitted = "scen-payload-omitted"
}

/// Consumer groups of the services.
public enum PipelineGroups {
    public static let ingest = "scen-ingest"
    public static let trainer = "scen-trainer"
}

/// PostgreSQL NOTIFY channels.
public enum PipelineChannels {
    /// Payload `{"edit_id": N, "status": "active"}` after an edit changes what the Router serves.
    public static let edits = "scen_edits"
}
