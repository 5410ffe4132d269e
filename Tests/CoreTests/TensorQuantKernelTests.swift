// llama.cpp-compatible numerics helpers: activation rounding (Q8_0 / Q8_K / F16) against
// hand-computed values, the exact decoding of GGUF blocks by Int8BlockMatrix, its products,
// ggml's exp, and the synthetic model in both numerics.

import Foundation
import Testing
import Core

@Suite struct TensorQuantKernelTests {
    /// Q8_0: d = amax/127 stored as F16, q = round-half-even(x · 127/amax), value = f16(d)·q.
    @Test func q8_0RoundingHandComputed() {
        // amax = 127 → id = 1, d = 1 exactly: the codes are the inputs rounded half to even.
        var x = [Float](repeating: 0, count: 32)
        x[0] = 127; x[1] = 2.5; x[2] = 3.5; x[3] = -2.5; x[4] = 0.49; x[5] = -126.6
        var y = [Float](repeating: .nan, count: 32)
        ActivationRounding.q8_0.apply(x, rows: 1, width: 32, stride: 32, out: &y, outStride: 32)
        #expect(Array(y[0..<6]) == [127, 2, 4, -2, 0, -127])
        #expect(y[6...].allSatisfy { $0 == 0 })

        // amax = 1.27: d = f16(1.27/127) = 0x211F = 0.01000213623046875, id = 127/1.27 ≈ 100.
        var x2 = [Float](repeating: 0, count: 32)
        x2[0] = 1.27; x2[1] = -0.635; x2[2] = 0.5; x2[31] = 0.004
        ActivationRounding.q8_0.apply(x2, rows: 1, width: 32, stride: 32, out: &y, outStride: 32)
        let d: Float = 0.01000213623046875
        #expect(Float(Float16(Float(1.27) / 127)) == d)
        #expect(y[0] == 127 * d && y[1] == -64 * d && y[2] == 50 * d && y[31] == 0)

        // An all-zero block stays zero.
        let zeros = [Float](repeating: 0, count: 32)
        ActivationRounding.q8_0.apply(zeros, rows: 1, width: 32, stride: 32, out: &y, outStride: 32)
        #expect(y.allSatisfy { $0 == 0 })
    }

    /// Q8_K: iscale = −127/m (m the element of largest |x|, with its sign), q = min(127,
    /// round-half-even(iscale·x)), value = (1/iscale)·q in Float32.
    @Test func q8_KRoundingHandComputed() {
        var x = [Float](repeating: 0, count: 256)
        x[0] = 1.25; x[1] = -2.5; x[2] = 0.03125; x[255] = 2.5 - 1.0 / 64
        // m = −2.5 → iscale = 50.8, d = 1/50.8.
        var y = [Float](repeating: .nan, count: 256)
        ActivationRounding.q8_K.apply(x, rows: 1, width: 256, stride: 256, out: &y, outStride: 256)
        let iscale: Float = -127 / -2.5
        let d = 1 / iscale
        // 1.25·50.8 = 63.5 → 64 (even); −2.5 → −127; 0.03125·50.8 = 1.5875 → 2; 2.484375·50.8 = 126.2 → 126.
        #expect(y[0] == 64 * d && y[1] == -127 * d && y[2] == 2 * d && y[255] == 126 * d)
        #expect(y[3..<255].allSatisfy { $0 == 0 })
    }

    @Test func f16RoundingAndWeightTypes() {
        let x: [Float] = [1 + 1.0 / 4096, 65504, 1e-8, -3.14159265]
        var y = [Float](repeating: 0, count: 4)
        ActivationRounding.f16.apply(x, rows: 1, width: 4, stride: 4, out: &y, outStride: 4)
        #expect(y == x.map { Float(Float16($0)) })
        #expect(ActivationRounding(weightType: .q5_0) == .q8_0)
        #expect(ActivationRounding(weightType: .q8_0) == .q8_0)
        #expect(ActivationRounding(weightType: .q4_K) == .q8_K)
        #expect(ActivationRounding(weightType: .q6_K) == .q8_K)
        #expect(ActivationRounding(weightType: .f16) == .f16)
        #expect(ActivationRounding(weightType: .f32) == .none)
    }

    /// Int8BlockMatrix holds Q8_0 / Q5_0 / Q4_K / Q6_K exactly, and its products agree with a
    /// Double product of the dequantised matrix.
    @Test(arguments: [GGMLType.q8_0, .q5_0, .q4_K, .q6_K])
    func int8BlockMatrixIsExact(type: GGMLType) throws {
        var r = GemmaTestRandom(state: 99)
        let rows = 24, cols = 512
        let values = r.values(rows * cols, 1)
        let bytes = try Quantizer.quantize(values, as: type)
        var reference = [Float](repeating: 0, count: rows * cols)
        try bytes.withUnsafeBytes { try Dequantizer.dequantize(type, from: $0.baseAddress!, count: rows * cols, into: &reference) }
        let m = try #require(bytes.withUnsafeBytes { Int8BlockMatrix(type: type, rows: rows, cols: cols, data: $0.baseAddress!) })
        #expect(m.dequantized() == reference)

        // Row counts that take each of ggml's kernels: Q4_K gemv (1, 2), 4-row gemm (4, 8) and
        // both (5, 9); Q6_K vec_dot (< 8) and tiled (8, 9).
        for n in [1, 2, 4, 5, 8, 9] {
        let x = r.values(n * cols, 1)
        var y = [Float](repeating: 0, count: n * rows)
        m.matMulT(x, count: n, into: &y, threads: 2)
        // The ggml-order products of rounded inputs.
        let rounding = ActivationRounding(weightType: type)
        var xr = [Float](repeating: 0, count: n * cols)
        rounding.apply(x, rows: n, width: cols, stride: cols, out: &xr, outStride: cols)
        var yq = [Float](repeating: 0, count: n * rows)
        if type == .q4_K || type == .q6_K { m.matMulTQ8_K(x, count: n, into: &yq) } else { m.matMulTQ8_0(x, count: n, into: &yq) }
        for j in 0..<n {
            for i in 0..<rows {
                var exact = 0.0, rounded = 0.0, scale = 0.0
                for k in 0..<cols {
                    exact += Double(reference[i * cols + k]) * Double(x[j * cols + k])
                    rounded += Double(reference[i * cols + k]) * Double(xr[j * cols + k])
                    scale += abs(Double(reference[i * cols + k]) * Double(x[j * cols + k]))
                }
                #expect(abs(Double(y[j * rows + i]) - exact) <= 1e-5 * scale)
                #expect(abs(Double(yq[j * rows + i]) - rounded) <= 1e-5 * scale, "\(type) n=\(n) row \(j)")
            }
        }
        }
    }

