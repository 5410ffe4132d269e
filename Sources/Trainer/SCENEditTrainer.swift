// The real engine behind scen-trainer: Core's SCENEditor (stage 1 expert, stage 2 indexing
// neuron against the router's traffic reservoir, refinement of earlier neurons, supersede by
// meaning, the blast-radius check), translated to and from the Storage records.
import Core
import Foundation
import Pipeline
import Storage

final class SCENEditTrainer: EditTrainer {
    let editor: SCENEditor
    /// The router's traffic reservoir as stored now (read before every edit).
    let traffic: () throws -> TrafficKeys

    /// The index the new edit is trained against, kept between jobs.
    private let table: RoutingTableBuilder

    init(editor: SCENEditor, traffic: @escaping () throws -> TrafficKeys = { .none }) {
        self.editor = editor
        self.traffic = traffic
        let c = editor.model.config
        table = RoutingTableBuilder(empty: editor.emptyIndex(), hyperparameters: editor.hyperparameters, ffnSize: c.ffnSize,
                                    hiddenSize: c.hiddenSize)
    }

    struct OverLimit: Error, CustomStringConvertible {
        var tokens: Int
        var description: String { "prompt + target are \(tokens) tokens with BOS; a correction may have at most \(CorrectionLimits.editTokens)" }
    }

    func train(_ job: TrainingJob, active: [StoredEdit]) throws -> TrainedEdit {
        let hp = editor.hyperparameters
        // Ingest enforces the same limit; a job from elsewhere (or an older ingest) is refused
        // before it can hold the trainer for hours.
        let count = { (text: String) in self.editor.tokenizer.encode(text, addBOS: false).count }
        let targetTokens = count(job.target)
        for p in [job.prompt] + job.rephrases {
            let n = CorrectionLimits.editTokens(promptTokens: count(p), targetTokens: targetTokens)
            if n > CorrectionLimits.editTokens { throw OverLimit(tokens: n) }
        }
        // The index the new edit is trained against: every active edit of this layer that can be
        // routed (untrained edits, those of another layer and unreadable ones have no entry).
        let index = try table.table(of: active).index
        let outcome = try editor.edit(EditRequest(id: String(job.editID), prompt: job.prompt, target: job.target, rephrases: job.rephrases),
                                      index: index, traffic: try traffic())
        let entry = outcome.entry
        let b = outcome.blastRadius
        let blast: [String: Double] = [
            "traffic_share": b.trafficShare, "traffic_fired": Double(b.trafficFired), "traffic_measured": Double(b.trafficMeasured),
            "traffic_own": Double(b.trafficOwn),
            "edits_share": b.editsShare, "edits_fired": Double(b.editsFired), "edits_measured": Double(b.editsMeasured),
            "limit": hp.blastRadiusLimit.map(Double.init) ?? -1,
        ]
        let refined = outcome.refinedNeurons.compactMap { id, n -> ActiveNeuron? in
            Int64(id).map { ActiveNeuron(editID: $0, neuron: StoredIndexingNeuron(n, layer: hp.layer)) }
        }.sorted { $0.editID < $1.editID }
        let metrics: [String: Any] = [
            "seconds": outcome.seconds, "expert_seconds": outcome.expertSeconds, "neuron_seconds": outcome.neuronSeconds,
            "expert_steps": outcome.expertSteps, "expert_initial_loss": Double(outcome.expertInitialLoss),
            "expert_final_loss": Double(outcome.expertFinalLoss), "prefix_forwards": outcome.prefixForwards,
            "refined_neurons": refined.map(\.editID), "index_size": index.count, "attempt": job.attempt,
            "superseded_by_meaning": outcome.supersededByMeaning.compactMap { Int64($0) },
            "blast_radius": blast,
        ]
        return TrainedEdit(expert: StoredExpert(entry.expert), neuron: StoredIndexingNeuron(entry.neuron, layer: hp.layer),
                           refinedNeurons: refined, hyperparameters: try Self.json(hp), metrics: Self.json(metrics),
                           supersedes: outcome.supersededByMeaning.compactMap { Int64($0) }, heldReason: outcome.heldReason,
                           blastRadius: blast)
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
