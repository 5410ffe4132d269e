// The subject gate: an edit answers only requests that name its subject.
//
// A trained neuron and the key gate see a pooled activation, and at scale an unrelated question in
// the same template about a look-alike subject reaches both ("The twin city of Trieste is" for a
// Lyon edit; another date of birth for another person). The words tell those apart where the
// key cannot: a correction of "What company made Volvo B12M?" is about Volvo B12M, and a request
// that never names it is not asking about it.
//
// The names of an edit's prompt are its words that start with a capital letter or a digit,
// leaving out words that open a sentence or line (`SameFact.Words`: "Question", "What",
// "Answer"), whose capital says nothing; a prompt whose only capitalised words open sentences
// ("Toyota is headquartered in") needs one of those. A request names the subject when every name
// occurs in it as a word, case-insensitively ("who wrote dracula" names "Dracula"); a name of four
// or more letters also matches a word that extends it by one or two letters ("Mattli's" /
// "Mattlis's", "Affair" / "Affairs"). A prompt without any capitalised word has no gate.
//
// Offline on the dev files (`tools/subject_gate_probe.py`): every name occurs in 99.7 % of
// zsre-dev's rephrases (all of them with the extension rule) and in all of counterfact-dev's;
// 1.2 % of counterfact-dev's neighbourhood prompts name their edit's subject, and none of 200,000
// random pairs of a zsre-dev prompt and a zsre-scale question.
//
// A correction's other wordings (the reporter's rephrases) are alternatives: a request that names
// the subject as any of them does ("The first President of the USA was" for "… of the United
// States …").
//
// What it costs: a request that calls the subject something else (an alias no wording used, a
// pronoun, a misspelling) does not reach the edit.

import Foundation

public struct SubjectNames: Sendable, Equatable {
    /// Every one of these (lowercased) must occur in the request…
    public let all: [String]
    /// …or, when `all` is empty, one of these (the sentence-opening capitalised words).
    public let anyOf: [String]

    public init(prompt: String) {
        let w = SameFact.Words(prompt)
        let names = w.proper.subtracting(w.initial)
        all = names.map { $0.lowercased() }.sorted()
        anyOf = names.isEmpty ? w.initial.map { $0.lowercased() }.sorted() : []
    }

    /// No capitalised word: the gate lets every request through.
    public var isEmpty: Bool { all.isEmpty && anyOf.isEmpty }

    /// Whether `request` names this subject.
    public func named(in request: RequestWords) -> Bool {
        if !all.isEmpty { return all.allSatisfy(request.contains) }
        return anyOf.isEmpty || anyOf.contains(where: request.contains)
    }
}

/// The words of a request, lowercased, for `SubjectNames.named(in:)`.
public struct RequestWords: Sendable {
    private let words: Set<String>
    private let stems: Set<String>

    public init(_ text: String) {
        let words = SameFact.Words(text).all
        self.words = words
        // Each word with its last one or two letters dropped, for names it extends.
        var stems = Set<String>()
        for w in words where !w.contains(where: \.isNumber) {
            for cut in 1...2 where w.count - cut >= 4 { stems.insert(String(w.dropLast(cut))) }
        }
        self.stems = stems
    }

    /// `name` is one of the words, or (four or more letters, no digit) a word extends it by one
    /// or two letters.
    public func contains(_ name: String) -> Bool {
        words.contains(name) || (name.count >= 4 && !name.contains(where: \.isNumber) && stems.contains(name))
    }
}
