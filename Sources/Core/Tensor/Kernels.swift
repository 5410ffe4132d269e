// Element-wise and row-wise Float32 kernels of the forward pass (SIMD8, AVX2/FMA under
// `-target-cpu haswell`). Everything here works on raw row-major buffers; none allocates.
// Public so that tests and other targets can check them; the model code is their user.

import Foundation

/// Wraps a pointer so it can be captured by `DispatchQueue.concurrentPerform` closures; the
/// caller guarantees that concurrent iterations touch disjoint memory.
struct SendablePointer<T>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<T>
    init(_ pointer: UnsafeMutablePointer<T>) { self.pointer = pointer }
    init(_ pointer: UnsafePointer<T>) { self.pointer = UnsafeMutablePointer(mutating: pointer) }
}

public enum Kernels {
    @inline(__always)
    public static func load8(_ p: UnsafePointer<Float>, _ i: Int) -> SIMD8<Float> {
        UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
    }

    @inline(__always)
    public static func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, _ i: Int) {
        UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: SIMD8<Float>.self)
    }

    /// exp(x) for eight lanes (Cephes single-precision polynomial, ≈1–2 ulp on [-87, 88];
    /// inputs below -87 flush to 0, above 88 saturate at exp(88)).
    @inline(__always)
    public static func exp8(_ input: SIMD8<Float>) -> SIMD8<Float> {
        let lo = SIMD8<Float>(repeating: -87), hi = SIMD8<Float>(repeating: 88)
        var x = input.replacing(with: lo, where: input .< lo)
        x = x.replacing(with: hi, where: x .> hi)
        let fx = (x * 1.44269504088896341 + 0.5).rounded(.down)
        x = x - fx * 0.693359375
        x = x + fx * 2.12194440e-4
        let z = x * x
        var y = SIMD8<Float>(repeating: 1.9875691500e-4)
        y = y * x + 1.3981999507e-3
        y = y * x + 8.3334519073e-3
        y = y * x + 4.1665795894e-2
        y = y * x + 1.6666665459e-1
        y = y * x + 5.0000001201e-1
        y = y * z + x + 1
        // 2^fx via the exponent bits: fx + 1.5·2^23 puts the integer in the low mantissa bits.
        let magic = SIMD8<Float>(repeating: 12582912.0)
        let n = unsafeBitCast(fx + magic, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self)
        let scale = unsafeBitCast((n &+ 127) &<< 23, to: SIMD8<Float>.self)
        return y * scale
    }

    /// x ← x · alpha.
    public static func scale(_ x: UnsafeMutablePointer<Float>, count n: Int, by alpha: Float) {
        var i = 0
        while i + 8 <= n { store8(load8(x, i) * alpha, x, i); i += 8 }
        while i < n { x[i] *= alpha; i += 1 }
    }

    /// y ← y + x.
    public static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count n: Int) {
        var i = 0
        while i + 8 <= n { store8(load8(y, i) + load8(x, i), y, i); i += 8 }
        while i < n { y[i] += x[i]; i += 1 }
    }

    /// Dot product of two length-n vectors.
    @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count n: Int) -> Float {
        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= n {
            acc0.addProduct(load8(a, i), load8(b, i))
            acc1.addProduct(load8(a, i + 8), load8(b, i + 8))
            i += 16
        }
        while i + 8 <= n { acc0.addProduct(load8(a, i), load8(b, i)); i += 8 }
        var s = (acc0 + acc1).sum()
        while i < n { s += a[i] * b[i]; i += 1 }
        return s
    }

    /// RMSNorm of each of `rows` rows of width n (row stride `stride`), in place or into `out`:
    /// out = x / sqrt(mean(x²) + eps) ⊙ weight. (Gemma's GGUF weights already include the +1.)
    public static func rmsNorm(
        _ x: UnsafePointer<Float>, rows: Int, width n: Int, stride: Int,
        weight: UnsafePointer<Float>, eps: Float,
        out: UnsafeMutablePointer<Float>, outStride: Int
    ) {
        for r in 0..<rows {
            let xr = x + r * stride, yr = out + r * outStride
            var acc = SIMD8<Float>()
            var i = 0
            while i + 8 <= n { let v = load8(xr, i); acc.addProduct(v, v); i += 8 }
            var ss = Double(acc.sum())
            while i < n { ss += Double(xr[i] * xr[i]); i += 1 }
            let s = 1 / (Float(ss / Double(n)) + eps).squareRoot()
            i = 0
            while i + 8 <= n { store8(load8(xr, i) * s * load8(weight, i), yr, i); i += 8 }
            while i < n { yr[i] = xr[i] * s * weight[i]; i += 1 }
        }
    }

    /// out[r, j] = gelu_tanh(gu[r, j]) · gu[r, F + j] for rows of [gate | up] (width 2F).
    /// gelu_tanh(g) = ½g(1 + tanh(√(2/π)(g + 0.044715g³))) = g / (1 + exp(−2√(2/π)(g + 0.044715g³))).
    public static func geluGLU(_ gu: UnsafePointer<Float>, rows: Int, ffn f: Int, out: UnsafeMutablePointer<Float>) {
        let c = Float(2 * (2 / Double.pi).squareRoot())
        for r in 0..<rows {
            let g = gu + r * 2 * f, u = g + f, y = out + r * f
            var i = 0
            while i + 8 <= f {
                let gv = load8(g, i)
                let e = exp8(-c * (gv + 0.044715 * gv * gv * gv))
                store8(gv / (1 + e) * load8(u, i), y, i)
                i += 8
            }
            while i < f {
                let gv = g[i]
                y[i] = gv / (1 + Foundation.exp(-c * (gv + 0.044715 * gv * gv * gv))) * u[i]
                i += 1
            }
        }
    }

    /// In-place softmax of x[0..<n].
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count n: Int) {
        guard n > 0 else { return }
        var m = -Float.infinity
        for i in 0..<n where x[i] > m { m = x[i] }
        var i = 0
        var acc = SIMD8<Float>()
        let mv = SIMD8<Float>(repeating: m)
        while i + 8 <= n { let e = exp8(load8(x, i) - mv); store8(e, x, i); acc += e; i += 8 }
        var sum = acc.sum()
        while i < n { let e = Foundation.exp(x[i] - m); x[i] = e; sum += e; i += 1 }
        scale(x, count: n, by: 1 / sum)
    }

    /// Rotates one head vector in place, NEOX style (pairs (i, i + E/2)), with the
    /// precomputed cos/sin of its position (length E/2 each).
    @inline(__always)
    public static func rope(_ v: UnsafeMutablePointer<Float>, half: Int, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        let hi = v + half
        var i = 0
        while i + 8 <= half {
            let a = load8(v, i), b = load8(hi, i), c = load8(cos, i), s = load8(sin, i)
            store8(a * c - b * s, v, i)
            store8(a * s + b * c, hi, i)
            i += 8
        }
        while i < half {
            let a = v[i], b = hi[i]
            v[i] = a * cos[i] - b * sin[i]
            hi[i] = a * sin[i] + b * cos[i]
            i += 1
        }
    }

    /// Index of the largest element (first one on ties).
    public static func argmax(_ x: UnsafePointer<Float>, count n: Int) -> Int {
        var best = 0
        var bv = x[0]
        for i in 1..<max(n, 1) where x[i] > bv { bv = x[i]; best = i }
        return best
    }
}
