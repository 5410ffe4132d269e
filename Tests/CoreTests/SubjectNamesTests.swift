// The subject gate: which words of an edit's prompt a request must name, and routing with it.

import Testing
import Core

@Suite struct SubjectNamesTests {
    func named(_ prompt: String, _ request: String) -> Bool {
        SubjectNames(prompt: prompt).named(in: RequestWords(request))
    }

    @Test func namesAreCapitalisedWordsButSentenceOpeners() {
        let s = SubjectNames(prompt: "Question: What company made Volvo B12M?\nAnswer:")
        #expect(s.all == ["b12m", "volvo"] && s.anyOf.isEmpty)
        // Only sentence openers are capitalised: one of them must be named.
        let t = SubjectNames(prompt: "Toyota is headquartered in")
        #expect(t.all.isEmpty && t.anyOf == ["toyota"])
        #expect(SubjectNames(prompt: "who wrote the novel dracula?").isEmpty)
    }

    @Test func aRequestNamesTheSubjectInAnyCaseAndWording() {
        let edit = "Question: What company made Volvo B12M?\nAnswer:"
        #expect(named(edit, "Question: Volvo B12M's manufacturer was who?\nAnswer:"))
        #expect(named(edit, "who makes the volvo b12m"))
        #expect(!named(edit, "Question: What company made Volvo B10M?\nAnswer:"), "another model number")
        #expect(!named(edit, "Question: What company made the Scania K-series?\nAnswer:"))
        // A name of four or more letters, extended by one or two letters; not digits.
        #expect(named("What was the name of Georg Mattli's team?", "What's the name of Georg Mattlis's team?"))
        #expect(named("Who is the Margary Affair named after?", "What is Margary Affairs named after?"))
        #expect(!named("Who is the Margary Affair named after?", "What is Margary Affairness named after?"))
        #expect(!named("When did HD 1137 form?", "When did HD 113766 form?"))
        #expect(named("Toyota is headquartered in", "Where is the head office of Toyota? It is in"))
        #expect(!named("Toyota is headquartered in", "Honda is headquartered in"))
        #expect(named("who wrote the novel dracula?", "The capital of France is"), "no name: no gate")
    }

    func entry(_ id: String, prompt: String, rephrases: [String] = [], weight: [Float]) -> EditEntry {
        var hp = SCENHyperparameters()
        hp.layer = 2
        return EditEntry(editID: id, prompt: prompt, target: " t", rephrases: rephrases,
                  expert: Expert(form: .lowRank, layer: 2, a: Matrix(rows: 1, cols: 4), b: Matrix(rows: 3, cols: 1),
                                 hyperparameters: hp),
                  neuron: IndexingNeuron(weight: weight, bias: -1, key: weight))
    }

    /// A firing neuron whose subject the request does not name never answers; another firing
    /// edit whose subject it names does. Without the request's words (reservoir keys) or with the
    /// gate off, the neurons alone decide.
    @Test func routingSkipsEditsWhoseSubjectIsNotNamed() throws {
        func index(gate: Bool) throws -> EditIndex {
            try EditIndex(layer: 2, ffnSize: 4, pooling: .mean, theta: 0.65, subjectGate: gate)
                .adding(entry("lyon", prompt: "The twin city of Lyon is", weight: [9, 0, 0, 0]))
                .adding(entry("trieste", prompt: "The twin city of Trieste is", weight: [3, 0, 0, 0]))
        }
        let key: [Float] = [1, 0, 0, 0]
        let gated = try index(gate: true)
        #expect(gated.route(key: key, request: RequestWords("The twin city of Trieste is"))?.editID == "trieste")
        #expect(gated.route(key: key, request: RequestWords("The twin city of Lyon is"))?.editID == "lyon")
        #expect(gated.route(key: key, request: RequestWords("The twin city of Porto is")) == nil)
        #expect(gated.route(key: key)?.editID == "lyon", "keys only: the higher score")
        #expect(try index(gate: false).route(key: key, request: RequestWords("The twin city of Porto is"))?.editID == "lyon")
        // A reporter's rephrase is another wording whose names count too (an alias).
        let us = try EditIndex(layer: 2, ffnSize: 4, pooling: .mean, theta: 0.65, subjectGate: true)
            .adding(entry("us", prompt: "The first president of the United States was", rephrases: ["The first President of the USA was"],
                          weight: [9, 0, 0, 0]))
        #expect(us.route(key: key, request: RequestWords("Who was the first president of the USA?"))?.editID == "us")
        #expect(us.route(key: key, request: RequestWords("The first president of the united states was"))?.editID == "us")
        #expect(us.route(key: key, request: RequestWords("The first president of France was")) == nil)
        // The per-request router carries the words.
        let router = gated.makeRouter(request: "The twin city of Porto is")
        #expect(router.request != nil)
    }
}
