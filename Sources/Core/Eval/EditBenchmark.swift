// Editing benchmarks in the normalised JSONL of /work/shared/data (one case per line): ZsRE
// (`locality_prompt`, questions to template) and CounterFact (`locality_prompts`, completions),
// told apart by their fields.

import Foundation

public struct EditCase: Sendable, Equatable {
    public enum Kind: String, Sendable, Codable { case zsre, counterfact }
    public var kind: Kind
    public var id: String
    public var prompt: String
    public var target: String
    public var rephrases: [String]
    public var localityPrompts: [String]
    public var localityAnswer: String

    public init(kind: Kind, id: String, prompt: String, target: String, rephrases: [String],
                localityPrompts: [String], localityAnswer: String) {
        self.kind = kind; self.id = id; self.prompt = prompt; self.target = target; self.rephrases = rephrases
        self.localityPrompts = localityPrompts; self.localityAnswer = localityAnswer
    }
}

public enum EditBenchmarkError: Error, CustomStringConvertible {
    case badLine(Int, String)
    public var description: String {
        switch self { case let .badLine(n, s): return "line \(n): \(s)" }
    }
}

public enum EditBenchmark {
    private struct Line: Decodable {
        var id: String?
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
            out.append(EditCase(kind: kind, id: l.id ?? "case-\(n)", prompt: l.prompt, target: l.target,
                                rephrases: l.rephrases ?? [],
                                localityPrompts: l.locality_prompts ?? (l.locality_prompt.map { [$0] } ?? []),
                                localityAnswer: l.locality_answer ?? ""))
        }
        return out
    }

    public static func load(path: String) throws -> [EditCase] {
        try parse(String(contentsOfFile: path, encoding: .utf8))
    }
}
