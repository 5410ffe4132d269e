// One message through Ingest: validate → (valid) correction + queued edit + audit row in one
// transaction → job produced; (invalid) dead letter + audit row → DLQ topic. The caller commits
// the offset only after `handle` returns. Every crash point replays safely:
//  * before the transaction commits: nothing stored; the replay stores it.
//  * after it, before the job is acknowledged: the replay finds the event id, sees the edit
//    still `queued` and produces the job again (the trainer skips jobs of settled edits).
//  * after the job, before the offset commit: same; at worst one extra job, which the trainer
//    skips because the edit is then training/active.
//  * dead letters: stored once per Kafka position; the DLQ message is sent until
//    `dlq_produced_at` is set (a crash between the ack and that update sends it twice; both
//    copies carry the same original topic/partition/offset headers).
// `handle` throws only for infrastructure failures (database or broker unreachable): the
// caller retries the same message and commits nothing meanwhile.
import Foundation
import Storage
import Logging

public final class IngestStep {
    public enum Outcome: Sendable, Equatable {
        case queued(EditRecord)
        /// Seen before; `jobSent` when the edit was still queued and the job was re-produced.
        case duplicate(EditRecord, jobSent: Bool)
        case deadLettered(DeadLetter)
    }

    let validator: CorrectionValidator
    let corrections: CorrectionRepository
    let deadLetters: DeadLetterRepository
    let sink: MessageSink
    let actor: String
    let logger: Logger

    public init(validator: CorrectionValidator, corrections: CorrectionRepository, deadLetters: DeadLetterRepository,
                sink: MessageSink, actor: String = "scen-ingest", logger: Logger = Logger(label: "scen-ingest")) {
        self.validator = validator
        self.corrections = corrections
        self.deadLetters = deadLetters
        self.sink = sink
        self.actor = actor
        self.logger = logger
    }

    public func handle(_ message: KafkaMessage) throws -> Outcome {
        let position = KafkaPosition(topic: message.topic, partition: message.partition, offset: message.offset)
        switch validator.validate(message.value) {
        case .failure(let rejection):
            return .deadLettered(try deadLetter(message, rejection, position))
        case .success(let event):
            let outcome: IngestOutcome
            do {
                outcome = try corrections.recordCorrection(event, at: position, actor: actor)
            } catch PostgresError.statementFailed(let state, let text) where state.hasPrefix("22") || state.hasPrefix("23") {
                // The database refused a well-formed event (data or constraint error): input, not outage.
                return .deadLettered(try deadLetter(message, Rejection(.storageRejected, "\(state): \(text)"), position))
            }
            var meta: Logger.Metadata = ["event_id": "\(event.id)", "edit_id": "\(outcome.edit.id)", "offset": "\(message.offset)"]
            if outcome.needsJob {
                let job = EditJob(editID: outcome.edit.id, eventID: event.id)
                try sink.send([KafkaOutgoing(topic: PipelineTopics.editJobs, key: Array(String(job.editID).utf8), value: job.encoded())])
            }
            switch outcome {
            case .queued(let edit):
                logger.info("edit queued", metadata: meta)
                return .queued(edit)
            case .duplicate(let edit):
                meta["status"] = "\(edit.status.rawValue)"
                logger.info(outcome.needsJob ? "duplicate event; edit still queued, job produced again" : "duplicate event acknowledged",
                            metadata: meta)
                return .duplicate(edit, jobSent: outcome.needsJob)
            }
        }
    }

    private func deadLetter(_ message: KafkaMessage, _ rejection: Rejection, _ position: KafkaPosition) throws -> DeadLetter {
        var letter = try deadLetters.recordDeadLetter(raw: message.value, rejection: rejection, at: position, actor: actor)
        if !letter.producedToTopic {
            let headers: [(String, [UInt8])] = [
                (PipelineHeaders.reason, Array(rejection.reason.rawValue.utf8)),
                (PipelineHeaders.reasonDetail, Array(rejection.detail.utf8)),
                (PipelineHeaders.originalTopic, Array(message.topic.utf8)),
                (PipelineHeaders.originalPartition, Array(String(message.partition).utf8)),
                (PipelineHeaders.originalOffset, Array(String(message.offset).utf8)),
            ]
            do {
                try sink.send([KafkaOutgoing(topic: PipelineTopics.correctionsDeadLetters, key: message.key, value: message.value,
                                             headers: headers)])
            } catch KafkaError.messageTooLarge(_, let bytes) {
                // The broker took it from its producer, but ours may not forward it: retrying
                // would stall ingest on this offset forever. The DLQ gets a note instead; the
                // full payload is kept in dead_letters.
                let note = "{\"dead_letter_id\":\(letter.id),\"payload_bytes\":\(bytes),\"payload_sha256\":\"\(Checksum.sha256Hex(message.value))\"}"
                try sink.send([KafkaOutgoing(topic: PipelineTopics.correctionsDeadLetters, key: message.key, value: Array(note.utf8),
                                             headers: headers + [(PipelineHeaders.payloadOmitted, Array("true".utf8))])])
                logger.warning("dead letter too large for the DLQ topic; sent a note, payload kept in the database",
                               metadata: ["dead_letter_id": "\(letter.id)", "bytes": "\(bytes)"])
            }
            try deadLetters.markDeadLetterProduced(id: letter.id)
            letter.producedToTopic = true
        }
        logger.warning("event dead-lettered", metadata: ["reason": "\(rejection.reason.rawValue)", "detail": "\(rejection.detail)",
                                                         "offset": "\(message.offset)", "dead_letter_id": "\(letter.id)"])
        return letter
    }
}
