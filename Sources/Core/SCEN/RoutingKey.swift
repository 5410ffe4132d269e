// The routing key: what an indexing neuron reads of a prompt. Both are taken from layer L's
// down-projection input x [T, F] during the prompt's prefill (FFNEdit.swift); they differ in
// which rows they pool.
//
// Why the mean: in one shared prompt template the last token ("Answer:") mostly encodes the
// template, so an unrelated question in the same template looks as close to an edit as the edit's
// own paraphrase (zsre-dev, see README). The mean over the prompt's tokens carries the content
// (subject, relation). Position 0 (<bos>) is left out: its activations are the same for every
// prompt and an order of magnitude larger than the rest.

import Foundation

public enum KeyPooling: String, Codable, Sendable, CaseIterable {
    /// x at the last prompt token (SCEN's key).
    case lastToken = "last-token"
    /// Mean of x over the prompt's tokens after <bos>.
    case mean

    /// The key of a prompt whose rows [rows, width] start at absolute position `firstPosition`
    /// (the whole prompt must be in these rows; position 0 is <bos> when the prompt starts there).
    public func key(rows: UnsafePointer<Float>, rowCount: Int, firstPosition: Int, width: Int) -> [Float] {
        precondition(rowCount > 0, "a routing key needs at least one row")
        switch self {
        case .lastToken:
            return Array(UnsafeBufferPointer(start: rows + (rowCount - 1) * width, count: width))
        case .mean:
            let skip = (firstPosition == 0 && rowCount > 1) ? 1 : 0
            var out = [Float](repeating: 0, count: width)
            let n = rowCount - skip
            out.withUnsafeMutableBufferPointer { o in
                for t in skip..<rowCount {
                    let r = rows + t * width
                    for i in 0..<width { o[i] += r[i] }
                }
                let s = 1 / Float(n)
                for i in 0..<width { o[i] *= s }
            }
            return out
        }
    }

    /// The key of the activations the editor hook receives during a prompt's prefill.
    public func key(_ activations: FFNActivations) -> [Float] {
        key(rows: activations.base, rowCount: activations.rowCount, firstPosition: activations.positions.lowerBound,
            width: activations.width)
    }

    /// The key of the first `promptCount` rows of a training stack's x [T, F] (position 0 first).
    public func key(ffnInput: [Float], promptCount: Int, width: Int) -> [Float] {
        ffnInput.withUnsafeBufferPointer { key(rows: $0.baseAddress!, rowCount: promptCount, firstPosition: 0, width: width) }
    }
}
