// Correction event v1 (docs/events.md): the wire format clients publish to scen.corrections,
// and the job message Ingest hands to the Trainer on scen.edit-jobs.
import Foundation

/// A validated correction: "for `prompt` the model should say `target`".
public struct CorrectionEvent: Sendable, Equatable {
    /// Idempotency key, 1–128 characters.
    public var id: String
    public var prompt: String
    public var target: String
    /// Other phrasings of the prompt that should get the same answer.
    public var rephrases: [String]
    public var reporter: String
    public var source: String
    /// `created_at` of the event (RFC 3339).
    public var createdAt: Date
    /// The event exactly as received (valid UTF-8 JSON).
    public var raw: [UInt8]

    public init(id: String, prompt: String, target: String, rephrases: [String] = [], reporter: String,
                source: String, createdAt: Date, raw: [UInt8]) {
        self.id = id
        self.prompt = prompt
        self.target = target
        self.rephrases = rephrases
        self.reporter = reporter
        self.source = source
        self.createdAt = createdAt
        self.raw = raw
    }

    /// Builds the v1 JSON object for an event (what `scen publish` sends).
    public static func json(id: String, prompt: String, target: String, rephrases: [String], reporter: String,
                            source: String, createdAt: Date) -> [UInt8] {
        var object: [String: Any] = [
            "id": id, "prompt": prompt, "target": target, "reporter": reporter, "source": source,
            "created_at": RFC3339.string(createdAt),
        ]
        if !rephrases.isEmpty { object["rephrases"] = rephrases }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return Array(data)
    }
}

/// scen.edit-jobs value: `{"edit_id": 17, "event_id": "…"}`; the key is the edit id in decimal.
public struct EditJob: Codable, Sendable, Equatable {
    public var editID: Int64
    public var eventID: String

    enum CodingKeys: String, CodingKey {
        case editID = "edit_id"
        case eventID = "event_id"
    }

    public init(editID: Int64, eventID: String) {
        self.editID = editID
        self.eventID = eventID
    }

    public func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array((try? encoder.encode(self)) ?? Data())
    }

    public static func decode(_ bytes: [UInt8]) -> EditJob? {
        try? JSONDecoder().decode(EditJob.self, from: Data(bytes))
    }
}

/// RFC 3339 timestamps (`2025-01-31T12:00:00Z`, optional fraction, any offset).
public enum RFC3339 {
    public static func parse(_ s: String) -> Date? {
        // Reject what ISO 8601 allows but RFC 3339 does not (e.g. no date separators).
        guard s.utf8.count >= 20, s.utf8.count <= 40 else { return nil }
        let plain = ISO8601DateFormatter()
        plain.formatOptions = [.withInternetDateTime]
        if let d = plain.date(from: s) { return d }
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return fractional.date(from: s)
    }

    public static func string(_ d: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: d)
    }
}
