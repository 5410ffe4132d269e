// Rotary position embedding, NEOX pairs (i, i + E/2), forward and backward. The angle tables
// are built exactly as the inference pass builds them (ggml's θ_i = p · base^(−2i/E),
// accumulated in Float32), so training and inference agree bit for bit in the rotation.
// Backward is the inverse rotation (a rotation's Jacobian is the rotation itself).

import Foundation

public enum RoPELayer {
    /// cos and sin of the angles of positions `p0 ..< p0 + T`: [T, E/2] each.
    public static func tables(p0: Int = 0, rows t: Int, headDim e: Int, base: Float) -> (cos: [Float], sin: [Float]) {
        let half = e / 2
        let thetaScale = powf(base, -2 / Float(e))
        var c = [Float](repeating: 0, count: t * half), s = c
        for r in 0..<t {
            var theta = Float(p0 + r)
            for i in 0..<half {
                c[r * half + i] = Foundation.cos(theta)
                s[r * half + i] = Foundation.sin(theta)
                theta *= thetaScale
            }
        }
        return (c, s)
    }

    /// Rotates `heads` head vectors of width E in each of T rows (row stride `stride`) in place.
    public static func forward(_ x: UnsafeMutablePointer<Float>, rows t: Int, heads: Int, headDim e: Int, stride: Int,
                               cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        let half = e / 2
        for r in 0..<t {
            for h in 0..<heads {
                Kernels.rope(x + r * stride + h * e, half: half, cos: cos + r * half, sin: sin + r * half)
            }
        }
    }

    /// dx = Rᵀ dy in place on the gradient rows (same layout as `forward`).
    public static func backward(_ g: UnsafeMutablePointer<Float>, rows t: Int, heads: Int, headDim e: Int, stride: Int,
                                cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        let half = e / 2
        for r in 0..<t {
            let cr = cos + r * half, sr = sin + r * half
            for h in 0..<heads {
                let lo = g + r * stride + h * e, hi = lo + half
                var i = 0
                while i + 8 <= half {
                    let a = Kernels.load8(lo, i), b = Kernels.load8(hi, i), c = Kernels.load8(cr, i), s = Kernels.load8(sr, i)
                    Kernels.store8(a * c + b * s, lo, i)
                    Kernels.store8(b * c - a * s, hi, i)
                    i += 8
                }
                while i < half {
                    let a = lo[i], b = hi[i]
                    lo[i] = a * cr[i] + b * sr[i]
                    hi[i] = b * cr[i] - a * sr[i]
                    i += 1
                }
            }
        }
    }
}
