// The real engine behind scen-trainer: Core's SCENEditor (stage 1 expert, stage 2 indexing
// neuron, refinement of earlier neurons), translated to and from the Storage records.
import Core
import Foundation
import Storage

final class SCENEditTrainer: EditTrainer {
    let editor: SCENEditor
    var hyperparameters: SCENHyperparameters { editor.hyperparameters }

    init(editor: SCENEditor) { self.editor = editor }

    func train(_ job: TrainingJob, active: [StoredEdit]) throws -> TrainedEdit {
        let hp = editor.hyperparameters
        // The index the new edit is trained against: every active edit of this layer.
        var index = editor.emptyIndex()
        for edit in active {
            guard let expert = edit.expert, let neuron = edit.neuron, expert.layer == hp.layer, neuron.layer == hp.layer else { continue }
            index = try index.adding(EditEntry(
                editID: String(edit.record.id), prompt: edit.record.prompt, target: edit.record.target,
                expert: Expert(form: expert.form == .full ? .full : .lowRank, layer: expert.layer, a: expert.a, b: expert.b,
                               hyperparameters: hp),
                neuron: IndexingNeuron(weight: neuron.weights, bias: neuron.bias, key: neuron.key, extraKeys: neuron.extraKeys)))
        }
        let outcome = try editor.edit(EditRequest(id: String(job.editID), prompt: job.prompt, target: job.target, rephrases: job.rephrases),
                                      index: index)
        let entry = outcome.entry
        let expert = StoredExpert(form: entry.expert.form == .full ? .full : .lowRank, layer: entry.expert.layer,
                                  a: entry.expert.a, b: entry.expert.b)
        let refined = outcome.refinedNeurons.compactMap { id, n -> ActiveNeuron? in
            Int64(id).map { ActiveNeuron(editID: $0, neuron: Self.stored(n, layer: hp.layer)) }
        }.sorted { $0.editID < $1.editID }
        let metrics: [String: Any] = [
            "seconds": outcome.seconds, "expert_seconds": outcome.expertSeconds, "neuron_seconds": outcome.neuronSeconds,
            "expert_steps": outcome.expertSteps, "expert_initial_loss": Double(outcome.expertInitialLoss),
            "expert_final_loss": Double(outcome.expertFinalLoss), "prefix_forwards": outcome.prefixForwards,
            "refined_neurons": refined.map(\.editID), "index_size": index.count, "attempt": job.attempt,
        ]
        return TrainedEdit(expert: expert, neuron: Self.stored(entry.neuron, layer: hp.layer), refinedNeurons: refined,
                           hyperparameters: try Self.json(hp), metrics: Self.json(metrics))
    }

    static func stored(_ n: IndexingNeuron, layer: Int) -> StoredIndexingNeuron {
        StoredIndexingNeuron(layer: layer, weights: n.weight, bias: n.bias, key: n.key, extraKeys: n.extraKeys)
    }

    static func json(_ hp: SCENHyperparameters) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(hp), as: UTF8.self)
    }

    static func json(_ object: [String: Any]) -> String {
        let clean = object.mapValues { v -> Any in
            if let d = v as? Double, !d.isFinite { return NSNull() }
            return v
        }
        guard let data = try? JSONSerialization.data(withJSONObject: clean, options: [.sortedKeys]) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
