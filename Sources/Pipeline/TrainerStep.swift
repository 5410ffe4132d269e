// One job through the Trainer: skip settled edits → claim (training, attempts + 1) → train →
// one transaction storing expert, neuron, metrics and hyperparameters, activating and
// superseding, with audit rows and NOTIFY → the caller commits the offset. A crash anywhere
// replays the job: a settled edit is skipped, an edit left in `training` is claimed again
// (bounded by `maxAttempts`, so a job that kills the trainer cannot loop forever), and
// nothing is stored twice (one row per edit in experts/neurons, guarded status changes).
// A good training is never thrown away for a database fault: when storing it fails (the server
// went away), the result waits in `unstoredResult` and the replayed job stores it without a new
// claim, so database outages use up no training attempts; when storing loses a race (another
// trainer activated the same prompt first), it is stored again at once and latest-wins decides.
import Foundation
import Storage
import Logging

public final class TrainerStep {
    public enum Outcome: Sendable, Equatable {
        case trained(EditRecord, seconds: Double)
        case skipped(EditRecord)
        /// Failed on its last allowed attempt.
        case failed(EditRecord)
        case notFound(editID: Int64)
        /// The job message is not an `EditJob`.
        case malformedJob
    }

    /// A trained result whose storing failed on a database error, kept for the job's replay.
    public struct UnstoredResult: Sendable {
        public var editID: Int64
        public var attempt: Int
        public var result: TrainedEdit
        public var seconds: Double
    }

    /// Carry this over to the step that replaces this one after a reconnect.
    public var unstoredResult: UnstoredResult?
    let repository: TrainingRepository
    let activeEdits: ActiveEditCache
    let trainer: EditTrainer
    let maxAttempts: Int
    let retryDelay: Double
    let actor: String
    let logger: Logger

    public init(repository: TrainingRepository, trainer: EditTrainer, maxAttempts: Int = 3, retryDelay: Double = 1,
                actor: String = "scen-trainer", logger: Logger = Logger(label: "scen-trainer")) {
        self.repository = repository
        self.activeEdits = ActiveEditCache(repository: repository)
        self.trainer = trainer
        self.maxAttempts = maxAttempts
        self.retryDelay = retryDelay
        self.actor = actor
        self.logger = logger
    }

    /// Throws only for infrastructure failures; then the caller must not commit the offset.
    public func handle(_ message: KafkaMessage, shouldStop: () -> Bool = { false }) throws -> Outcome {
        guard let job = EditJob.decode(message.value) else {
            logger.error("malformed job message skipped", metadata: ["offset": "\(message.offset)"])
            return .malformedJob
        }
        var meta: Logger.Metadata = ["edit_id": "\(job.editID)", "event_id": "\(job.eventID)"]
        if let pending = unstoredResult, pending.editID == job.editID {
            unstoredResult = nil
            meta["attempt"] = "\(pending.attempt)"
            do {
                let stored = try store(pending, meta: meta)
                return .trained(stored, seconds: pending.seconds)
            } catch RepositoryError.claimLost {
                logger.info("edit changed since its result was trained; training it again", metadata: meta)
            }
        }
        while true {
            let edit: EditRecord
            switch try repository.claimForTraining(editID: job.editID, maxAttempts: maxAttempts, actor: actor) {
            case .notFound:
                logger.error("job for an unknown edit skipped", metadata: meta)
                return .notFound(editID: job.editID)
            case .skipped(let e):
                meta["status"] = "\(e.status.rawValue)"
                logger.info("edit already settled; job skipped", metadata: meta)
                return e.status == .failed ? .failed(e) : .skipped(e)
            case .claimed(let e):
                edit = e
            }
            meta["attempt"] = "\(edit.attempts)"
            logger.info("training", metadata: meta)
            let start = Date()
            let outcome: Result<TrainedEdit, any Error>
            do {
                outcome = .success(try trainer.train(TrainingJob(edit: edit), active: try activeEdits.activeEdits(excluding: edit.id)))
            } catch let error as PostgresError {
                throw error
            } catch {
                outcome = .failure(error)
            }
            let seconds = Date().timeIntervalSince(start)
            var failure: (any Error)?
            if case .success(let result) = outcome {
                do {
                    let stored = try store(UnstoredResult(editID: edit.id, attempt: edit.attempts, result: result, seconds: seconds), meta: meta)
                    return .trained(stored, seconds: seconds)
                } catch RepositoryError.claimLost {
                    let now = try repository.edit(id: edit.id)
                    logger.warning("edit changed during training; result discarded",
                                   metadata: meta.merging(["status": "\(now?.status.rawValue ?? "?")"]) { $1 })
                    return now.map { .skipped($0) } ?? .notFound(editID: edit.id)
                } catch let error as ExpertCodecError {
                    failure = error  // the trainer produced something unstorable (shape, NaN)
                } catch let error as RepositoryError {
                    failure = error
                }
            } else if case .failure(let error) = outcome {
                failure = error
            }
            let error = failure!
            let failed = try repository.failTraining(editID: edit.id, attempt: edit.attempts, error: "\(error)", actor: actor)
            logger.error("training failed", metadata: meta.merging(["error": "\(error)"]) { $1 })
            if failed.attempts >= maxAttempts { return .failed(failed) }
            // Stopping with attempts left: the job must stay uncommitted, so that the next
            // trainer retries it (a committed offset would leave the edit failed for good).
            if shouldStop() { throw StopRequested(detail: "edit \(edit.id) failed attempt \(failed.attempts) of \(maxAttempts); its job stays uncommitted") }
            Thread.sleep(forTimeInterval: retryDelay)
        }
    }

    /// Stores a trained result. A lost race is stored again (up to 5 times); any other database
    /// error keeps the result in `unstoredResult` and is thrown (the job replays after recovery).
    private func store(_ pending: UnstoredResult, meta: Logger.Metadata) throws -> EditRecord {
        var conflicts = 0
        while true {
            do {
                let stored = try repository.completeTraining(editID: pending.editID, attempt: pending.attempt, result: pending.result, actor: actor)
                logger.info("edit trained", metadata: meta.merging(["status": "\(stored.status.rawValue)",
                                                                    "seconds": "\(String(format: "%.2f", pending.seconds))"]) { $1 })
                return stored
            } catch let error as PostgresError where error.isConcurrentConflict && conflicts < 5 {
                conflicts += 1
                logger.warning("storing the edit lost a race with another transaction; storing again",
                               metadata: meta.merging(["error": "\(error)"]) { $1 })
            } catch let error as PostgresError {
                unstoredResult = pending
                logger.warning("storing the trained edit failed; it is kept for the job's replay",
                               metadata: meta.merging(["error": "\(error)"]) { $1 })
                throw error
            }
        }
    }
}
