// The edit repositories on PostgreSQL. Every statement is parameterised; every multi-row
// change is one transaction; NOTIFY is sent inside the transaction, so it is delivered
// exactly when the change commits.
import Core
import Foundation

public final class PostgresEditStore {
    public let db: PostgresConnection

    public init(_ db: PostgresConnection) { self.db = db }

    public convenience init(url: String) throws { self.init(try PostgresConnection(url: url)) }

    static let editColumns = """
        id, event_id, prompt, target, rephrases::text AS rephrases, status, hyperparameters::text AS hyperparameters,
        metrics::text AS metrics, error, attempts, superseded_by, held_reason,
        extract(epoch FROM corrected_at)::float8 AS corrected_at, extract(epoch FROM created_at)::float8 AS created_at,
        extract(epoch FROM updated_at)::float8 AS updated_at
        """

    static func editRecord(_ row: PostgresRow) throws -> EditRecord {
        let statusText = try row.string("status")
        guard let status = EditStatus(rawValue: statusText) else { throw RepositoryError.corrupt("edit status \(statusText)") }
        guard let rephrases = decodeStringArray(try row.string("rephrases")) else { throw RepositoryError.corrupt("rephrases") }
        return EditRecord(
            id: try row.int("id"), eventID: try row.string("event_id"), prompt: try row.string("prompt"),
            target: try row.string("target"), rephrases: rephrases, status: status,
            hyperparameters: row["hyperparameters"], metrics: row["metrics"], error: row["error"],
            attempts: Int(try row.int("attempts")), supersededBy: row["superseded_by"].flatMap { Int64($0) },
            heldReason: row["held_reason"],
            correctedAt: Date(timeIntervalSince1970: try row.double("corrected_at")),
            createdAt: Date(timeIntervalSince1970: try row.double("created_at")),
            updatedAt: Date(timeIntervalSince1970: try row.double("updated_at")))
    }

    private func lockedEdit(_ tx: PostgresConnection, _ id: Int64) throws -> EditRecord {
        guard let row = try tx.query("SELECT \(Self.editColumns) FROM edits WHERE id = $1 FOR UPDATE", [.int(id)]).first else {
            throw RepositoryError.notFound(editID: id)
        }
        return try Self.editRecord(row)
    }

    private func audit(_ tx: PostgresConnection, actor: String, action: String, editID: Int64?, eventID: String?,
                       from: EditStatus?, to: EditStatus?, details: [String: Any] = [:]) throws {
        try tx.query("""
            INSERT INTO audit_log (actor, action, edit_id, event_id, from_status, to_status, details)
            VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
            """, [.text(actor), .text(action), editID.map { .int($0) }, eventID.map { .text($0) },
                  from.map { .text($0.rawValue) }, to.map { .text($0.rawValue) }, .text(jsonObjectText(details))])
    }

    /// Sets status (and whatever else `extra` names, as `column = $n` pairs) and returns the row.
    private func setStatus(_ tx: PostgresConnection, _ id: Int64, _ status: EditStatus,
                           _ extra: [(String, PostgresValue?)] = []) throws -> EditRecord {
        var sets = ["status = $2", "updated_at = now()"]
        var params: [PostgresValue?] = [.int(id), .text(status.rawValue)]
        for (column, value) in extra {
            params.append(value)
            sets.append("\(column) = $\(params.count)")  // column names are constants of this file
        }
        let rows = try tx.query("UPDATE edits SET \(sets.joined(separator: ", ")) WHERE id = $1 RETURNING \(Self.editColumns)", params)
        guard let row = rows.first else { throw RepositoryError.notFound(editID: id) }
        return try Self.editRecord(row)
    }

    private func notify(_ tx: PostgresConnection, _ edit: EditRecord) throws {
        try tx.notify(PipelineChannels.edits, payload: EditNotification(editID: edit.id, status: edit.status).json)
    }
}

