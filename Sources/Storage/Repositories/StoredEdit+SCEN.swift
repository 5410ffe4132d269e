// Translation between the stored records and Core's SCEN artefacts, in one place for the
// Trainer (which writes them) and the Router (which serves them).
import Core

extension StoredExpert {
    public init(_ expert: Expert) {
        self.init(form: expert.form == .full ? .full : .lowRank, layer: expert.layer, a: expert.a, b: expert.b)
    }

    public func expert(hyperparameters: SCENHyperparameters) -> Expert {
        Expert(form: form == .full ? .full : .lowRank, layer: layer, a: a, b: b, hyperparameters: hyperparameters)
    }
}

extension StoredIndexingNeuron {
    public init(_ neuron: IndexingNeuron, layer: Int) {
        self.init(layer: layer, weights: neuron.weight, bias: neuron.bias, key: neuron.key, extraKeys: neuron.extraKeys)
    }

    public var indexingNeuron: IndexingNeuron {
        IndexingNeuron(weight: weights, bias: bias, key: key, extraKeys: extraKeys)
    }
}

extension StoredEdit {
    /// The routing entry of a trained edit at `hyperparameters.layer`; nil when the edit is not
    /// trained yet or was trained for another layer.
    public func editEntry(hyperparameters: SCENHyperparameters) -> EditEntry? {
        guard let expert, let neuron, expert.layer == hyperparameters.layer, neuron.layer == hyperparameters.layer else {
            return nil
        }
        return EditEntry(editID: String(record.id), prompt: record.prompt, target: record.target,
                         expert: expert.expert(hyperparameters: hyperparameters), neuron: neuron.indexingNeuron)
    }
}