    /// ggml's reduction orders, on values where the order decides the result.
    @Test func ggmlReductionOrders() {
        // _mm512_reduce_add_ps: (i + i+8), then (+4), then (0+2) + (1+3).
        var v = SIMD16<Float>(repeating: 0)
        v[0] = 1e8; v[8] = -1e8; v[1] = 1; v[9] = 1; v[4] = 3
        #expect(Kernels.reduce16(v) == 5)
        v = SIMD16<Float>(repeating: 0)
        v[0] = 1e8; v[1] = 1; v[2] = -1e8  // (1e8 + −1e8) + 1 = 1, where left to right gives 0 (1e8 + 1 rounds back to 1e8)
        #expect(Kernels.reduce16(v) == 1)
        // vec_dot_f16: index i to lane i mod 16 of accumulator (i / 16) mod 4, counted from the
        // padded row's start, so the offset changes the grouping but not an exact sum.
        let a: [Float] = (0..<100).map { Float($0 % 7) - 3 }, b: [Float] = (0..<100).map { Float($0 % 5) }
        let exact = zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
        for offset in [0, 5, 16, 37] {
            #expect(Kernels.dotF16GGML(a, b, offset: offset, count: 100) == exact)
            #expect(Kernels.dotTinyBLAS(a, b, count: 100, phase: offset % 16) == exact)
        }
        // A cancellation the grouping decides: index 0 and 64 share a lane and accumulator.
        var p = [Float](repeating: 0, count: 80), q = [Float](repeating: 1, count: 80)
        p[0] = 1e8; p[64] = -1e8; p[16] = 1
        #expect(Kernels.dotF16GGML(p, q, offset: 0, count: 80) == 1)
        #expect(Kernels.dotF16GGML(p, q, offset: 16, count: 80) == 1)
    }

    /// ggml's exp reproduces expf closely (≈1.5 ulp) over the normal range, with 0 for −∞.
    @Test func ggmlExp() {
        var worst: Float = 0
        for i in 0..<1600 {
            let x = -Float(i) * 0.05
            let e = Kernels.expGGML8(SIMD8<Float>(repeating: x))[0]
            worst = max(worst, abs(e - Foundation.exp(x)) / Foundation.exp(x))
        }
        #expect(worst < 4e-7)
        #expect(Kernels.expGGML8(SIMD8<Float>(repeating: -.infinity))[0] == 0)
        // Past the normal range: subnormal results, 0 below 2^−192, +inf above 2^192.
        let tiny = Kernels.expGGML8(SIMD8<Float>(repeating: -95))[0]
        #expect(tiny > 0 && tiny < Float.leastNormalMagnitude && abs(tiny - Foundation.exp(-95 as Float)) <= Float.leastNonzeroMagnitude * 2)
        #expect(Kernels.expGGML8(SIMD8<Float>(repeating: -140))[0] == 0)
        #expect(Kernels.expGGML8(SIMD8<Float>(repeating: 100))[0] == .infinity)
        var row: [Float] = [1, 2, 3, -.infinity, 0.5]
        Kernels.softmaxGGML(&row, count: 5, phase: 3)
        #expect(abs(row.reduce(0, +) - 1) < 1e-6 && row[3] == 0)
    }

    /// The synthetic model (F32/F16 weights): `.float32` matches the Double reference tightly
    /// (GemmaSessionTests); `.llamaCppCompatible` adds llama.cpp's F16 KV cache, F16 attention
    /// operands, F16 GELU table and the F16 rounding of the logits operand (token_embd is F16).
    @Test func llamaCppNumericsOnSyntheticModel() throws {
        let synthetic = SyntheticGemma()
        var r = GemmaTestRandom(state: 5)
        let ids = (0..<20).map { _ in Int32(r.next() % UInt64(synthetic.vocab)) }
        let ref = synthetic.reference(ids.map(Int.init))
        let f32 = try synthetic.model(numerics: .float32).makeSession(capacity: 32).prefill(ids)
        let compatModel = try synthetic.model(numerics: .llamaCppCompatible)
        let compat = try compatModel.makeSession(capacity: 32).prefill(ids)
        #expect(gemmaMaxAbsDiff(f32, ref.logits[ids.count - 1]) < 1e-4)
        let d = gemmaMaxAbsDiff(compat, ref.logits[ids.count - 1])
        #expect(d > 0 && d < 2e-2, "llama.cpp numerics vs Double: \(d)")
        // Decode equals prefill in these numerics too (same rounding points).
        let s = compatModel.makeSession(capacity: 32)
        _ = try s.prefill(Array(ids.prefix(12)))
        var last: [Float] = []
        for id in ids.dropFirst(12) { last = try s.decode(id) }
        #expect(gemmaMaxAbsDiff(last, compat) < 2e-3)
    }
}
