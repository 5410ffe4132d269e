// Validation of correction events v1 (docs/events.md). Every rejection carries a stable code
// (the `scen-reason` header and `dead_letters.reason`) and a precise detail. Never traps.
import Foundation

public enum RejectionReason: String, Sendable, CaseIterable {
    case oversizedEvent = "oversized_event"
    case invalidUTF8 = "invalid_utf8"
    case invalidJSON = "invalid_json"
    case notAnObject = "not_an_object"
    case missingField = "missing_field"
    case wrongType = "wrong_type"
    case emptyField = "empty_field"
    case fieldTooLong = "field_too_long"
    case forbiddenCharacter = "forbidden_character"
    case tooManyRephrases = "too_many_rephrases"
    case invalidTimestamp = "invalid_timestamp"
    case overContext = "over_context"
    /// The database refused a well-formed event (a constraint this validator does not know).
    case storageRejected = "storage_rejected"
}

public struct Rejection: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: RejectionReason
    public let detail: String

    public init(_ reason: RejectionReason, _ detail: String) {
        self.reason = reason
        // Details quote input; keep them storable as PostgreSQL text and short.
        self.detail = String(detail.replacingOccurrences(of: "\u{0}", with: "\\u0000").prefix(500))
    }

    public var description: String { "\(reason.rawValue): \(detail)" }
}

/// Size limits of an event. Character limits count Unicode scalars.
public struct CorrectionLimits: Sendable, Equatable {
    public var maxEventBytes = 64 * 1024
    public var maxIDCharacters = 128
    public var maxPromptCharacters = 16_384
    public var maxTargetCharacters = 4_096
    public var maxRephrases = 16
    public var maxRephraseCharacters = 4_096
    public var maxLabelCharacters = 256  // reporter, source
    /// Tokens an edit may have: BOS + prompt + target (and BOS + each rephrase + target) must
    /// fit. Ingest sets it to `editTokens` (or the model's context, if smaller).
    public var contextTokens: Int

    /// The most tokens (BOS + prompt + target) of one correction, whatever the model could read:
    /// training memory and time grow with the square of the length. Ingest dead-letters longer
    /// events (`over_context`), the trainer refuses longer jobs, and the router refuses to start
    /// with sequences (`--context`) too short for one plus its longest answer.
    public static let editTokens = 1_024

    public init(contextTokens: Int) { self.contextTokens = contextTokens }

    /// The tokens an edit counts against `contextTokens`: BOS + prompt (or a rephrase) + target,
    /// each counted without BOS. Ingest and the trainer apply this one rule.
    public static func editTokens(promptTokens: Int, targetTokens: Int) -> Int { 1 + promptTokens + targetTokens }

    /// The limits of a model with `contextLength` tokens of context.
    public static func forModel(contextLength: Int) -> CorrectionLimits {
        CorrectionLimits(contextTokens: min(contextLength, editTokens))
    }
}

public struct CorrectionValidator: Sendable {
    public let limits: CorrectionLimits
    /// Tokens of a text without BOS (the real tokenizer in Ingest).
    public let tokenCount: @Sendable (String) -> Int

    public init(limits: CorrectionLimits, tokenCount: @escaping @Sendable (String) -> Int) {
        self.limits = limits
        self.tokenCount = tokenCount
    }

    public func validate(_ raw: [UInt8]) -> Result<CorrectionEvent, Rejection> {
        do throws(Rejection) {
            return .success(try parse(raw))
        } catch {
            return .failure(error)
        }
    }

