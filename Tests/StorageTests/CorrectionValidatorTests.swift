import Foundation
import Storage
import Testing

/// A stand-in tokenizer for hermetic tests: one token per whitespace-separated word.
let wordCount: @Sendable (String) -> Int = { $0.split(whereSeparator: \.isWhitespace).count }

func event(_ fields: [String: Any]) -> [UInt8] {
    Array(try! JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]))
}

nonisolated(unsafe) let validFields: [String: Any] = [
    "id": "e-1", "prompt": "The capital of Freedonia is", "target": " Fredville", "reporter": "alice",
    "source": "ticket-1", "created_at": "2025-01-31T12:00:00Z",
]

@Suite("Correction event validation")
struct CorrectionValidatorTests {
    let validator = CorrectionValidator(limits: CorrectionLimits(contextTokens: 64), tokenCount: wordCount)

    func reason(_ raw: [UInt8]) -> RejectionReason? {
        if case .failure(let r) = validator.validate(raw) { return r.reason }
        return nil
    }

    func reason(_ fields: [String: Any]) -> RejectionReason? { reason(event(fields)) }

    func with(_ changes: [String: Any?]) -> [String: Any] {
        var f = validFields
        for (k, v) in changes { f[k] = v }
        return f
    }

    @Test func acceptsAValidEventAndToleratesUnknownFields() throws {
        var fields = validFields
        fields["rephrases"] = ["Freedonia's capital is", "What is the capital of Freedonia?"]
        fields["priority"] = 7
        fields["meta"] = ["nested": true]
        let raw = event(fields)
        let e = try validator.validate(raw).get()
        #expect(e.id == "e-1")
        #expect(e.prompt == "The capital of Freedonia is")
        #expect(e.target == " Fredville")
        #expect(e.rephrases.count == 2)
        #expect(e.reporter == "alice" && e.source == "ticket-1")
        #expect(e.createdAt == Date(timeIntervalSince1970: 1_738_324_800))
        #expect(e.raw == raw)
    }

    @Test func acceptsNullRephrasesAndFractionalOffsets() throws {
        let e = try validator.validate(event(with(["rephrases": NSNull(), "created_at": "2025-01-31T13:00:00.250+01:00"]))).get()
        #expect(e.rephrases.isEmpty)
        #expect(e.createdAt == Date(timeIntervalSince1970: 1_738_324_800.25))
    }

    @Test func rejectsOversizedEvents() {
        let big = String(repeating: "a", count: 70_000)
        #expect(reason(with(["prompt": big])) == .oversizedEvent)
    }

    @Test func rejectsInvalidUTF8() {
        var raw = event(validFields)
        raw.insert(0xFF, at: 10)
        #expect(reason(raw) == .invalidUTF8)
        #expect(reason([0x7B, 0x22, 0xC3]) == .invalidUTF8)  // truncated sequence
    }

    @Test func rejectsBadJSON() {
        #expect(reason(Array("{\"id\": \"x\",".utf8)) == .invalidJSON)
        #expect(reason(Array("".utf8)) == .invalidJSON)
        #expect(reason(Array("not json".utf8)) == .invalidJSON)
        #expect(reason(Array((String(repeating: "[", count: 20_000) + String(repeating: "]", count: 20_000)).utf8)) != nil)
    }

    @Test func rejectsNonObjects() {
        #expect(reason(Array("[1, 2]".utf8)) == .notAnObject)
        #expect(reason(Array("\"text\"".utf8)) == .notAnObject)
        #expect(reason(Array("42".utf8)) == .notAnObject)
        #expect(reason(Array("null".utf8)) == .notAnObject)
    }

    @Test(arguments: ["id", "prompt", "target", "reporter", "source", "created_at"])
    func rejectsMissingFields(field: String) {
        #expect(reason(with([field: nil])) == .missingField)
        #expect(reason(with([field: NSNull()])) == .missingField)
    }

    @Test func rejectsWrongTypes() {
        #expect(reason(with(["id": 12])) == .wrongType)
        #expect(reason(with(["prompt": ["a"]])) == .wrongType)
        #expect(reason(with(["target": true])) == .wrongType)
        #expect(reason(with(["created_at": 1_738_324_800])) == .wrongType)
        #expect(reason(with(["rephrases": "one"])) == .wrongType)
        #expect(reason(with(["rephrases": ["ok", 3]])) == .wrongType)
    }

    @Test func rejectsEmptyFields() {
        #expect(reason(with(["target": ""])) == .emptyField)
        #expect(reason(with(["prompt": "  \n\t"])) == .emptyField)
        #expect(reason(with(["id": ""])) == .emptyField)
        #expect(reason(with(["rephrases": ["fine", " "]])) == .emptyField)
    }

    @Test func rejectsFieldsOverTheirLimits() {
        #expect(reason(with(["id": String(repeating: "x", count: 129)])) == .fieldTooLong)
        #expect(reason(with(["id": String(repeating: "x", count: 128)])) == nil)
        #expect(reason(with(["target": String(repeating: "t", count: 4_097)])) == .fieldTooLong)
        #expect(reason(with(["prompt": String(repeating: "p", count: 16_385)])) == .fieldTooLong)
        #expect(reason(with(["reporter": String(repeating: "r", count: 257)])) == .fieldTooLong)
    }

    @Test func rejectsTooManyRephrases() {
        #expect(reason(with(["rephrases": (0..<17).map { "phrasing \($0)" }])) == .tooManyRephrases)
    }

    @Test func rejectsNUL() {
        #expect(reason(with(["prompt": "a\u{0}b"])) == .forbiddenCharacter)
    }

    @Test func rejectsBadTimestamps() {
        for stamp in ["yesterday", "2025-01-31", "2025-13-01T00:00:00Z", "2025-01-31 12:00:00", "20250131T120000Z"] {
            #expect(reason(with(["created_at": stamp])) == .invalidTimestamp, "\(stamp)")
        }
    }

    @Test func rejectsPromptsOverTheContext() {
        // 64 tokens of context: BOS + 40 + 24 = 65.
        let prompt = Array(repeating: "w", count: 40).joined(separator: " ")
        let target = Array(repeating: "t", count: 24).joined(separator: " ")
        #expect(reason(with(["prompt": prompt, "target": target])) == .overContext)
        #expect(reason(with(["prompt": prompt, "target": Array(repeating: "t", count: 23).joined(separator: " ")])) == nil)
        #expect(reason(with(["rephrases": [prompt + " x"], "target": Array(repeating: "t", count: 23).joined(separator: " ")])) == .overContext)
    }

    @Test func rejectionsCarryDetails() {
        guard case .failure(let r) = validator.validate(event(with(["target": nil]))) else {
            Issue.record("expected a rejection")
            return
        }
        #expect(r.detail.contains("target"))
        #expect(r.description.hasPrefix("missing_field: "))
    }

    @Test func neverTrapsOnArbitraryBytes() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let bytes = (0..<Int.random(in: 0..<200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            _ = validator.validate(bytes)
        }
        var valid = event(validFields)
        for i in stride(from: 0, to: valid.count, by: 3) {
            let saved = valid[i]
            valid[i] = UInt8.random(in: 0...255, using: &rng)
            _ = validator.validate(valid)
            valid[i] = saved
        }
    }
}
