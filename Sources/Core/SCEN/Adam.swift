// Adam (Kingma & Ba 2015) over one flat Float parameter vector, with PyTorch's defaults
// (β1 0.9, β2 0.999, ε 1e-8, bias correction), as used by both SCEN training stages.

import Foundation

public struct AdamState: Sendable {
    public var learningRate: Float
    public var beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8
    var m: [Float], v: [Float]
    var step = 0

    public init(count: Int, learningRate: Float) {
        self.learningRate = learningRate
        m = [Float](repeating: 0, count: count)
        v = m
    }

    /// θ ← θ − lr · m̂ / (√v̂ + ε).
    public mutating func update(_ theta: inout [Float], gradient g: [Float]) {
        precondition(theta.count == m.count && g.count == m.count)
        step += 1
        let b1 = beta1, b2 = beta2, eps = epsilon
        let c1 = 1 - powf(b1, Float(step)), c2 = 1 - powf(b2, Float(step))
        let lr = learningRate / c1, s2 = 1 / c2.squareRoot()
        m.withUnsafeMutableBufferPointer { mp in v.withUnsafeMutableBufferPointer { vp in
            theta.withUnsafeMutableBufferPointer { tp in g.withUnsafeBufferPointer { gp in
                for i in 0..<tp.count {
                    let gi = gp[i]
                    mp[i] = b1 * mp[i] + (1 - b1) * gi
                    vp[i] = b2 * vp[i] + (1 - b2) * gi * gi
                    tp[i] -= lr * mp[i] / (vp[i].squareRoot() * s2 + eps)
                }
            } }
        } }
    }
}
