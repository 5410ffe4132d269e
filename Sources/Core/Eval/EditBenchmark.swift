// Editing benchmarks as normalised JSONL (one case per line; fields below): ZsRE
// (`locality_prompt`, questions to template) and CounterFact (`locality_prompts`, completions),
// told apart by their fields.

import Foundation

public struct EditCase: Sendable, Equatable {
    public enum Kind: String, Sendable, Codable { case zsre, counterfact }
    public var kind: Kind
    public var id: String
    /// The subject the fact is about ("" when the file has none).
    public var subject: String
    public var prompt: String
    public var target: String
    public var rephrases: [String]
    public var localityPrompts: [String]
    public var localityAnswer: String
    /// The answer before the edit ("" when the file has none).
    public var originalAnswer: String

    public init(kind: Kind, id: String, subject: String = "", prompt: String, target: String, rephrases: [String],
                localityPrompts: [String], localityAnswer: String, originalAnswer: String = "") {
        self.kind = kind; self.id = id; self.subject = subject; self.prompt = prompt; self.target = target
        self.rephrases = rephrases; self.localityPrompts = localityPrompts; self.localityAnswer = localityAnswer
        self.originalAnswer = originalAnswer
    }

    /// Two cases state the same fact when they share subject and original answer (ZsRE words one
    /// fact several ways; the later correction must win for every wording).
    public var factKey: String? {
        subject.isEmpty || originalAnswer.isEmpty ? nil : subject + "\u{1F}" + originalAnswer
    }
}

public enum EditBenchmarkError: Error, CustomStringConvertible {
    case badLine(Int, String)
    case unreadable(String)
    public var description: String {
        switch self {
        case let .badLine(n, s): return "line \(n): \(s)"
        case let .unreadable(path): return "cannot read \(path)"
        }
    }
}

public enum EditBenchmark {
    private struct Line: Decodable {
        var id: String?
        var subject: String?
        var original_answer: String?
        var prompt: String
        var target: String
        var rephrases: [String]?
        var locality_prompt: String?
        var locality_prompts: [String]?
        var locality_answer: String?
    }

    /// Parses JSONL text; empty lines are skipped.
    public static func parse(_ text: String) throws -> [EditCase] {
        var out: [EditCase] = []
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            guard !line.isEmpty else { continue }
            let l: Line
            do { l = try JSONDecoder().decode(Line.self, from: Data(line.utf8)) } catch {
                throw EditBenchmarkError.badLine(n + 1, "\(error)")
            }
            let kind: EditCase.Kind = l.locality_prompts != nil ? .counterfact : .zsre
            out.append(EditCase(kind: kind, id: l.id ?? "case-\(n)", subject: l.subject ?? "", prompt: l.prompt, target: l.target,
                                rephrases: l.rephrases ?? [],
                                localityPrompts: l.locality_prompts ?? (l.locality_prompt.map { [$0] } ?? []),
                                localityAnswer: l.locality_answer ?? "", originalAnswer: l.original_answer ?? ""))
        }
        return out
    }

    public static func load(path: String) throws -> [EditCase] {
        try parse(String(contentsOfFile: path, encoding: .utf8))
    }
}

/// Traffic in the edits' own format, for `scen eval`: prompts of cases this run does not edit,
/// split into two disjoint sets — same-format locality prompts (measured) and reservoir prompts
/// (the simulated router reservoir, used as negatives; never measured).
public struct SameFormatTraffic: Sendable, Equatable {
    /// Unrelated prompts in the edits' format, measured as `locality_same_format` (raw, untemplated).
    public var localityPrompts: [String]
    /// Prompts whose keys stand in for the router's traffic reservoir.
    public var reservoirPrompts: [String]
    /// How they were drawn (goes into the report).
    public var description: String

    public init(localityPrompts: [String], reservoirPrompts: [String], description: String) {
        self.localityPrompts = localityPrompts; self.reservoirPrompts = reservoirPrompts; self.description = description
    }

    /// Draws from `candidates` every case that is not edited: not one of `edited`'s ids, and about
    /// none of their subjects (another wording of an edited fact is a paraphrase, not unrelated).
    /// A seeded shuffle, then the first `localityCount` go to locality and the next
    /// `reservoirCount` to the reservoir. ZsRE cases give their question; CounterFact cases give
    /// their prompt and their neighbourhood prompts (completions, the edits' format).
    public static func draw(edited: [EditCase], candidates: [EditCase], localityCount: Int, reservoirCount: Int,
                            seed: UInt64 = 0x7AFF1C) -> SameFormatTraffic {
        let ids = Set(edited.map(\.id))
        let subjects = Set(edited.map(\.subject).filter { !$0.isEmpty })
        let editedPrompts = Set(edited.flatMap { [$0.prompt] + $0.rephrases + $0.localityPrompts })
        var pool: [String] = []
        var seen = Set<String>()
        var eligible = 0
        for c in candidates where !ids.contains(c.id) && (c.subject.isEmpty || !subjects.contains(c.subject)) {
            eligible += 1
            let prompts = c.kind == .zsre ? [c.prompt] : [c.prompt] + c.localityPrompts
            for p in prompts where !editedPrompts.contains(p) && seen.insert(p).inserted { pool.append(p) }
        }
        var rng = SplitMix64(seed: seed)
        for i in stride(from: pool.count - 1, to: 0, by: -1) {
            let j = Int(rng.next() % UInt64(i + 1))
            pool.swapAt(i, j)
        }
        let loc = Array(pool.prefix(localityCount))
        let res = Array(pool.dropFirst(loc.count).prefix(reservoirCount))
        let text = "\(eligible) unedited cases (no edited id or subject) → \(pool.count) prompts, seeded shuffle " +
            "\(String(seed, radix: 16)): \(loc.count) measured as same-format locality, the next \(res.count) as the simulated traffic reservoir"
        return SameFormatTraffic(localityPrompts: loc, reservoirPrompts: res, description: text)
    }
}
