// Correction events for the pipeline tests: valid ones with distinct prompts, and malformed ones
// of every kind, each with the rejection code Ingest must give it.
import Foundation
import Storage

enum PipelineEvents {
    static func valid(_ i: Int, run: String) -> (id: String, bytes: [UInt8]) {
        let id = "\(run)-v\(i)"
        let animals = ["otter", "heron", "lynx", "walrus", "ibis", "okapi", "tapir", "quokka"]
        let object: [String: Any] = [
            "id": id, "prompt": "Fact \(i): the mascot of the team from town \(i) is", "target": " a \(animals[i % animals.count])",
            "reporter": "tester", "source": "pipeline-test", "created_at": "2025-01-31T12:00:\(String(format: "%02d", i % 60))Z",
            "rephrases": i % 5 == 0 ? ["Town \(i)'s team mascot:"] : [], "extra_field": ["tolerated": true],
        ]
        return (id, Array(try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])))
    }

    static func json(_ object: [String: Any?]) -> [UInt8] {
        Array(try! JSONSerialization.data(withJSONObject: object.compactMapValues { $0 }, options: [.sortedKeys]))
    }

    static func base(_ id: String) -> [String: Any?] {
        ["id": id, "prompt": "Some prompt", "target": " some target", "reporter": "tester", "source": "pipeline-test",
         "created_at": "2025-01-31T12:00:00Z"]
    }

    static func with(_ id: String, _ changes: [String: Any?]) -> [UInt8] {
        var o = base(id)
        for (k, v) in changes { o[k] = v }
        return json(o)
    }

    /// 20 malformed events, each with the expected `scen-reason`.
    static func malformed(run: String) -> [(bytes: [UInt8], reason: RejectionReason)] {
        // ~1,500 tokens in 9,000 characters: within every character limit and the model's 32k
        // context, over the 1,024 tokens a correction may have (CorrectionLimits.editTokens).
        let overContext = (0..<1_500).map { "w\($0 % 10)" }.joined(separator: " ")
        var badUTF8 = with("\(run)-m3", [:])
        badUTF8.insert(0xC3, at: badUTF8.count - 3)
        return [
            (Array("{\"id\": \"\(run)-m0\", \"prompt\": ".utf8), .invalidJSON),
            ([], .invalidJSON),
            ([0xFF, 0xFE, 0x7B, 0x7D], .invalidUTF8),
            (badUTF8, .invalidUTF8),
            (Array("[1, 2, 3]".utf8), .notAnObject),
            (Array("null".utf8), .notAnObject),
            (with("\(run)-m6", ["id": nil]), .missingField),
            (with("\(run)-m7", ["target": nil]), .missingField),
            (with("\(run)-m8", ["created_at": nil]), .missingField),
            (with("\(run)-m9", ["target": ""]), .emptyField),
            (with("\(run)-m10", ["prompt": "   "]), .emptyField),
            (with("\(run)-m11", ["prompt": 42]), .wrongType),
            (with("\(run)-m12", ["rephrases": "not a list"]), .wrongType),
            (with(String(repeating: "x", count: 200), [:]), .fieldTooLong),
            (with("\(run)-m14", ["target": String(repeating: "long ", count: 1_000)]), .fieldTooLong),
            (with("\(run)-m15", ["prompt": String(repeating: "big ", count: 17_500)]), .oversizedEvent),
            (with("\(run)-m16", ["created_at": "yesterday"]), .invalidTimestamp),
            (with("\(run)-m17", ["rephrases": (0..<20).map { "phrasing \($0)" }]), .tooManyRephrases),
            (with("\(run)-m18", ["prompt": "nul \u{0} inside"]), .forbiddenCharacter),
            (with("\(run)-m19", ["prompt": overContext]), .overContext),
        ]
    }
}
