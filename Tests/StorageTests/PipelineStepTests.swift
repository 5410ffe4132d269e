import Core
import Foundation
import EditStoreScenarios
import Pipeline
import Storage
import Testing

/// TEST-ONLY trainer (never shipped): returns a fixed tiny result, or throws on chosen calls.
final class TestOnlyScriptedTrainer: EditTrainer {
    var failures: Set<Int> = []
    private(set) var calls: [(job: TrainingJob, active: [Int64])] = []

    struct Boom: Error, CustomStringConvertible { var description: String { "scripted failure" } }

    func train(_ job: TrainingJob, active: [StoredEdit]) throws -> TrainedEdit {
        calls.append((job, active.map(\.record.id)))
        if failures.contains(calls.count) { throw Boom() }
        return EditStoreScenarios.trained(seed: Float(job.editID))
    }
}

private func message(_ value: [UInt8], offset: Int64, topic: String = PipelineTopics.corrections) -> KafkaMessage {
    KafkaMessage(topic: topic, partition: 0, offset: offset, key: nil, value: value)
}

private func eventBytes(_ id: String, prompt: String = "The capital of Freedonia is") -> [UInt8] {
    var fields = validFields
    fields["id"] = id
    fields["prompt"] = prompt
    return event(fields)
}

@Suite("Ingest step (in-memory twins)")
struct IngestStepTests {
    let store = InMemoryEditStore()
    let sink = RecordingMessageSink()
    var step: IngestStep {
        IngestStep(validator: CorrectionValidator(limits: CorrectionLimits(contextTokens: 64), tokenCount: wordCount),
                   corrections: store, deadLetters: store, sink: sink)
    }

    @Test func validEventQueuesAnEditAndProducesItsJob() throws {
        guard case .queued(let edit) = try step.handle(message(eventBytes("e1"), offset: 0)) else { Issue.record("not queued"); return }
        #expect(sink.sent.count == 1)
        let job = try #require(EditJob.decode(sink.sent[0].value))
        #expect(job == EditJob(editID: edit.id, eventID: "e1"))
        #expect(sink.sent[0].topic == PipelineTopics.editJobs)
        #expect(sink.sent[0].key == Array(String(edit.id).utf8))
        #expect(store.corrections["e1"]?.position == KafkaPosition(topic: PipelineTopics.corrections, partition: 0, offset: 0))
    }

    @Test func invalidEventIsDeadLetteredWithHeaders() throws {
        let raw: [UInt8] = Array("{\"id\": 5}".utf8)
        guard case .deadLettered(let letter) = try step.handle(message(raw, offset: 3)) else { Issue.record("not dead-lettered"); return }
        #expect(letter.reason == "wrong_type" && letter.producedToTopic)
        let sent = try #require(sink.sent.first)
        #expect(sent.topic == PipelineTopics.correctionsDeadLetters && sent.value == raw)
        let headers = Dictionary(uniqueKeysWithValues: sent.headers.map { ($0.0, String(decoding: $0.1, as: UTF8.self)) })
        #expect(headers[PipelineHeaders.reason] == "wrong_type")
        #expect(headers[PipelineHeaders.originalOffset] == "3")
        #expect(headers[PipelineHeaders.originalTopic] == PipelineTopics.corrections)
        #expect(headers[PipelineHeaders.originalPartition] == "0")
        #expect(store.audit.last?.action == "event.dead_lettered")
    }

    @Test func crashBeforeTheJobIsProducedIsRepairedByTheReplay() throws {
        sink.failNext = 1  // the transaction commits, then producing the job fails (≈ crash)
        #expect(throws: RecordingMessageSink.Failure.self) { try step.handle(message(eventBytes("e2"), offset: 0)) }
        #expect(sink.sent.isEmpty && store.edits.count == 1)
        // The replay (offset not committed) produces the job once more; still one edit.
        guard case .duplicate(let edit, let jobSent) = try step.handle(message(eventBytes("e2"), offset: 0)) else {
            Issue.record("replay should be a duplicate"); return
        }
        #expect(jobSent && sink.sent.count == 1 && store.edits.count == 1)
        #expect(EditJob.decode(sink.sent[0].value)?.editID == edit.id)
    }

    @Test func duplicatesOfSettledEditsAreOnlyAcknowledged() throws {
        _ = try step.handle(message(eventBytes("e3"), offset: 0))
        let id = store.edits.keys.first!
        _ = try store.claimForTraining(editID: id, maxAttempts: 3, actor: "t")
        guard case .duplicate(_, let jobSent) = try step.handle(message(eventBytes("e3"), offset: 9)) else { Issue.record(); return }
        #expect(!jobSent && sink.sent.count == 1)
        #expect(store.audit.filter { $0.action == "edit.queued" }.count == 1)
    }

