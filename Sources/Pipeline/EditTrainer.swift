// What the Trainer asks of the SCEN engine: train one edit (stage 1 expert + stage 2 indexing
// neuron) given the edits already active. The real implementation wraps Core's
// SCEN trainer (Sources/Trainer); tests may use their own, clearly named as test doubles.

import Storage

/// One edit to train.
public struct TrainingJob: Sendable, Equatable {
    public var editID: Int64
    public var eventID: String
    public var prompt: String
    public var target: String
    public var rephrases: [String]
    /// 1 for the first attempt.
    public var attempt: Int

    public init(edit: EditRecord) {
        editID = edit.id
        eventID = edit.eventID
        prompt = edit.prompt
        target = edit.target
        rephrases = edit.rephrases
        attempt = edit.attempts
    }
}

public protocol EditTrainer: AnyObject {
    /// Trains `job` against `active`: the other active edits with their experts and neurons
    /// (negatives for the new neuron; the result may refine their neurons). Throws on failure;
    /// the pipeline records the error and retries a bounded number of times.
    func train(_ job: TrainingJob, active: [StoredEdit]) throws -> TrainedEdit
}