extension PostgresEditStore: CorrectionRepository {
    public func recordCorrection(_ event: CorrectionEvent, at position: KafkaPosition, actor: String) throws -> IngestOutcome {
        // One statement, so one round trip and atomic by itself: the correction, its queued edit
        // and the audit row, or (event id seen before) nothing at all.
        let details = jsonObjectText(["reporter": event.reporter, "source": event.source, "topic": position.topic,
                                      "partition": position.partition, "offset": position.offset])
        let rows = try db.query("""
            WITH c AS (
                INSERT INTO corrections (event_id, payload, reporter, source, created_at, kafka_topic, kafka_partition, kafka_offset)
                VALUES ($1, $2, $3, $4, to_timestamp($5), $6, $7, $8)
                ON CONFLICT (event_id) DO NOTHING
                RETURNING id
            ), e AS (
                INSERT INTO edits (correction_id, event_id, prompt, target, rephrases, corrected_at)
                SELECT c.id, $1, $9::text, $10::text, $11::jsonb, to_timestamp($5) FROM c
                RETURNING *
            ), a AS (
                INSERT INTO audit_log (actor, action, edit_id, event_id, from_status, to_status, details)
                SELECT $12::text, 'edit.queued', e.id, e.event_id, NULL, 'queued', $13::jsonb FROM e
            )
            SELECT \(Self.editColumns) FROM e
            """, [.text(event.id), .text(String(decoding: event.raw, as: UTF8.self)), .text(event.reporter), .text(event.source),
                  .double(event.createdAt.timeIntervalSince1970), .text(position.topic), .int(Int64(position.partition)),
                  .int(position.offset), .text(event.prompt), .text(event.target), .text(jsonArrayText(event.rephrases)),
                  .text(actor), .text(details)])
        if let row = rows.first { return .queued(try Self.editRecord(row)) }
        guard let row = try db.query("SELECT \(Self.editColumns) FROM edits WHERE event_id = $1", [.text(event.id)]).first else {
            throw RepositoryError.corrupt("correction \(event.id) has no edit")
        }
        return .duplicate(try Self.editRecord(row))
    }
}

extension PostgresEditStore: DeadLetterRepository {
    static let deadLetterColumns = "id, raw, reason, detail, kafka_topic, kafka_partition, kafka_offset, dlq_produced_at IS NOT NULL AS produced"

    static func deadLetter(_ row: PostgresRow) throws -> DeadLetter {
        DeadLetter(id: try row.int("id"), raw: try row.bytes("raw"), reason: try row.string("reason"), detail: try row.string("detail"),
                   position: KafkaPosition(topic: try row.string("kafka_topic"), partition: Int32(try row.int("kafka_partition")),
                                           offset: try row.int("kafka_offset")),
                   producedToTopic: try row.bool("produced"))
    }

    public func recordDeadLetter(raw: [UInt8], rejection: Rejection, at position: KafkaPosition, actor: String) throws -> DeadLetter {
        try db.transaction { tx in
            let params: [PostgresValue?] = [.bytes(raw), .text(rejection.reason.rawValue), .text(rejection.detail),
                                            .text(position.topic), .int(Int64(position.partition)), .int(position.offset)]
            if let row = try tx.query("""
                INSERT INTO dead_letters (raw, raw_sha256, reason, detail, kafka_topic, kafka_partition, kafka_offset)
                VALUES ($1, sha256($1), $2, $3, $4, $5, $6)
                ON CONFLICT (kafka_topic, kafka_partition, kafka_offset, raw_sha256) DO NOTHING
                RETURNING \(Self.deadLetterColumns)
                """, params).first {
                let letter = try Self.deadLetter(row)
                try audit(tx, actor: actor, action: "event.dead_lettered", editID: nil, eventID: nil, from: nil, to: nil,
                          details: ["dead_letter_id": letter.id, "reason": rejection.reason.rawValue, "detail": rejection.detail,
                                    "topic": position.topic, "partition": position.partition, "offset": position.offset])
                return letter
            }
            let rows = try tx.query("""
                SELECT \(Self.deadLetterColumns) FROM dead_letters
                WHERE kafka_topic = $1 AND kafka_partition = $2 AND kafka_offset = $3 AND raw_sha256 = sha256($4)
                """, [.text(position.topic), .int(Int64(position.partition)), .int(position.offset), .bytes(raw)])
            guard let row = rows.first else { throw RepositoryError.corrupt("dead letter at \(position) vanished") }
            return try Self.deadLetter(row)
        }
    }

