// Gemma's gated MLP activation x = gelu_tanh(g) ⊙ u over rows of [g | u] (width 2F), forward and
// backward. gelu_tanh(g) = ½g(1 + tanh(c(g + 0.044715g³))), c = √(2/π);
// gelu'(g) = ½(1 + τ) + ½g(1 − τ²)·c(1 + 3·0.044715g²), τ = tanh(c(g + 0.044715g³)).

import Foundation

public enum GeluGLULayer {
    /// x[T, F] from gu[T, 2F] (the inference kernel).
    public static func forward(_ gu: UnsafePointer<Float>, rows t: Int, ffn f: Int, out x: UnsafeMutablePointer<Float>) {
        Kernels.geluGLU(gu, rows: t, ffn: f, out: x)
    }

    /// dgu[T, 2F] from dx[T, F] and the saved gu.
    public static func backward(dOut dx: UnsafePointer<Float>, input gu: UnsafePointer<Float>, rows t: Int, ffn f: Int,
                                dInput dgu: UnsafeMutablePointer<Float>) {
        let c = Float((2 / Double.pi).squareRoot())
        for r in 0..<t {
            let g = gu + r * 2 * f, u = g + f, d = dx + r * f
            let dg = dgu + r * 2 * f, du = dg + f
            for j in 0..<f {
                let gv = g[j]
                let tau = tanhf(c * (gv + 0.044715 * gv * gv * gv))
                let gelu = 0.5 * gv * (1 + tau)
                let dgelu = 0.5 * (1 + tau) + 0.5 * gv * (1 - tau * tau) * c * (1 + 3 * 0.044715 * gv * gv)
                dg[j] = d[j] * u[j] * dgelu
                du[j] = d[j] * gelu
            }
        }
    }
}
