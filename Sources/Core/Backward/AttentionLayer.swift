// Causal (optionally sliding-window) grouped-query attention, forward and backward:
//   o_{t,h} = Σ_j P_{h,t,j} v_{j,g},  P_{h,t,·} = softmax_j(scale · q_{t,h} · k_{j,g}),  g = h / (H/K),
// over visible keys j ∈ [max(0, t−W+1), t] (W = window; all of 0…t on global layers).
// Forward saves P [H, T, T] (zero outside the mask); backward is the standard softmax-attention
// gradient (llm.c `attention_backward`), with dk, dv summed over the H/K query heads of a group.

import Foundation

public enum AttentionLayer {
    public struct Shape: Sendable {
        public var rows: Int, heads: Int, kvHeads: Int, headDim: Int
        /// Sliding window W, or nil for global attention.
        public var window: Int?
        public var scale: Float
        public init(rows: Int, heads: Int, kvHeads: Int, headDim: Int, window: Int?, scale: Float) {
            self.rows = rows; self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim
            self.window = window; self.scale = scale
        }
        func first(_ t: Int) -> Int { window.map { max(0, t - $0 + 1) } ?? 0 }
    }

    /// q [T, H·E] (row stride qs), k, v [T, K·E] (row strides ks, vs) → o [T, H·E]; returns P [H, T, T].
    public static func forward(q: UnsafePointer<Float>, qStride qs: Int, k: UnsafePointer<Float>, kStride ks: Int,
                               v: UnsafePointer<Float>, vStride vs: Int, shape: Shape,
                               out o: UnsafeMutablePointer<Float>) -> [Float] {
        let t = shape.rows, e = shape.headDim, hE = shape.heads * e, group = shape.heads / shape.kvHeads
        var probs = [Float](repeating: 0, count: shape.heads * t * t)
        o.update(repeating: 0, count: t * hE)
        probs.withUnsafeMutableBufferPointer { pp in
            let p = pp.baseAddress!
            for h in 0..<shape.heads {
                let g = h / group
                for i in 0..<t {
                    let row = p + (h * t + i) * t
                    let lo = shape.first(i)
                    let qi = q + i * qs + h * e
                    for j in lo...i { row[j] = shape.scale * Kernels.dot(qi, k + j * ks + g * e, count: e) }
                    Kernels.softmax(row + lo, count: i - lo + 1)
                    let oi = o + i * hE + h * e
                    for j in lo...i { axpy(row[j], v + j * vs + g * e, oi, e) }
                }
            }
        }
        return probs
    }

    /// From do [T, H·E] and the saved q, k, v, P: dq [T, H·E], dk, dv [T, K·E] (dense, overwritten).
    public static func backward(dOut dout: UnsafePointer<Float>, q: UnsafePointer<Float>, qStride qs: Int,
                                k: UnsafePointer<Float>, kStride ks: Int, v: UnsafePointer<Float>, vStride vs: Int,
                                probs: [Float], shape: Shape,
                                dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>) {
        let t = shape.rows, e = shape.headDim, hE = shape.heads * e, kE = shape.kvHeads * e
        let group = shape.heads / shape.kvHeads
        dq.update(repeating: 0, count: t * hE)
        dk.update(repeating: 0, count: t * kE)
        dv.update(repeating: 0, count: t * kE)
        var dp = [Float](repeating: 0, count: t)
        probs.withUnsafeBufferPointer { pp in
            for h in 0..<shape.heads {
                let g = h / group
                for i in 0..<t {
                    let row = pp.baseAddress! + (h * t + i) * t
                    let lo = shape.first(i)
                    let doi = dout + i * hE + h * e
                    // dP_ij = do_i · v_j;  dv_j += P_ij do_i.
                    var sum: Float = 0
                    for j in lo...i {
                        dp[j] = Kernels.dot(doi, v + j * vs + g * e, count: e)
                        sum += row[j] * dp[j]
                        axpy(row[j], doi, dv + j * kE + g * e, e)
                    }
                    // ds_ij = P_ij (dP_ij − Σ P dP); dq_i += scale ds_ij k_j; dk_j += scale ds_ij q_i.
                    let qi = q + i * qs + h * e, dqi = dq + i * hE + h * e
                    for j in lo...i {
                        let ds = shape.scale * row[j] * (dp[j] - sum)
                        axpy(ds, k + j * ks + g * e, dqi, e)
                        axpy(ds, qi, dk + j * kE + g * e, e)
                    }
                }
            }
        }
    }

    /// y[0..<n] += a · x[0..<n].
    @inline(__always)
    static func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        let av = SIMD8<Float>(repeating: a)
        var i = 0
        while i + 8 <= n { Kernels.store8(Kernels.load8(y, i) + av * Kernels.load8(x, i), y, i); i += 8 }
        while i < n { y[i] += a * x[i]; i += 1 }
    }
}