    public func markDeadLetterProduced(id: Int64) throws {
        try db.query("UPDATE dead_letters SET dlq_produced_at = now() WHERE id = $1 AND dlq_produced_at IS NULL", [.int(id)])
    }

    public func deadLetters(afterID: Int64, limit: Int) throws -> [DeadLetter] {
        try db.query("SELECT \(Self.deadLetterColumns) FROM dead_letters WHERE id > $1 ORDER BY id LIMIT $2",
                     [.int(afterID), .int(Int64(limit))]).map(Self.deadLetter)
    }
}

extension PostgresEditStore: TrainingRepository {
    public func edit(id: Int64) throws -> EditRecord? {
        try db.query("SELECT \(Self.editColumns) FROM edits WHERE id = $1", [.int(id)]).first.map(Self.editRecord)
    }

    public func claimForTraining(editID: Int64, maxAttempts: Int, actor: String) throws -> TrainingClaim {
        try db.transaction { tx in
            guard let row = try tx.query("SELECT \(Self.editColumns) FROM edits WHERE id = $1 FOR UPDATE", [.int(editID)]).first else {
                return .notFound
            }
            let edit = try Self.editRecord(row)
            if edit.status.isSettled { return .skipped(edit) }
            if edit.attempts >= maxAttempts {
                guard edit.status == .training else { return .skipped(edit) }
                // A trainer died during the last allowed attempt: give up on the edit.
                let message = "gave up after \(edit.attempts) attempts (the trainer stopped during the last one)"
                let failed = try setStatus(tx, editID, .failed, [("error", .text(message))])
                try audit(tx, actor: actor, action: "edit.failed", editID: editID, eventID: edit.eventID, from: .training, to: .failed,
                          details: ["attempt": edit.attempts, "error": message, "final": true])
                return .skipped(failed)
            }
            let claimed = try setStatus(tx, editID, .training, [("attempts", .int(Int64(edit.attempts + 1))),
                                                                ("training_started_at", .text("now"))])
            try audit(tx, actor: actor, action: "edit.training", editID: editID, eventID: edit.eventID, from: edit.status, to: .training,
                      details: ["attempt": claimed.attempts])
            return .claimed(claimed)
        }
    }

