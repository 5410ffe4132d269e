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

/// Whether a stored edit can be routed by a router or trained against by a trainer of one
/// configuration and model.
public enum EditRoutability: Sendable {
    case routable(EditEntry)
    /// Not trained yet, or trained for another layer (a normal state during a rollout).
    case elsewhere
    /// Stored but unusable here: unreadable blob, wrong shape, non-finite values, or trained on
    /// another routing key. Never routed; the reason goes to the logs.
    case unusable(String)
}

extension StoredEdit {
    /// The routing entry of a trained edit at `hyperparameters.layer`, checked against the
    /// model's sizes (F = `ffnSize`, D = `hiddenSize`) and the routing key it was trained on.
    public func routability(hyperparameters hp: SCENHyperparameters, ffnSize f: Int, hiddenSize d: Int) -> EditRoutability {
        if let defect { return .unusable(defect) }
        guard let expert, let neuron else { return .elsewhere }
        guard expert.layer == hp.layer, neuron.layer == hp.layer else { return .elsewhere }
        if let json = record.hyperparameters, let trained = try? SCENHyperparameters.load(json), trained.keyPooling != hp.keyPooling {
            return .unusable("trained on \(trained.keyPooling.rawValue) routing keys, this service reads \(hp.keyPooling.rawValue): publish the correction again")
        }
        guard neuron.weights.count == f, neuron.key.count == f, neuron.extraKeys.allSatisfy({ $0.count == f }) else {
            return .unusable("neuron has \(neuron.weights.count) weights, the model's FFN has \(f)")
        }
        guard neuron.bias.isFinite, neuron.weights.allSatisfy(\.isFinite), neuron.key.allSatisfy(\.isFinite) else {
            return .unusable("neuron has non-finite values")
        }
        switch expert.form {
        case .lowRank:
            guard expert.a.cols == f, expert.b.rows == d, expert.a.rows == expert.b.cols, expert.a.rows > 0 else {
                return .unusable("expert A \(expert.a.rows)×\(expert.a.cols), B \(expert.b.rows)×\(expert.b.cols) do not fit F \(f), D \(d)")
            }
        case .full:
            guard expert.b.rows == d, expert.b.cols == f else {
                return .unusable("expert W' \(expert.b.rows)×\(expert.b.cols) does not fit D \(d) × F \(f)")
            }
        }
        return .routable(EditEntry(editID: String(record.id), prompt: record.prompt, target: record.target, rephrases: record.rephrases,
                                   expert: expert.expert(hyperparameters: hp), neuron: neuron.indexingNeuron))
    }
}

extension EditRoutability {
    public var entry: EditEntry? { if case .routable(let e) = self { e } else { nil } }
    public var problem: String? { if case .unusable(let p) = self { p } else { nil } }
}
