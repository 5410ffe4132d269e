// An independent naive reference forward pass (plain loops, Double) of Core's SyntheticGemma,
// the tiny seeded Gemma-3-shaped model the unit tests run.

import Foundation
import Core

/// Deterministic SplitMix64.
struct GemmaTestRandom {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [-a, a].
    mutating func uniform(_ a: Float) -> Float {
        Float(Double(next() >> 11) / Double(1 << 53) * 2 - 1) * a
    }
    mutating func values(_ n: Int, _ a: Float) -> [Float] { (0..<n).map { _ in uniform(a) } }
    /// Values around 1 (norm weights; the GGUF convention already includes the +1).
    mutating func norms(_ n: Int) -> [Float] { (0..<n).map { _ in 1 + uniform(0.3) } }
}

extension SyntheticGemma {
    // MARK: Naive reference (Double, whole sequence recomputed, no cache)

    struct Reference {
        /// logits[t][v] for every position.
        var logits: [[Double]]
        /// ffnInput[layer][t][j]: x = gelu(gate) ⊙ up.
        var ffnInput: [[[Double]]]
    }

    /// `downOverride`: replaces layer L's W_down [D, F] (row-major) for every position.
    func reference(_ ids: [Int], downOverride: (layer: Int, weight: [Float])? = nil) -> Reference {
        let n = ids.count
        func matvec(_ w: [Float], rows: Int, cols: Int, _ x: [Double]) -> [Double] {
            (0..<rows).map { r in (0..<cols).reduce(0.0) { $0 + Double(w[r * cols + $1]) * x[$1] } }
        }
        func rms(_ x: [Double], _ w: [Float]) -> [Double] {
            let ms = x.reduce(0) { $0 + $1 * $1 } / Double(x.count)
            let s = 1 / (ms + Double(eps)).squareRoot()
            return x.indices.map { x[$0] * s * Double(w[$0]) }
        }
        func rope(_ x: [Double], pos: Int, base: Double) -> [Double] {
            let half = x.count / 2
            var y = x
            for i in 0..<half {
                let theta = Double(pos) * pow(base, -2 * Double(i) / Double(x.count))
                y[i] = x[i] * cos(theta) - x[i + half] * sin(theta)
                y[i + half] = x[i] * sin(theta) + x[i + half] * cos(theta)
            }
            return y
        }
        let embScale = Double(Float(d).squareRoot())
        var hs: [[Double]] = ids.map { id in (0..<d).map { Double(embedding[id * d + $0]) * embScale } }
        var ffnInput: [[[Double]]] = []
        for (l, b) in layers.enumerated() {
            let global = (l + 1) % 6 == 0
            let base = Double(global ? ropeGlobal : ropeLocal)
            var qs: [[[Double]]] = [], ks: [[Double]] = [], vs: [[Double]] = []
            for t in 0..<n {
                let a = rms(hs[t], b.attnNorm)
                let q = matvec(b.q, rows: h * e, cols: d, a)
                qs.append((0..<h).map { hh in rope(rms(Array(q[hh * e ..< (hh + 1) * e]), b.qNorm), pos: t, base: base) })
                ks.append(rope(rms(matvec(b.kw, rows: e, cols: d, a), b.kNorm), pos: t, base: base))
                vs.append(matvec(b.v, rows: e, cols: d, a))
            }
            var xs: [[Double]] = []
            for t in 0..<n {
                var attn = [Double](repeating: 0, count: h * e)
                for hh in 0..<h {
                    let visible = (0...t).filter { global || t - $0 < window }
                    let scores = visible.map { j in
                        (0..<e).reduce(0.0) { $0 + qs[t][hh][$1] * ks[j][$1] } / Double(e).squareRoot()
                    }
                    let m = scores.max()!
                    let ex = scores.map { exp($0 - m) }
                    let z = ex.reduce(0, +)
                    for (idx, j) in visible.enumerated() {
                        for c in 0..<e { attn[hh * e + c] += ex[idx] / z * vs[j][c] }
                    }
                }
                let o = matvec(b.o, rows: d, cols: h * e, attn)
                let po = rms(o, b.postAttnNorm)
                for c in 0..<d { hs[t][c] += po[c] }
                let bn = rms(hs[t], b.ffnNorm)
                let g = matvec(b.gate, rows: f, cols: d, bn), u = matvec(b.up, rows: f, cols: d, bn)
                let x = (0..<f).map { j -> Double in
                    let gv = g[j]
                    return 0.5 * gv * (1 + tanh((2 / Double.pi).squareRoot() * (gv + 0.044715 * gv * gv * gv))) * u[j]
                }
                xs.append(x)
                let wd = downOverride?.layer == l ? downOverride!.weight : b.down
                let y = rms(matvec(wd, rows: d, cols: f, x), b.postFFNNorm)
                for c in 0..<d { hs[t][c] += y[c] }
            }
            ffnInput.append(xs)
        }
        let logits = hs.map { hv in matvec(embedding, rows: vocab, cols: d, rms(hv, outputNorm)) }
        return Reference(logits: logits, ffnInput: ffnInput)
    }
}

func gemmaMaxAbsDiff(_ a: [Float], _ b: [Double]) -> Double {
    zip(a, b).reduce(0) { max($0, abs(Double($1.0) - $1.1)) }
}

func gemmaMaxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}