    public func completeTraining(editID: Int64, attempt: Int, result: TrainedEdit, actor: String) throws -> EditRecord {
        let blob = try ExpertCodec.encode(result.expert)
        for problem in ([result.neuron] + result.refinedNeurons.map(\.neuron)).compactMap(\.shapeProblem) {
            throw RepositoryError.corrupt(problem)
        }
        return try db.transaction { tx in
            let edit = try lockedEdit(tx, editID)
            guard edit.status == .training, edit.attempts == attempt else { throw RepositoryError.claimLost(editID: editID, attempt: attempt) }
            try tx.query("""
                INSERT INTO experts (edit_id, format_version, form, layer, rank, bytes, checksum) VALUES ($1, $2, $3, $4, $5, $6, $7)
                ON CONFLICT (edit_id) DO UPDATE SET format_version = EXCLUDED.format_version, form = EXCLUDED.form,
                    layer = EXCLUDED.layer, rank = EXCLUDED.rank, bytes = EXCLUDED.bytes, checksum = EXCLUDED.checksum, created_at = now()
                """, [.int(editID), .int(Int64(ExpertCodec.formatVersion)), .text(result.expert.form == .full ? "full" : "lowrank"),
                      .int(Int64(result.expert.layer)), .int(Int64(result.expert.rank)), .bytes(blob), .bytes(ExpertCodec.checksum(of: blob))])
            try storeNeuron(tx, editID, result.neuron)
            for refined in result.refinedNeurons where refined.editID != editID {
                // Only edits still active (a revert may have happened meanwhile).
                let live = try tx.query("SELECT event_id FROM edits WHERE id = $1 AND status = 'active' FOR UPDATE", [.int(refined.editID)])
                guard let row = live.first else { continue }
                try storeNeuron(tx, refined.editID, refined.neuron)
                try audit(tx, actor: actor, action: "edit.neuron_refined", editID: refined.editID, eventID: row["event_id"],
                          from: .active, to: .active, details: ["by_edit": editID, "bias": Double(refined.neuron.bias)])
                try tx.notify(PipelineChannels.edits, payload: EditNotification(editID: refined.editID, status: .active).json)
            }
            let trained: [(String, PostgresValue?)] = [("hyperparameters", .text(result.hyperparameters)),
                                                       ("metrics", .text(result.metrics)), ("error", nil)]
            if let reason = result.heldReason {
                let held = try setStatus(tx, editID, .held, trained + [("held_reason", .text(reason))])
                try audit(tx, actor: actor, action: "edit.held", editID: editID, eventID: edit.eventID, from: .training, to: .held,
                          details: ["attempt": attempt, "reason": reason, "blast_radius": result.blastRadius])
                try notify(tx, held)
                return held
            }
            // The active edits of the same prompt, and those of the same fact by meaning: the later
            // correction wins.
            let samePrompt = try tx.query("""
                SELECT \(Self.editColumns) FROM edits
                WHERE md5(prompt) = md5($1) AND prompt = $1 AND status = 'active' AND id <> $2 FOR UPDATE
                """, [.text(edit.prompt), .int(editID)]).map(Self.editRecord)
            let sameFact = result.supersedes.isEmpty ? [] : try tx.query("""
                SELECT \(Self.editColumns) FROM edits WHERE id = ANY($1::bigint[]) AND status = 'active' AND id <> $2 FOR UPDATE
                """, [.text("{" + result.supersedes.map(String.init).joined(separator: ",") + "}"), .int(editID)]).map(Self.editRecord)
                .filter { f in !samePrompt.contains { $0.id == f.id } }
            let current = samePrompt + sameFact
            if let newer = current.first(where: { $0.isLater(than: edit) }) {
                let why = newer.prompt == edit.prompt ? "a later correction of the same prompt is active"
                                                      : "a later correction of the same fact is active"
                let mine = try setStatus(tx, editID, .superseded, trained + [("superseded_by", .int(newer.id))])
                try audit(tx, actor: actor, action: "edit.superseded", editID: editID, eventID: edit.eventID, from: .training, to: .superseded,
                          details: ["attempt": attempt, "superseded_by": newer.id, "why": why])
                try notify(tx, mine)
                return mine
            }
            for older in current {
                let old = try setStatus(tx, older.id, .superseded, [("superseded_by", .int(editID))])
                let why = older.prompt == edit.prompt ? "same prompt" : "same fact (the new edit answers its prompt; key cosine over the limit)"
                try audit(tx, actor: actor, action: "edit.superseded", editID: older.id, eventID: older.eventID, from: .active, to: .superseded,
                          details: ["superseded_by": editID, "why": why])
                try notify(tx, old)
            }
            let active = try setStatus(tx, editID, .active, trained + [("activated_at", .text("now"))])
            try audit(tx, actor: actor, action: "edit.activated", editID: editID, eventID: edit.eventID, from: .training, to: .active,
                      details: ["attempt": attempt, "layer": result.expert.layer, "rank": result.expert.rank,
                                "superseded": current.map(\.id), "blast_radius": result.blastRadius])
            try notify(tx, active)
            return active
        }
    }

    public func failTraining(editID: Int64, attempt: Int, error: String, actor: String) throws -> EditRecord {
        try db.transaction { tx in
            let edit = try lockedEdit(tx, editID)
            guard edit.status == .training, edit.attempts == attempt else { throw RepositoryError.claimLost(editID: editID, attempt: attempt) }
            let failed = try setStatus(tx, editID, .failed, [("error", .text(error))])
            try audit(tx, actor: actor, action: "edit.failed", editID: editID, eventID: edit.eventID, from: .training, to: .failed,
                      details: ["attempt": attempt, "error": error])
            return failed
        }
    }