    @Test func deadLetterIsSentUntilMarkedProduced() throws {
        sink.failNext = 1
        #expect(throws: RecordingMessageSink.Failure.self) { try step.handle(message(Array("nope".utf8), offset: 4)) }
        #expect(store.letters.count == 1 && !store.letters[0].producedToTopic)
        _ = try step.handle(message(Array("nope".utf8), offset: 4))
        _ = try step.handle(message(Array("nope".utf8), offset: 4))  // a later redelivery: nothing more
        #expect(sink.sent.count == 1 && store.letters.count == 1 && store.letters[0].producedToTopic)
        #expect(store.audit.filter { $0.action == "event.dead_lettered" }.count == 1)
    }

    /// An event the broker accepted but that is over our producer's size limit: the DLQ gets a
    /// note (the payload stays in dead_letters) and ingest moves on instead of retrying forever.
    @Test func aDeadLetterTooLargeForTheDLQIsForwardedAsANote() throws {
        sink.maxMessageBytes = 1_000
        let huge = Array(String(repeating: "x", count: 5_000).utf8)
        guard case .deadLettered(let letter) = try step.handle(message(huge, offset: 9)) else { Issue.record("not dead-lettered"); return }
        #expect(letter.producedToTopic && letter.raw == huge)
        let sent = try #require(sink.sent.first)
        #expect(sent.value.count < 200 && String(decoding: sent.value, as: UTF8.self).contains("\"payload_bytes\":5000"))
        #expect(sent.headers.contains { $0.0 == PipelineHeaders.payloadOmitted && $0.1 == Array("true".utf8) })
        #expect(sent.headers.contains { $0.0 == PipelineHeaders.reason })
        guard case .queued = try step.handle(message(eventBytes("after-huge"), offset: 10)) else { Issue.record("ingest stalled"); return }
    }
}

@Suite("Trainer step (in-memory twins, test-only trainer)")
struct TrainerStepTests {
    let store = InMemoryEditStore()
    let trainer = TestOnlyScriptedTrainer()

    func step(maxAttempts: Int = 3) -> TrainerStep {
        TrainerStep(repository: store, trainer: trainer, maxAttempts: maxAttempts, retryDelay: 0)
    }

    func job(_ id: Int64, offset: Int64 = 0) -> KafkaMessage {
        KafkaMessage(topic: PipelineTopics.editJobs, partition: 0, offset: offset, key: nil,
                     value: EditJob(editID: id, eventID: "e\(id)").encoded())
    }

    func queue(_ id: String, prompt: String = "P") throws -> EditRecord {
        try store.recordCorrection(EditStoreScenarios.correction(id, prompt: prompt), at: EditStoreScenarios.position, actor: "ingest").edit
    }

    @Test func trainsActivatesAndSkipsReplays() throws {
        let edit = try queue("a")
        guard case .trained(let done, _) = try step().handle(job(edit.id)) else { Issue.record("not trained"); return }
        #expect(done.status == .active && done.attempts == 1)
        #expect(try step().handle(job(edit.id)) == .skipped(done))
        #expect(trainer.calls.count == 1)
        #expect(store.notifications == [EditNotification(editID: edit.id, status: .active)])
    }

    @Test func passesTheOtherActiveEditsToTheEngine() throws {
        let a = try queue("a", prompt: "P1"), b = try queue("b", prompt: "P2")
        _ = try step().handle(job(a.id))
        _ = try step().handle(job(b.id))
        #expect(trainer.calls.map(\.active) == [[], [a.id]])
    }

    @Test func failuresAreRetriedThenRecorded() throws {
        let edit = try queue("a")
        trainer.failures = [1, 2]
        guard case .trained(let done, _) = try step().handle(job(edit.id)) else { Issue.record("should succeed on attempt 3"); return }
        #expect(done.attempts == 3 && done.status == .active)

        let other = try queue("b", prompt: "Q")
        trainer.failures = [4, 5, 6]
        guard case .failed(let failed) = try step().handle(job(other.id)) else { Issue.record("should fail"); return }
        #expect(failed.status == .failed && failed.attempts == 3 && failed.error == "scripted failure")
        #expect(try step().handle(job(other.id)) == .failed(failed), "a replay does not retry an exhausted edit")
        #expect(store.auditHistory(editIDForTest: other.id).filter { $0 == "edit.failed" }.count == 3)
    }

