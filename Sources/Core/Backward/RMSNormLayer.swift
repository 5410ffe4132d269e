// RMSNorm forward and backward over rows: y = x · s · w with s = 1/√(mean(x²) + ε), the norm
// of Gemma 3 (GGUF weights already include the +1). The weight w is frozen: backward returns dx.
// Reference: llm.c `layernorm_forward/backward` without the mean and bias terms.
//
// Dimension glossary of Backward/ (shapes in every comment): T tokens of the training sequence,
// D hidden size, F FFN inner size, H query heads, K key/value heads, E head dimension,
// V vocabulary, N target positions (tokens whose log-likelihood is the loss), r expert rank.

import Foundation

public enum RMSNormLayer {
    /// y[R, n] = x[R, n] · s_r · w[n]; returns s [R] (saved for backward). x and y may alias.
    @discardableResult
    public static func forward(_ x: UnsafePointer<Float>, rows: Int, width n: Int, weight w: UnsafePointer<Float>,
                               eps: Float, out y: UnsafeMutablePointer<Float>) -> [Float] {
        var scales = [Float](repeating: 0, count: rows)
        for r in 0..<rows {
            let xr = x + r * n
            var acc = SIMD8<Float>()
            var i = 0
            while i + 8 <= n { let v = Kernels.load8(xr, i); acc.addProduct(v, v); i += 8 }
            var ss = Double(acc.sum())
            while i < n { ss += Double(xr[i] * xr[i]); i += 1 }
            scales[r] = 1 / (Float(ss / Double(n)) + eps).squareRoot()
        }
        Kernels.rmsNorm(x, rows: rows, width: n, stride: n, weight: w, eps: eps, out: y, outStride: n)
        return scales
    }

    /// dx[R, n] (+)= s·(w ⊙ dy) − x · s³/n · Σ_i x_i w_i dy_i, from the saved x and s.
    public static func backward(dOut dy: UnsafePointer<Float>, input x: UnsafePointer<Float>, scales: [Float],
                                rows: Int, width n: Int, weight w: UnsafePointer<Float>,
                                dInput dx: UnsafeMutablePointer<Float>, accumulate: Bool) {
        for r in 0..<rows {
            let xr = x + r * n, gr = dy + r * n, dr = dx + r * n
            let s = scales[r]
            var acc = SIMD8<Float>()
            var i = 0
            while i + 8 <= n { acc.addProduct(Kernels.load8(xr, i) * Kernels.load8(w, i), Kernels.load8(gr, i)); i += 8 }
            var dot = acc.sum()
            while i < n { dot += xr[i] * w[i] * gr[i]; i += 1 }
            let c = s * s * s * dot / Float(n)
            i = 0
            while i + 8 <= n {
                var v = s * Kernels.load8(w, i) * Kernels.load8(gr, i) - c * Kernels.load8(xr, i)
                if accumulate { v += Kernels.load8(dr, i) }
                Kernels.store8(v, dr, i)
                i += 8
            }
            while i < n {
                let v = s * w[i] * gr[i] - c * xr[i]
                dr[i] = accumulate ? dr[i] + v : v
                i += 1
            }
        }
    }

    // Array conveniences (tests, small callers).

    /// y = RMSNorm(x) rows; returns (y [R, n], s [R]).
    public static func forward(_ x: [Float], rows: Int, weight: [Float], eps: Float) -> (y: [Float], scales: [Float]) {
        let n = weight.count
        precondition(x.count == rows * n)
        var y = [Float](repeating: 0, count: x.count)
        let s = x.withUnsafeBufferPointer { xp in weight.withUnsafeBufferPointer { wp in y.withUnsafeMutableBufferPointer { yp in
            forward(xp.baseAddress!, rows: rows, width: n, weight: wp.baseAddress!, eps: eps, out: yp.baseAddress!)
        } } }
        return (y, s)
    }

    /// dx [R, n] from dy [R, n].
    public static func backward(dOut dy: [Float], input x: [Float], scales: [Float], weight: [Float]) -> [Float] {
        let n = weight.count, rows = scales.count
        var dx = [Float](repeating: 0, count: x.count)
        dy.withUnsafeBufferPointer { g in x.withUnsafeBufferPointer { xp in weight.withUnsafeBufferPointer { wp in
            dx.withUnsafeMutableBufferPointer { d in
                backward(dOut: g.baseAddress!, input: xp.baseAddress!, scales: scales, rows: rows, width: n,
                         weight: wp.baseAddress!, dInput: d.baseAddress!, accumulate: false)
            } } } }
        return dx
    }
}