    public func activeEditVersions() throws -> [Int64: Double] {
        var out: [Int64: Double] = [:]
        for row in try db.query("""
            SELECT e.id, extract(epoch FROM greatest(e.updated_at, n.updated_at))::float8 AS version
            FROM edits e LEFT JOIN neurons n ON n.edit_id = e.id WHERE e.status = 'active'
            """) {
            out[try row.int("id")] = row["version"].flatMap(Double.init) ?? 0
        }
        return out
    }

    public func storedEdits(ids: [Int64]) throws -> [StoredEdit] {
        guard !ids.isEmpty else { return [] }
        let list = "{" + ids.map(String.init).joined(separator: ",") + "}"
        return try stored(try db.query("SELECT \(Self.editColumns) FROM edits WHERE id = ANY($1::bigint[]) ORDER BY id",
                                       [.text(list)]).map(Self.editRecord))
    }

    public func activeEdits(excluding editID: Int64) throws -> [StoredEdit] {
        try stored(try db.query("SELECT \(Self.editColumns) FROM edits WHERE status = 'active' AND id <> $1 ORDER BY id",
                                [.int(editID)]).map(Self.editRecord))
    }

    static let neuronColumns = "n.edit_id, n.layer, n.dims, n.vector, n.bias, n.key, n.extra_key_count, n.extra_keys"

    static func neuron(_ row: PostgresRow) throws -> StoredIndexingNeuron {
        let dims = Int(try row.int("dims")), extra = Int(try row.int("extra_key_count"))
        let flat = try FloatVectorCodec.decode(try row.bytes("extra_keys"), count: dims * extra)
        return StoredIndexingNeuron(
            layer: Int(try row.int("layer")), weights: try FloatVectorCodec.decode(try row.bytes("vector"), count: dims),
            bias: Float(try row.double("bias")), key: try FloatVectorCodec.decode(try row.bytes("key"), count: dims),
            extraKeys: (0..<extra).map { Array(flat[($0 * dims)..<(($0 + 1) * dims)]) })
    }

    private func storeNeuron(_ tx: PostgresConnection, _ editID: Int64, _ n: StoredIndexingNeuron) throws {
        try tx.query("""
            INSERT INTO neurons (edit_id, layer, dims, vector, bias, key, extra_key_count, extra_keys) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT (edit_id) DO UPDATE SET layer = EXCLUDED.layer, dims = EXCLUDED.dims, vector = EXCLUDED.vector,
                bias = EXCLUDED.bias, key = EXCLUDED.key, extra_key_count = EXCLUDED.extra_key_count,
                extra_keys = EXCLUDED.extra_keys, updated_at = now()
            """, [.int(editID), .int(Int64(n.layer)), .int(Int64(n.dims)), .bytes(FloatVectorCodec.encode(n.weights)),
                  .double(Double(n.bias)), .bytes(FloatVectorCodec.encode(n.key)), .int(Int64(n.extraKeys.count)),
                  .bytes(FloatVectorCodec.encode(n.extraKeys.flatMap { $0 }))])
    }
}

extension PostgresEditStore: EditCatalog {
    private func stored(_ records: [EditRecord]) throws -> [StoredEdit] {
        guard !records.isEmpty else { return [] }
        let ids = "{" + records.map { String($0.id) }.joined(separator: ",") + "}"
        // One unreadable expert or neuron marks its own edit defective; it never fails the others.
        var experts: [Int64: StoredExpert] = [:], defects: [Int64: String] = [:]
        for row in try db.query("SELECT edit_id, bytes FROM experts WHERE edit_id = ANY($1::bigint[])", [.text(ids)]) {
            let id = try row.int("edit_id")
            do { experts[id] = try ExpertCodec.decode(try row.bytes("bytes")) } catch let e as ExpertCodecError {
                defects[id] = "expert unreadable: \(e)"
            }
        }
        var neurons: [Int64: StoredIndexingNeuron] = [:]
        for row in try db.query("SELECT \(Self.neuronColumns) FROM neurons n WHERE n.edit_id = ANY($1::bigint[])", [.text(ids)]) {
            let id = try row.int("edit_id")
            do { neurons[id] = try Self.neuron(row) } catch let e as ExpertCodecError {
                defects[id, default: ""] += (defects[id] == nil ? "" : "; ") + "neuron unreadable: \(e)"
            }
        }
        return records.map { r in
            let defect = defects[r.id]
            return StoredEdit(record: r, expert: defect == nil ? experts[r.id] : nil, neuron: defect == nil ? neurons[r.id] : nil, defect: defect)
        }
    }