    /// SIGTERM right after a failed attempt: the job is not finished (no offset commit), and the
    /// next trainer retries the edit.
    @Test func aStopAfterAFailedAttemptLeavesTheJobForTheNextTrainer() throws {
        let edit = try queue("a")
        trainer.failures = [1]
        #expect(throws: StopRequested.self) { try step().handle(job(edit.id), shouldStop: { true }) }
        #expect(try store.edit(id: edit.id)?.status == .failed && store.edit(id: edit.id)?.attempts == 1)
        guard case .trained(let done, _) = try step().handle(job(edit.id)) else { Issue.record("the replay should train"); return }
        #expect(done.status == .active && done.attempts == 2)
    }

    @Test func aCrashDuringTrainingReplaysWithoutDuplicates() throws {
        let edit = try queue("a")
        // The trainer died after claiming (status training, attempt 1, nothing stored).
        _ = try store.claimForTraining(editID: edit.id, maxAttempts: 3, actor: "scen-trainer")
        guard case .trained(let done, _) = try step().handle(job(edit.id)) else { Issue.record("replay should train"); return }
        #expect(done.attempts == 2 && store.experts.count == 1 && store.neurons.count == 1)
        #expect(try store.activeEdits().count == 1)
    }

    /// The database goes away after a good training: the result is not lost and costs no attempt.
    /// The job replays (after the reconnect, on a new step) and stores the same result.
    @Test func aDatabaseOutageAfterTrainingUsesNoAttempt() throws {
        let edit = try queue("a")
        let flaky = FlakyTrainingRepository(store, failures: [.connectionLost("server closed the connection")])
        let first = TrainerStep(repository: flaky, trainer: trainer, maxAttempts: 1, retryDelay: 0)
        #expect(throws: PostgresError.self) { try first.handle(job(edit.id)) }
        #expect(try store.edit(id: edit.id)?.status == .training && first.unstoredResult != nil)
        let second = TrainerStep(repository: flaky, trainer: trainer, maxAttempts: 1, retryDelay: 0)
        second.unstoredResult = first.unstoredResult
        guard case .trained(let done, _) = try second.handle(job(edit.id)) else { Issue.record("the replay should store it"); return }
        #expect(done.status == .active && done.attempts == 1 && trainer.calls.count == 1)
    }

    /// Two trainers activating the same prompt at once: the loser's unique-index violation is a
    /// lost race, not a failed training; it stores again and latest-wins decides.
    @Test func aLostActivationRaceIsStoredAgain() throws {
        let edit = try queue("a")
        let flaky = FlakyTrainingRepository(store, failures: [.statementFailed(sqlState: "23505", message: "edits_one_active_per_prompt")])
        guard case .trained(let done, _) = try TrainerStep(repository: flaky, trainer: trainer, maxAttempts: 1, retryDelay: 0)
            .handle(job(edit.id)) else { Issue.record("should be trained"); return }
        #expect(done.status == .active && done.attempts == 1 && flaky.completeCalls == 2)
    }

    @Test func malformedAndUnknownJobsAreSkipped() throws {
        #expect(try step().handle(KafkaMessage(topic: PipelineTopics.editJobs, partition: 0, offset: 0, key: nil, value: [1, 2])) == .malformedJob)
        #expect(try step().handle(job(404)) == .notFound(editID: 404))
    }
}

/// The in-memory store whose `completeTraining` first throws the given database errors (each
/// before touching anything, as a failed transaction leaves nothing behind).
final class FlakyTrainingRepository: TrainingRepository {
    let base: InMemoryEditStore
    var failures: [PostgresError]
    private(set) var completeCalls = 0

    init(_ base: InMemoryEditStore, failures: [PostgresError]) { self.base = base; self.failures = failures }

    func edit(id: Int64) throws -> EditRecord? { try base.edit(id: id) }
    func claimForTraining(editID: Int64, maxAttempts: Int, actor: String) throws -> TrainingClaim {
        try base.claimForTraining(editID: editID, maxAttempts: maxAttempts, actor: actor)
    }
    func completeTraining(editID: Int64, attempt: Int, result: TrainedEdit, actor: String) throws -> EditRecord {
        completeCalls += 1
        if !failures.isEmpty { throw failures.removeFirst() }
        return try base.completeTraining(editID: editID, attempt: attempt, result: result, actor: actor)
    }
    func failTraining(editID: Int64, attempt: Int, error: String, actor: String) throws -> EditRecord {
        try base.failTraining(editID: editID, attempt: attempt, error: error, actor: actor)
    }
    func activeEdits(excluding editID: Int64) throws -> [StoredEdit] { try base.activeEdits(excluding: editID) }
    func activeEditVersions() throws -> [Int64: Double] { try base.activeEditVersions() }
    func storedEdits(ids: [Int64]) throws -> [StoredEdit] { try base.storedEdits(ids: ids) }
}

extension InMemoryEditStore {
    func auditHistory(editIDForTest id: Int64) -> [String] { audit.filter { $0.editID == id }.map(\.action) }
}
