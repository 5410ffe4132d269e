import Core
import Testing

@Suite("EditIndex bulk building")
struct EditIndexBulkTests {
    static let f = 8

    func entry(_ id: Int, prompt: String, seed: Float) -> EditEntry {
        let hp = SCENHyperparameters()
        let w = (0..<Self.f).map { Float($0) * 0.1 * seed - 0.3 }
        return EditEntry(editID: String(id), prompt: prompt, target: " t\(id)",
                         expert: Expert(form: .lowRank, layer: hp.layer, a: Matrix(rows: 1, cols: Self.f), b: Matrix(rows: 4, cols: 1),
                                        hyperparameters: hp),
                         neuron: IndexingNeuron(weight: w, bias: seed, key: w))
    }

    @Test func bulkAddingEqualsOneByOne() throws {
        let hp = SCENHyperparameters()
        let empty = EditIndex(layer: hp.layer, ffnSize: Self.f, pooling: .mean, theta: 0.5)
        // Prompt "b" is corrected twice: the later edit (3) must win, as with single adds.
        let entries = [entry(1, prompt: "a", seed: 1), entry(2, prompt: "b", seed: 2), entry(3, prompt: "b", seed: 3),
                       entry(4, prompt: "c", seed: -1)]
        var single = empty
        for e in entries { single = try single.adding(e) }
        let bulk = try empty.adding(contentsOf: entries)
        #expect(bulk.entries.map(\.editID) == single.entries.map(\.editID))
        #expect(bulk.entries.map(\.editID) == ["1", "3", "4"])
        let key = (0..<Self.f).map { Float($0) / 4 }
        #expect(bulk.scores(key: key) == single.scores(key: key))
        // Adding to a non-empty index replaces same-prompt and same-id entries there too.
        let more = try bulk.adding(contentsOf: [entry(5, prompt: "a", seed: 5), entry(4, prompt: "d", seed: 4)])
        #expect(more.entries.map(\.editID) == ["3", "5", "4"])
        #expect(more.entries.map(\.prompt) == ["b", "a", "d"])
    }
}