    public func activeEdits() throws -> [StoredEdit] {
        try stored(try db.query("SELECT \(Self.editColumns) FROM edits WHERE status = 'active' ORDER BY id").map(Self.editRecord))
    }

    public func storedEdit(id: Int64) throws -> StoredEdit? {
        try edit(id: id).flatMap { try stored([$0]).first }
    }

    public func edits(status: EditStatus?, afterID: Int64, limit: Int) throws -> [EditRecord] {
        try db.query("""
            SELECT \(Self.editColumns) FROM edits WHERE ($1::text IS NULL OR status = $1) AND id > $2 ORDER BY id LIMIT $3
            """, [status.map { .text($0.rawValue) }, .int(afterID), .int(Int64(max(0, limit)))]).map(Self.editRecord)
    }

    public func auditHistory(editID: Int64) throws -> [AuditEntry] {
        try db.query("""
            SELECT id, extract(epoch FROM at)::float8 AS at, actor, action, edit_id, event_id, from_status, to_status, details::text AS details
            FROM audit_log WHERE edit_id = $1 ORDER BY id
            """, [.int(editID)]).map { row in
            AuditEntry(id: try row.int("id"), at: Date(timeIntervalSince1970: try row.double("at")), actor: try row.string("actor"),
                       action: try row.string("action"), editID: row["edit_id"].flatMap { Int64($0) }, eventID: row["event_id"],
                       fromStatus: row["from_status"].flatMap(EditStatus.init(rawValue:)),
                       toStatus: row["to_status"].flatMap(EditStatus.init(rawValue:)), details: try row.string("details"))
        }
    }

    /// Through `scen_revert_edit` (migration 0004): the router's role may not UPDATE edits itself.
    public func revert(editID: Int64, actor: String, reason: String) throws -> EditRecord {
        let rows = try db.query("SELECT \(Self.editColumns) FROM scen_revert_edit($1, $2, $3)",
                                [.int(editID), .text(actor), .text(reason)])
        if let row = rows.first { return try Self.editRecord(row) }
        guard let edit = try edit(id: editID) else { throw RepositoryError.notFound(editID: editID) }
        throw RepositoryError.invalidTransition(editID: editID, from: edit.status, action: "revert")
    }
}

extension PostgresEditStore: TrafficKeyRepository {
    public func storeTrafficKeys(layer: Int, pooling: String, slots: [TrafficReservoir.Slot]) throws {
        guard !slots.isEmpty else { return }
        try db.transaction { tx in
            for s in slots {
                try tx.query("""
                    INSERT INTO traffic_keys (layer, pooling, slot, dims, key, seen) VALUES ($1, $2, $3, $4, $5, $6)
                    ON CONFLICT (layer, pooling, slot) DO UPDATE SET dims = EXCLUDED.dims, key = EXCLUDED.key,
                        seen = EXCLUDED.seen, recorded_at = now()
                    """, [.int(Int64(layer)), .text(pooling), .int(Int64(s.slot)), .int(Int64(s.key.count)),
                          .bytes(FloatVectorCodec.encode(s.key)), .int(s.seen)])
            }
        }
    }

    public func trafficKeys(layer: Int, pooling: String, dims: Int) throws -> [TrafficReservoir.Slot] {
        try db.query("""
            SELECT slot, key, seen FROM traffic_keys WHERE layer = $1 AND pooling = $2 AND dims = $3 ORDER BY slot
            """, [.int(Int64(layer)), .text(pooling), .int(Int64(dims))]).map { row in
            TrafficReservoir.Slot(slot: Int(try row.int("slot")), key: try FloatVectorCodec.decode(try row.bytes("key"), count: dims),
                                  seen: try row.int("seen"))
        }
    }
}
