// llama.cpp-compatible rounding of activations (our own implementation of the numerics of
// ggml's CPU backend, not its code).
//
// For a matrix product with a quantised weight, ggml first converts each f32 activation row
// to the weight type's `vec_dot_type` and then takes integer dot products:
//   Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 IQ4_NL MXFP4 → Q8_0 blocks of 32 (Q8_1 for Q4_1/Q5_1: same values)
//   Q2_K … Q6_K IQ* (256-blocks)           → Q8_K blocks of 256
//   F16 → F16, BF16 → BF16, F32 → F32 (no rounding).
// The integer dot product Σ_b d_w·d_a·Σ q_w·q_a equals the f32 dot product of the dequantised
// weight with the dequantised activation up to float summation order (for Q8_0 activations
// every per-block sum Σ q_w·(d_a·q_a) is even exact in f32: d_a is an f16 and |Σ q_w·q_a| < 2^24;
// for the K-quants ggml sums d·sc·Σq·q8 and dmin·m·bsums per sub-block, which is
// Σ (d·sc·q − dmin·m)·(d8·q8) regrouped). So emulating ggml = rounding the activation row to
// the dequantised values d_a·q_a here, then an ordinary f32 product with the dequantised weight.
//
// Q8_0 (x86 AVX2 `quantize_row_q8_0`, also `quantize_mat_q8_0_4x8` of the repacked kernels):
//   amax = max|x| over the block; d = amax / 127 stored as f16; id = 127 / amax (0 if amax = 0,
//   from amax, not from the rounded d); q = round-half-to-even(x · id); value = f16(d) · q.
// Q8_K (`quantize_row_q8_K_ref`; the 4-row packer of the repacked Q4_K gemm differs only in
// the sign of iscale when +amax and −amax both occur, see `Int8BlockMatrix.matMulTQ8_K`):
//   m = the element of largest |x| (with its sign); iscale = −127 / m; q = min(127,
//   nearest-even(iscale · x)); d = 1 / iscale kept in f32; value = d · q. (amax = 0 → all 0.)
// F16: value = f16(x), round to nearest even (F16C).

/// How an activation row is rounded before a product with a weight of some ggml type.
public enum ActivationRounding: Sendable, Equatable {
    /// Float32 weights (or the `.float32` numerics): no rounding.
    case none
    /// Every value to the nearest Float16.
    case f16
    /// Q8_0 blocks of 32.
    case q8_0
    /// Q8_K blocks of 256.
    case q8_K

    /// The rounding ggml's CPU backend applies to the f32 operand of a product with a weight
    /// stored as `type` (its `vec_dot_type`).
    public init(weightType type: GGMLType) {
        switch type {
        case .f32, .f64, .i8, .i16, .i32, .i64: self = .none
        case .f16: self = .f16
        case .bf16: self = .none  // BF16 rounding is not emulated (no such weights in our files)
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1, .iq4_nl, .mxfp4: self = .q8_0
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K,
             .iq2_xxs, .iq2_xs, .iq3_xxs, .iq1_s, .iq3_s, .iq2_s, .iq4_xs, .iq1_m, .tq1_0, .tq2_0:
            self = .q8_K
        }
    }

    /// Values per rounding block (1 for f16 / none).
    public var blockSize: Int {
        switch self {
        case .none, .f16: return 1
        case .q8_0: return 32
        case .q8_K: return 256
        }
    }

    /// Rounds `rows` rows of `width` values (row stride `stride`) from `x` into `out`
    /// (row stride `outStride`; in place is allowed). `width` must be a multiple of `blockSize`.
    public func apply(_ x: UnsafePointer<Float>, rows: Int, width: Int, stride: Int,
                      out: UnsafeMutablePointer<Float>, outStride: Int) {
        for r in 0..<rows {
            let src = x + r * stride, dst = out + r * outStride
            switch self {
            case .none:
                if UnsafePointer(dst) != src { dst.update(from: src, count: width) }
            case .f16:
                ActivationRounding.roundF16(src, count: width, into: dst)
            case .q8_0:
                precondition(width % 32 == 0, "Q8_0 rounding of a row of \(width)")
                var b = 0
                while b < width { ActivationRounding.roundQ8_0Block(src + b, into: dst + b); b += 32 }
            case .q8_K:
                precondition(width % 256 == 0, "Q8_K rounding of a row of \(width)")
                var b = 0
                while b < width { ActivationRounding.roundQ8_KBlock(src + b, into: dst + b); b += 256 }
            }
        }
    }

    /// In place on a contiguous [rows, width] buffer.
    @inline(__always)
    public func apply(_ x: UnsafeMutablePointer<Float>, rows: Int, width: Int) {
        if self == .none { return }
        apply(x, rows: rows, width: width, stride: width, out: x, outStride: width)
    }

    /// y = f16(x) for n values.
    public static func roundF16(_ x: UnsafePointer<Float>, count n: Int, into y: UnsafeMutablePointer<Float>) {
        var i = 0
        while i + 8 <= n {
            Kernels.store8(SIMD8<Float>(SIMD8<Float16>(Kernels.load8(x, i))), y, i)
            i += 8
        }
        while i < n { y[i] = Float(Float16(x[i])); i += 1 }
    }

    /// One Q8_0 block: 32 values.
    @inline(__always)
    public static func roundQ8_0Block(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        let v0 = Kernels.load8(x, 0), v1 = Kernels.load8(x, 8), v2 = Kernels.load8(x, 16), v3 = Kernels.load8(x, 24)
        let m = pointwiseMax(pointwiseMax(Kernels.abs8f(v0), Kernels.abs8f(v1)), pointwiseMax(Kernels.abs8f(v2), Kernels.abs8f(v3))).max()
        let id: Float = m != 0 ? 127 / m : 0
        let d = Float(Float16(m / 127))
        Kernels.store8((v0 * id).rounded(.toNearestOrEven) * d, y, 0)
        Kernels.store8((v1 * id).rounded(.toNearestOrEven) * d, y, 8)
        Kernels.store8((v2 * id).rounded(.toNearestOrEven) * d, y, 16)
        Kernels.store8((v3 * id).rounded(.toNearestOrEven) * d, y, 24)
    }

    /// One Q8_K block: 256 values.
    public static func roundQ8_KBlock(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        var amax: Float = 0, maxv: Float = 0
        for j in 0..<256 {
            let ax = abs(x[j])
            if ax > amax { amax = ax; maxv = x[j] }
        }
        if amax == 0 {
            y.update(repeating: 0, count: 256)
            return
        }
        let iscale = -127 / maxv
        let d = 1 / iscale
        let iv = SIMD8<Float>(repeating: iscale), top = SIMD8<Float>(repeating: 127)
        var j = 0
        while j < 256 {
            let q = pointwiseMin((Kernels.load8(x, j) * iv).rounded(.toNearestOrEven), top)
            Kernels.store8(q * d, y, j)
            j += 8
        }
    }
}
