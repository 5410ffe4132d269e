// One job through the Trainer: skip settled edits → claim (training, attempts + 1) → train →
// one transaction storing expert, neuron, metrics and hyperparameters, activating and
// superseding, with audit rows and NOTIFY → the caller commits the offset. A crash anywhere
// replays the job: a settled edit is skipped, an edit left in `training` is claimed again
// (bounded by `maxAttempts`, so a job that kills the trainer cannot loop forever), and
// nothing is stored twice (one row per edit in experts/neurons, guarded status changes).
import Foundation
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
                    let stored = try repository.completeTraining(editID: edit.id, attempt: edit.attempts, result: result, actor: actor)
                    meta["status"] = "\(stored.status.rawValue)"
                    meta["seconds"] = "\(String(format: "%.2f", seconds))"
                    logger.info("edit trained", metadata: meta)
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
}
