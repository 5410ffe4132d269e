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

    /// y ← y + a · x.
    public static func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int) {
        var i = 0
        while i + 8 <= n { store8(load8(y, i) + a * load8(x, i), y, i); i += 8 }
        while i < n { y[i] += a * x[i]; i += 1 }
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
            // Σx² accumulated in Double in element order, as ggml's rms_norm does (the f32
            // products rounded first); mean and scale in Float32 as there.
            var ss = 0.0
            for i in 0..<n { ss += Double(xr[i] * xr[i]) }
            let s = 1 / (Float(ss / Double(n)) + eps).squareRoot()
            var i = 0
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

    /// As `geluGLU`, with ggml's CPU GELU (GGML_GELU_FP16): the gate is rounded to Float16
    /// and gelu of that value, itself rounded to Float16, is used (ggml's 64K-entry table,
    /// computed here instead of looked up); gate ≤ −10 gives 0, gate ≥ 10 gives gate · up.
    public static func geluGLUTable(_ gu: UnsafePointer<Float>, rows: Int, ffn f: Int, out: UnsafeMutablePointer<Float>) {
        geluTable.withUnsafeBufferPointer { table in
            for r in 0..<rows {
                let g = gu + r * 2 * f, u = g + f, y = out + r * f
                for i in 0..<f {
                    let gv = g[i]
                    if gv <= -10 { y[i] = 0 } else if gv >= 10 { y[i] = gv * u[i] } else {
                        y[i] = table[Int(Float16(gv).bitPattern)] * u[i]
                    }
                }
            }
        }
    }

    /// gelu of every Float16 value, rounded to Float16, as ggml fills `ggml_table_gelu_f16`:
    /// 0.5·x·(1 + tanhf(√(2/π)·x·(1 + 0.044715·x·x))) in Float32 (the inner 1 + a·x·x as
    /// one FMA, as a C compiler contracts it with FMA enabled).
    static let geluTable: [Float] = (0 ..< 65536).map { bits in
        let x = Float(Float16(bitPattern: UInt16(bits)))
        let sqrt2OverPi: Float = 0.79788456080286535587989211986876
        let inner: Float = 0.044715 * x
        let t = Foundation.tanh(sqrt2OverPi * x * (1 as Float).addingProduct(inner, x))
        return Float(Float16(0.5 * x * (1 + t)))
    }

    /// exp(x) for eight lanes exactly as ggml's AVX-512 `ggml_v_expf` computes it (the build
    /// llama.cpp's fixtures come from): range reduction by ln 2 (n = round(x·log2 e),
    /// b = x − n·ln2 in two FMA steps), e^b ≈ ((c5·b + c4)·b² + (c3·b + c2))·b² + (c1·b + 1) in
    /// FMA steps, then scaled by 2ⁿ (`vscalefps`, one rounding); |n| > 192 gives 0 or +inf.
    @inline(__always)
    public static func expGGML8(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let r = SIMD8<Float>(repeating: 0x1.8p23)
        let z = r.addingProduct(x, SIMD8<Float>(repeating: 0x1.715476p+0))
        let n = z - r
        let b = x.addingProduct(-n, SIMD8<Float>(repeating: 0x1.62e4p-1)).addingProduct(-n, SIMD8<Float>(repeating: 0x1.7f7d1cp-20))
        let u = b * b
        let p0 = SIMD8<Float>(repeating: 1).addingProduct(b, SIMD8<Float>(repeating: 0x1.ffffecp-1))
        let p2 = SIMD8<Float>(repeating: 0x1.fffdb6p-2).addingProduct(b, SIMD8<Float>(repeating: 0x1.555e66p-3))
        let p4 = SIMD8<Float>(repeating: 0x1.573e2ep-5).addingProduct(b, SIMD8<Float>(repeating: 0x1.0e4020p-7))
        let j = p0.addingProduct(p2.addingProduct(p4, u), u)
        let an = abs8f(n)
        if !any((n .< -126) .| (n .> 127) .| (n .!= n)) {
            // 2ⁿ is a normal Float: n sits in the low mantissa bits of z (z = 1.5·2²³ + n).
            let e = unsafeBitCast((unsafeBitCast(z, to: SIMD8<UInt32>.self) &<< 23) &+ SIMD8<UInt32>(repeating: 0x3F80_0000),
                                  to: SIMD8<Float>.self)
            return j * e
        }
        var out = SIMD8<Float>()
        for l in 0..<8 {
            if an[l] > 192 {
                out[l] = n[l] <= 0 ? 0 : .infinity
            } else if n[l].isNaN {
                out[l] = .nan
            } else {
                // j·2ⁿ rounded once: scale by an exact normal power first, the rest in one step.
                let k = Int(n[l]), first = k > 0 ? k - 100 : k + 100
                out[l] = (j[l] * Float(sign: .plus, exponent: first, significand: 1)) * Float(sign: .plus, exponent: k - first, significand: 1)
            }
        }
        return out
    }

    @inline(__always)
    static func abs8f(_ v: SIMD8<Float>) -> SIMD8<Float> {
        unsafeBitCast(unsafeBitCast(v, to: SIMD8<UInt32>.self) & SIMD8<UInt32>(repeating: 0x7FFF_FFFF), to: SIMD8<Float>.self)
    }

    /// The sum of 16 lanes in the order of `_mm512_reduce_add_ps`: lanes i + (i+8), then
    /// + (i+4), then (0+2) + (1+3).
    @inline(__always)
    public static func reduce16(_ v: SIMD16<Float>) -> Float {
        let t1 = v.lowHalf + v.highHalf
        let t3 = t1.lowHalf + t1.highHalf
        return (t3[0] + t3[2]) + (t3[1] + t3[3])
    }

    /// Softmax of x[0..<n] as ggml's CPU soft_max computes it (AVX-512 build): exponentials by
    /// `expGGML8` in groups of 16 aligned to KV cache cells (x[0] is cell `phase` of its group;
    /// the other lanes of a group are masked cells contributing 0), each group's sum reduced
    /// as `reduce16` in Float32 and accumulated in Double, then scaled by the Float32 of 1/sum.
    public static func softmaxGGML(_ x: UnsafeMutablePointer<Float>, count n: Int, phase: Int = 0) {
        guard n > 0 else { return }
        var m = -Float.infinity
        for i in 0..<n where x[i] > m { m = x[i] }
        var sum = 0.0
        var g = -(phase & 15)
        let mv = SIMD8<Float>(repeating: m)
        while g < n {
            var lanes = SIMD16<Float>(repeating: -Float.infinity)
            for l in 0..<16 where g + l >= 0 && g + l < n { lanes[l] = x[g + l] }
            var v = SIMD16<Float>(lowHalf: expGGML8(lanes.lowHalf - mv), highHalf: expGGML8(lanes.highHalf - mv))
            for l in 0..<16 {
                if g + l >= 0 && g + l < n { x[g + l] = v[l] } else { v[l] = 0 }
            }
            sum += Double(reduce16(v))
            g += 16
        }
        scale(x, count: n, by: Float(1 / sum))
    }

    /// Σ a[i]·b[i] over n values in llamafile tinyBLAS's AVX-512 order (ggml's F16×F16
    /// products of the attention, more than one query row): one 16-lane FMA accumulator over
    /// groups of 16 aligned so that a[0] is lane `phase` (lanes outside 0..<n count 0), reduced
    /// as `reduce16`.
    @inline(__always)
    public static func dotTinyBLAS(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count n: Int, phase: Int = 0) -> Float {
        var acc = SIMD16<Float>()
        var g = -(phase & 15)
        while g < n {
            if g >= 0 && g + 16 <= n {
                acc.addProduct(UnsafeRawPointer(a + g).loadUnaligned(as: SIMD16<Float>.self),
                               UnsafeRawPointer(b + g).loadUnaligned(as: SIMD16<Float>.self))
            } else {
                var va = SIMD16<Float>(), vb = SIMD16<Float>()
                for l in 0..<16 where g + l >= 0 && g + l < n { va[l] = a[g + l]; vb[l] = b[g + l] }
                acc.addProduct(va, vb)
            }
            g += 16
        }
        return reduce16(acc)
    }

    /// Σ a[i]·b[i] over `count` values in the order of ggml's AVX-512 `vec_dot_f16` over a
    /// zero-padded row in which a[0], b[0] sit at index `offset` (the attention of a one-token
    /// evaluation: q·k over the head dimension with offset 0, probabilities·V over the KV cells
    /// from the first visible one): index i goes to lane i mod 16 of accumulator (i / 16) mod 4;
    /// then acc0+acc2, acc1+acc3, their sum, reduced as `reduce16`. The padding counts 0, which
    /// leaves every accumulator unchanged. F16 operands: each product is exact in Float.
    public static func dotF16GGML(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, offset: Int, count n: Int) -> Float {
        var acc = (SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>())
        let lo = offset, hi = offset + n
        var g = lo & ~15
        while g < hi {
            var prod: SIMD16<Float>
            if g >= lo && g + 16 <= hi {
                prod = UnsafeRawPointer(a + (g - lo)).loadUnaligned(as: SIMD16<Float>.self)
                    * UnsafeRawPointer(b + (g - lo)).loadUnaligned(as: SIMD16<Float>.self)
            } else {
                prod = SIMD16<Float>()
                for l in 0..<16 where g + l >= lo && g + l < hi { prod[l] = a[g + l - lo] * b[g + l - lo] }
            }
            switch (g >> 4) & 3 {
            case 0: acc.0 += prod
            case 1: acc.1 += prod
            case 2: acc.2 += prod
            default: acc.3 += prod
            }
            g += 16
        }
        return reduce16((acc.0 + acc.2) + (acc.1 + acc.3))
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

    /// `rope` as ggml's compiled `rotate_pairs` evaluates it (GNU C++ contracts a·c − b·s to
    /// fma(a, c, −b·s) and a·s + b·c to fma(a, s, b·c)).
    @inline(__always)
    public static func ropeFMA(_ v: UnsafeMutablePointer<Float>, half: Int, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        let hi = v + half
        var i = 0
        while i + 8 <= half {
            let a = load8(v, i), b = load8(hi, i), c = load8(cos, i), s = load8(sin, i)
            store8((-(b * s)).addingProduct(a, c), v, i)
            store8((b * c).addingProduct(a, s), hi, i)
            i += 8
        }
        while i < half {
            let a = v[i], b = hi[i]
            v[i] = (-(b * sin[i])).addingProduct(a, cos[i])
            hi[i] = (b * cos[i]).addingProduct(a, sin[i])
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

    /// Indices of the k largest elements, largest first (ties: the lower index first). O(n log k):
    /// a min-heap of the best k seen so far.
    public static func topIndices(_ x: UnsafePointer<Float>, count n: Int, k: Int) -> [Int] {
        let k = min(k, n)
        guard k > 0 else { return [] }
        // heap[0] is the worst of the kept: the smallest value, the higher index on ties.
        func worse(_ a: Int, _ b: Int) -> Bool { x[a] != x[b] ? x[a] < x[b] : a > b }
        var heap: [Int] = []
        heap.reserveCapacity(k)
        func siftDown(_ start: Int) {
            var i = start
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < heap.count && worse(heap[l], heap[m]) { m = l }
                if r < heap.count && worse(heap[r], heap[m]) { m = r }
                if m == i { return }
                heap.swapAt(i, m)
                i = m
            }
        }
        for i in 0..<n {
            if heap.count < k {
                heap.append(i)
                var c = heap.count - 1
                while c > 0 && worse(heap[c], heap[(c - 1) / 2]) { heap.swapAt(c, (c - 1) / 2); c = (c - 1) / 2 }
            } else if worse(heap[0], i) {
                heap[0] = i
                siftDown(0)
            }
        }
        return heap.sorted { worse($1, $0) }
    }
}
