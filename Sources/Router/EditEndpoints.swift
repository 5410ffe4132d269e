// /v1/edits: list, inspect (with the audit history) and revert edits. Reverting needs the
// admin bearer token and takes the edit out of this router's table before it answers.
import Foundation
import Hummingbird
import Storage

struct EditView: Encodable {
    var id: Int64
    var eventID: String
    var prompt: String
    var target: String
    var rephrases: [String]
    var status: String
    var attempts: Int
    var error: String?
    var supersededBy: Int64?
    /// Why the blast-radius check held the edit for review (status `held`).
    var heldReason: String?
    var correctedAt: Date
    var createdAt: Date
    var updatedAt: Date

    enum CodingKeys: String, CodingKey {
        case id, prompt, target, rephrases, status, attempts, error
        case eventID = "event_id"
        case supersededBy = "superseded_by"
        case heldReason = "held_reason"
        case correctedAt = "corrected_at"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }

    init(_ r: EditRecord) {
        id = r.id; eventID = r.eventID; prompt = r.prompt; target = r.target; rephrases = r.rephrases
        status = r.status.rawValue; attempts = r.attempts; error = r.error; supersededBy = r.supersededBy; heldReason = r.heldReason
        correctedAt = r.correctedAt; createdAt = r.createdAt; updatedAt = r.updatedAt
    }
}

/// A JSON document held as text (hyperparameters, metrics, audit details), embedded as is.
struct RawJSON: Encodable {
    let text: String
    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)))
    }
}

/// Any JSON value, for passing stored documents through.
enum JSONValue: Codable {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let v = try? c.decode(Bool.self) { self = .bool(v) }
        else if let v = try? c.decode(Double.self) { self = .number(v) }
        else if let v = try? c.decode(String.self) { self = .string(v) }
        else if let v = try? c.decode([JSONValue].self) { self = .array(v) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let v): try c.encode(v)
        case .number(let v): try c.encode(v)
        case .string(let v): try c.encode(v)
        case .array(let v): try c.encode(v)
        case .object(let v): try c.encode(v)
        }
    }
}

struct AuditView: Encodable {
    var at: Date
    var actor: String
    var action: String
    var from: String?
    var to: String?
    var details: RawJSON

    init(_ a: AuditEntry) {
        at = a.at; actor = a.actor; action = a.action; from = a.fromStatus?.rawValue; to = a.toStatus?.rawValue
        details = RawJSON(text: a.details)
    }
}

struct EditDetailResponse: ResponseEncodable {
    var edit: EditView
    var hyperparameters: RawJSON?
    var metrics: RawJSON?
    var history: [AuditView]
}

struct EditListResponse: ResponseEncodable {
    var edits: [EditView]
    /// Pass as `after` for the next page; null on the last page.
    var nextAfter: Int64?

    enum CodingKeys: String, CodingKey {
        case edits
        case nextAfter = "next_after"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(edits, forKey: .edits)
        try c.encode(nextAfter, forKey: .nextAfter)  // explicit null on the last page
    }
}

struct RevertResponse: ResponseEncodable {
    var edit: EditView
    var routedBy: Int

    enum CodingKeys: String, CodingKey {
        case edit
        case routedBy = "active_edits_now"
    }
}

extension JSONEncoder {
    static let api: JSONEncoder = {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .iso8601
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()
}

/// Longest revert reason stored in the audit log (Unicode scalars).
let maxRevertReasonCharacters = 1_000

/// Compares two byte strings in time that depends only on their lengths (the admin token).
func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    var diff = UInt8(a.count == b.count ? 0 : 1)
    for i in 0..<max(a.count, b.count) {
        diff |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
    }
    return diff == 0
}

func addEditRoutes(to router: Router<RouterRequestContext>, state: RouterState, database: Database, adminToken: String?) {
    router.get("/v1/edits") { request, _ -> EditListResponse in
        let q = request.uri.queryParameters
        let status = try q.get("status").map { s -> EditStatus in
            guard let parsed = EditStatus(rawValue: s) else {
                throw HTTPError(.badRequest, message: "status must be one of \(EditStatus.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return parsed
        }
        let limit = try q.get("limit").map { s -> Int in
            guard let n = Int(s), (1...500).contains(n) else { throw HTTPError(.badRequest, message: "limit must be 1…500") }
            return n
        } ?? 50
        let after = try q.get("after").map { s -> Int64 in
            guard let n = Int64(s), n >= 0 else { throw HTTPError(.badRequest, message: "after must be an edit id") }
            return n
        } ?? 0
        let page = try await database.run { try $0.edits(status: status, afterID: after, limit: limit + 1) }
        let shown = Array(page.prefix(limit))
        return EditListResponse(edits: shown.map(EditView.init), nextAfter: page.count > limit ? shown.last?.id : nil)
    }

    router.get("/v1/edits/{id}") { _, context -> EditDetailResponse in
        let id = try editID(context)
        let (edit, history) = try await database.run { catalog -> (EditRecord?, [AuditEntry]) in
            (try catalog.edit(id: id), try catalog.auditHistory(editID: id))
        }
        guard let edit else { throw HTTPError(.notFound, message: "no edit \(id)") }
        return EditDetailResponse(edit: EditView(edit), hyperparameters: edit.hyperparameters.map(RawJSON.init),
                                  metrics: edit.metrics.map(RawJSON.init), history: history.map(AuditView.init))
    }

    router.post("/v1/edits/{id}/revert") { request, context -> RevertResponse in
        guard let adminToken, !adminToken.isEmpty else {
            throw HTTPError(.forbidden, message: "reverting is disabled: set SCEN_ADMIN_TOKEN")
        }
        guard let auth = request.headers[.authorization], constantTimeEqual(Array(auth.utf8), Array("Bearer \(adminToken)".utf8)) else {
            throw HTTPError(.unauthorized, headers: [.wwwAuthenticate: "Bearer"], message: "a valid admin bearer token is required")
        }
        let id = try editID(context)
        let reason: String = request.uri.queryParameters.get("reason").map { String($0) } ?? "reverted through the router API"
        guard reason.unicodeScalars.count <= maxRevertReasonCharacters else {
            throw HTTPError(.badRequest, message: "reason is longer than \(maxRevertReasonCharacters) characters")
        }
        guard !reason.unicodeScalars.contains(where: { $0.value == 0 }) else {
            throw HTTPError(.badRequest, message: "reason must not contain NUL characters")
        }
        let record: EditRecord
        do {
            record = try await database.run { try $0.revert(editID: id, actor: "router-admin", reason: reason) }
        } catch RepositoryError.notFound {
            throw HTTPError(.notFound, message: "no edit \(id)")
        } catch let RepositoryError.invalidTransition(_, from, _) {
            throw HTTPError(.conflict, message: "edit \(id) is \(from.rawValue) and cannot be reverted")
        }
        state.edits?.remove(editID: id)
        return RevertResponse(edit: EditView(record), routedBy: state.edits?.activeCount ?? 0)
    }
}

private func editID(_ context: RouterRequestContext) throws -> Int64 {
    guard let s = context.parameters.get("id"), let id = Int64(s), id > 0 else {
        throw HTTPError(.badRequest, message: "edit id must be a positive integer")
    }
    return id
}