    public func parse(_ raw: [UInt8]) throws(Rejection) -> CorrectionEvent {
        guard raw.count <= limits.maxEventBytes else {
            throw Rejection(.oversizedEvent, "event is \(raw.count) bytes, the limit is \(limits.maxEventBytes)")
        }
        guard String(validating: raw, as: UTF8.self) != nil else {
            throw Rejection(.invalidUTF8, "event is not valid UTF-8 (first bad byte near offset \(firstInvalidUTF8Offset(raw)))")
        }
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: Data(raw), options: [.fragmentsAllowed])
        } catch {
            throw Rejection(.invalidJSON, "event is not JSON: \(String(describing: error).prefix(200))")
        }
        guard let object = parsed as? [String: Any] else {
            throw Rejection(.notAnObject, "event is JSON but not an object")
        }

        let id = try text(object, "id", max: limits.maxIDCharacters)
        let prompt = try text(object, "prompt", max: limits.maxPromptCharacters)
        let target = try text(object, "target", max: limits.maxTargetCharacters)
        let reporter = try text(object, "reporter", max: limits.maxLabelCharacters)
        let source = try text(object, "source", max: limits.maxLabelCharacters)
        let stamp = try text(object, "created_at", max: 64)
        guard let createdAt = RFC3339.parse(stamp) else {
            throw Rejection(.invalidTimestamp, "field \"created_at\" is not an RFC 3339 timestamp: \(stamp.prefix(64))")
        }

        var rephrases: [String] = []
        if let value = object["rephrases"], !(value is NSNull) {
            guard let array = value as? [Any] else {
                throw Rejection(.wrongType, "field \"rephrases\" must be an array of strings, got \(typeName(value))")
            }
            guard array.count <= limits.maxRephrases else {
                throw Rejection(.tooManyRephrases, "\(array.count) rephrases, the limit is \(limits.maxRephrases)")
            }
            for (i, element) in array.enumerated() {
                rephrases.append(try checked(element, "rephrases[\(i)]", max: limits.maxRephraseCharacters))
            }
        }

        // BOS + prompt + target must fit the model's context (and so must every rephrase).
        let targetTokens = tokenCount(target)
        for (name, text) in [("prompt", prompt)] + rephrases.enumerated().map({ ("rephrases[\($0.offset)]", $0.element) }) {
            let total = CorrectionLimits.editTokens(promptTokens: tokenCount(text), targetTokens: targetTokens)
            guard total <= limits.contextTokens else {
                throw Rejection(.overContext, "\(name) + target are \(total) tokens with BOS; a correction may have at most \(limits.contextTokens)")
            }
        }
        return CorrectionEvent(id: id, prompt: prompt, target: target, rephrases: rephrases, reporter: reporter,
                               source: source, createdAt: createdAt, raw: raw)
    }

    private func text(_ object: [String: Any], _ name: String, max: Int) throws(Rejection) -> String {
        guard let value = object[name], !(value is NSNull) else { throw Rejection(.missingField, "field \"\(name)\" is missing") }
        return try checked(value, name, max: max)
    }

    private func checked(_ value: Any, _ name: String, max: Int) throws(Rejection) -> String {
        guard let s = value as? String else {
            throw Rejection(.wrongType, "field \"\(name)\" must be a string, got \(typeName(value))")
        }
        guard !s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw Rejection(.emptyField, "field \"\(name)\" is empty")
        }
        let count = s.unicodeScalars.count
        guard count <= max else { throw Rejection(.fieldTooLong, "field \"\(name)\" has \(count) characters, the limit is \(max)") }
        // PostgreSQL text cannot hold NUL.
        guard !s.unicodeScalars.contains("\u{0}") else {
            throw Rejection(.forbiddenCharacter, "field \"\(name)\" contains U+0000")
        }
        return s
    }

    private func typeName(_ value: Any) -> String {
        switch value {
        case is String: "string"
        case is [Any]: "array"
        case is [String: Any]: "object"
        case is NSNull: "null"
        case let n as NSNumber: String(cString: n.objCType) == "c" ? "boolean" : "number"
        default: "\(type(of: value))"
        }
    }

    private func firstInvalidUTF8Offset(_ raw: [UInt8]) -> Int {
        var iterator = raw.makeIterator()
        var decoder = UTF8()
        var offset = 0
        loop: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let s): offset += UTF8.width(s)
            case .emptyInput: break loop
            case .error: return offset
            }
        }
        return offset
    }
}
