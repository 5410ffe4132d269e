// GRACE (Hartvigsen et al., "Aging with GRACE: Lifelong Model Editing with Discrete Key-Value
// Adaptors", arXiv 2211.11031) as a baseline in the evaluation harness, at SCEN's layer L.
//
// A codebook of (key, value, ε, label): the key is layer L's down-projection input x at a
// prompt's last token, the value a vector that replaces the layer's output y at that token.
// A request whose last-token x lies within some entry's ε-ball (Euclidean) gets the nearest such
// entry's value at that token; every later token runs the unedited layer (GRACE's
// "replace_last"), the value reaching them through the cached keys and values. A new edit:
// if its key falls in the ball of an entry with the same label (target), that ball grows to
// cover it; in one with another label, both balls shrink to half their distance (GRACE's
// split); otherwise it gets a new entry with the initial ε. A value is trained by Adam on the
// target tokens' loss through the layers above, from the layer's own output at that token,
// stopping as SCEN's experts do (every target token the argmax and the loss below
// `expertStopLoss`).

import Foundation

public struct GRACEHyperparameters: Codable, Sendable, Equatable {
    /// The initial ε-ball radius (EasyEdit's GRACE default).
    public var epsilon: Float = 1.0
    /// Value training: at most this many Adam steps at this learning rate.
    public var steps: Int = 50
    public var learningRate: Float = 0.1

    public init(epsilon: Float = 1.0, steps: Int = 50, learningRate: Float = 0.1) {
        self.epsilon = epsilon; self.steps = steps; self.learningRate = learningRate
    }
}

public struct GRACECodebook: Sendable {
    public struct Entry: Sendable {
        public var id: String
        public var key: [Float]
        public var value: [Float]
        public var epsilon: Float
        public var label: String
    }

    public let layer: Int
    public let hyperparameters: GRACEHyperparameters
    public private(set) var entries: [Entry] = []

    public init(layer: Int, hyperparameters: GRACEHyperparameters = GRACEHyperparameters()) {
        self.layer = layer; self.hyperparameters = hyperparameters
    }

    public var residentBytes: Int { entries.reduce(0) { $0 + 4 * ($1.key.count + $1.value.count) } }

    /// The nearest entry to `key` and its distance.
    func nearest(_ key: [Float]) -> (index: Int, distance: Float)? {
        var best: (Int, Float)?
        for (i, e) in entries.enumerated() {
            var s: Float = 0
            for j in 0..<key.count { let d = key[j] - e.key[j]; s += d * d }
            let d = s.squareRoot()
            if best == nil || d < best!.1 { best = (i, d) }
        }
        return best
    }

    /// Edits the codebook for (key, label); `train` makes the new entry's value when one is needed.
    public mutating func edit(id: String, key: [Float], label: String, train: () throws -> [Float]) rethrows {
        let e0 = hyperparameters.epsilon
        if let (i, d) = nearest(key), d <= entries[i].epsilon + e0 {
            if entries[i].label == label {
                entries[i].epsilon = max(entries[i].epsilon, d)  // expand to cover the new key
                return
            }
            // Conflict: split the distance between the two balls.
            entries[i].epsilon = d / 2
            entries.append(Entry(id: id, key: key, value: try train(), epsilon: d / 2, label: label))
            return
        }
        entries.append(Entry(id: id, key: key, value: try train(), epsilon: e0, label: label))
    }

    /// Edits the codebook for one correction: the key is x at the prompt's last token; a new
    /// value is trained only when the key needs an entry of its own. Returns the Adam steps taken.
    @discardableResult
    public mutating func edit(id: String, sequence: TrainingSequence, model: GemmaModel, stopLoss: Float) throws -> Int {
        let stack = try DownProjectionTrainingStack(model: model, layer: layer, tokens: sequence.tokens, targets: sequence.targets)
        let f = model.config.ffnSize, row = sequence.promptCount - 1
        let label = sequence.tokens[sequence.promptCount...].map(String.init).joined(separator: " ")
        var steps = 0
        let hp = hyperparameters
        edit(id: id, key: Array(stack.ffnInput[row * f ..< (row + 1) * f]), label: label) {
            let trained = Self.trainValue(stack: stack, row: row, hiddenSize: model.config.hiddenSize, hyperparameters: hp,
                                          stopLoss: stopLoss)
            steps = trained.steps
            return trained.value
        }
        return steps
    }

    /// The router for one request.
    public func makeRouter() -> GRACERouter { GRACERouter(codebook: self) }

    /// Trains the value replacing layer L's output at row `row` (the prompt's last token) of `stack`.
    static func trainValue(stack: DownProjectionTrainingStack, row: Int, hiddenSize d: Int, hyperparameters hp: GRACEHyperparameters,
                           stopLoss: Float) -> (value: [Float], steps: Int, loss: Float) {
        var y = stack.baseDownOutput()
        var value = Array(y[row * d ..< (row + 1) * d])
        var adam = AdamState(count: d, learningRate: hp.learningRate)
        var loss: Float = .nan, steps = 0
        for _ in 0..<hp.steps {
            y.replaceSubrange(row * d ..< (row + 1) * d, with: value)
            let (result, dy) = stack.lossAndGradient(downOutput: y)
            loss = result.loss
            if result.argmaxCorrect.allSatisfy({ $0 }) && loss < stopLoss { break }
            steps += 1
            adam.update(&value, gradient: Array(dy[row * d ..< (row + 1) * d]))
        }
        return (value, steps, loss)
    }
}

/// One request's GRACE lookup at layer L: the last prompt token's x against the codebook.
public final class GRACERouter: DownProjectionEditor, @unchecked Sendable {
    public let codebook: GRACECodebook
    public var layer: Int { codebook.layer }
    /// The entry that answered, if any (after prefill).
    public private(set) var firedEditID: String?

    init(codebook: GRACECodebook) { self.codebook = codebook }

    public func selectEdit(for activations: FFNActivations) -> (any DownProjectionEdit)? {
        guard let (i, d) = codebook.nearest(activations.lastRow), d <= codebook.entries[i].epsilon else { return nil }
        firedEditID = codebook.entries[i].id
        return GRACEValue(value: codebook.entries[i].value, row: activations.rowCount - 1)
    }
}

/// Replaces row `row` of the first output it is applied to (the prompt's forward) with `value`;
/// later calls (the tokens after the prompt) keep the layer's own output.
final class GRACEValue: DownProjectionEdit, @unchecked Sendable {
    let value: [Float]
    let row: Int
    private var applied = false
    var replacesBaseOutput: Bool { false }

    init(value: [Float], row: Int) { self.value = value; self.row = row }

    func apply(input x: UnsafePointer<Float>, rows: Int, ffnSize: Int, output y: UnsafeMutablePointer<Float>, hiddenSize: Int) {
        guard !applied else { return }
        applied = true
        guard row < rows else { return }
        value.withUnsafeBufferPointer { (y + row * hiddenSize).update(from: $0.baseAddress!, count: hiddenSize) }
    }
}
