// The routing table kept between reloads must always equal the one built from scratch.
import Core
import Foundation
import Storage
import Testing

@Suite struct RoutingTableBuilderTests {
    let f = 4, d = 3
    var hp: SCENHyperparameters {
        var h = SCENHyperparameters()
        h.layer = 2
        h.keyPooling = .mean
        h.keyGate = nil
        h.latestWinsCosine = nil
        return h
    }
    var empty: EditIndex { EditIndex(layer: 2, ffnSize: f, pooling: .mean, theta: 0.65, subjectGate: true) }

    func edit(_ id: Int64, at t: Double, weight: [Float], key: [Float]? = nil, neuronWidth: Int? = nil) -> StoredEdit {
        let date = Date(timeIntervalSince1970: t)
        let record = EditRecord(id: id, eventID: "e\(id)", prompt: "Who founded Company\(id)?", target: " X", rephrases: [], status: .active,
                                correctedAt: date, createdAt: date, updatedAt: date)
        let expert = StoredExpert(form: .lowRank, layer: 2, a: Matrix(rows: 1, cols: f), b: Matrix(rows: d, cols: 1))
        let w = neuronWidth.map { Array(repeating: Float(1), count: $0) } ?? weight
        return StoredEdit(record: record, expert: expert, neuron: StoredIndexingNeuron(layer: 2, weights: w, bias: -1, key: key ?? w))
    }

    /// Ids in table order, and the scores of a probe key, from the kept table and from scratch.
    func same(_ builder: RoutingTableBuilder, _ active: [StoredEdit]) throws {
        let kept = try builder.table(of: active.shuffled())
        let scratch = try RoutingTableBuilder(empty: empty, hyperparameters: hp, ffnSize: f, hiddenSize: d).table(of: active)
        #expect(kept.index.entries.map(\.editID) == scratch.index.entries.map(\.editID))
        #expect(kept.index.scores(key: [1, 2, 3, 4]) == scratch.index.scores(key: [1, 2, 3, 4]))
        #expect(kept.unusable.map(\.editID) == scratch.unusable.map(\.editID))
    }

    @Test func keptTableEqualsTheOneBuiltFromScratch() throws {
        let builder = RoutingTableBuilder(empty: empty, hyperparameters: hp, ffnSize: f, hiddenSize: d)
        var active = [edit(1, at: 10, weight: [1, 0, 0, 0]), edit(2, at: 20, weight: [0, 1, 0, 0])]
        try same(builder, active)
        #expect(builder.rebuilds == 0)
        // A later correction is appended.
        active.append(edit(3, at: 30, weight: [0, 0, 1, 0]))
        try same(builder, active)
        #expect(builder.rebuilds == 0)
        // A refined neuron (new weights, same key) is swapped in place.
        active[0] = edit(1, at: 10, weight: [5, 0, 0, 1], key: [1, 0, 0, 0])
        try same(builder, active)
        #expect(builder.rebuilds == 0)
        // A revert drops it.
        active.remove(at: 1)
        try same(builder, active)
        #expect(builder.rebuilds == 0)
        // An older correction activated late goes to its place in correction order: rebuilt.
        active.append(edit(4, at: 15, weight: [0, 0, 0, 1]))
        try same(builder, active)
        #expect(builder.rebuilds == 1)
        // A neuron of the wrong width is reported and left out; the others keep routing.
        active.append(edit(5, at: 40, weight: [], neuronWidth: 7))
        try same(builder, active)
        let table = try builder.table(of: active)
        #expect(table.unusable.map(\.editID) == [5])
        #expect(table.index.entries.map(\.editID) == ["1", "4", "3"])
    }
}
