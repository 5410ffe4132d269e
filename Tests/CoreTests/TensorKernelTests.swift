// The Float16 matrix kernels and the SIMD helpers against naive loops.

import Foundation
import Testing
import Core

@Suite struct TensorKernelTests {
    /// Odd sizes: rows not a multiple of 4 (kernel tail), cols not a multiple of 8 (SIMD tail).
    @Test(arguments: [(1, 8), (7, 13), (301, 640), (1027, 24)])
    func halfMatVecMatchesNaiveLoop(rows: Int, cols: Int) {
        var r = GemmaTestRandom(state: UInt64(rows * 1000 + cols))
        let m = HalfMatrix(rows: rows, cols: cols, values: r.values(rows * cols, 1))
        for n in [1, 3] {
            let x = r.values(n * cols, 1)
            for threads in [1, 2] {
                var y = [Float](repeating: .nan, count: n * rows)
                x.withUnsafeBufferPointer { xp in
                    y.withUnsafeMutableBufferPointer { m.matMulT(xp.baseAddress!, count: n, into: $0.baseAddress!, threads: threads) }
                }
                var worst = 0.0
                for j in 0..<n {
                    for i in 0..<rows {
                        var s = 0.0
                        for c in 0..<cols { s += Double(m.values[i * cols + c]) * Double(x[j * cols + c]) }
                        worst = max(worst, abs(Double(y[j * rows + i]) - s))
                    }
                }
                #expect(worst < 1e-4 * Double(cols).squareRoot(), "rows \(rows) cols \(cols) n \(n) threads \(threads): \(worst)")
            }
        }
        // Row access converts exactly.
        let row = m.row(rows - 1)
        #expect(row == (0..<cols).map { Float(m.values[(rows - 1) * cols + $0]) })
    }

    /// The k largest, largest first, ties to the lower index: the same as a full stable sort.
    @Test(arguments: [(1, 1), (10, 3), (1000, 17), (300, 300), (5, 9)]) func topIndices(n: Int, k: Int) {
        var r = GemmaTestRandom(state: UInt64(n * 31 + k))
        let x = (0..<n).map { _ in Float(Int(r.next() % 40)) - 20 }  // many ties
        let expected = Array(x.indices.sorted { x[$0] != x[$1] ? x[$0] > x[$1] : $0 < $1 }.prefix(k))
        #expect(x.withUnsafeBufferPointer { Kernels.topIndices($0.baseAddress!, count: n, k: k) } == expected)
    }

    @Test func halfMatrixRoundsToNearest() {
        let input: [Float] = [1, 1.0009766, 65504, -2.5, 0, 1e-8, 3.14159, -0.1, 1.0004883]
        let m = HalfMatrix(rows: 1, cols: 9, values: input)
        #expect(m.values == [1, 1.0009766, 65504, -2.5, 0, Float16(1e-8), Float16(3.14159), Float16(-0.1), 1]) // the last one is a tie: to even
    }

    @Test func simdExpAndGeluMatchFoundation() {
        var worstExp: Float = 0
        for i in 0..<2000 {
            let x = Float(i - 1000) * 0.087
            let v = Kernels.exp8(SIMD8(repeating: x))[0]
            worstExp = max(worstExp, abs(v - Foundation.exp(x)) / Foundation.exp(x))
        }
        #expect(worstExp < 1e-6)
        let n = 37
        let gu = (0..<(2 * n)).map { Float($0 - n) * 0.37 }
        var out = [Float](repeating: 0, count: n)
        gu.withUnsafeBufferPointer { g in out.withUnsafeMutableBufferPointer { Kernels.geluGLU(g.baseAddress!, rows: 1, ffn: n, out: $0.baseAddress!) } }
        for j in 0..<n {
            let g = Double(gu[j]), u = Double(gu[n + j])
            let ref = 0.5 * g * (1 + tanh((2 / Double.pi).squareRoot() * (g + 0.044715 * g * g * g))) * u
            #expect(abs(Double(out[j]) - ref) < 1e-5 * max(1, abs(ref)))
        }
    }

    /// BLAS.linear on one row (gemv), on few rows (one sgemm) and on enough work to be split
    /// over two threads by output columns, with and without accumulation.
    @Test(arguments: [(1, 200, 300), (3, 16, 8), (5, 200, 300), (37, 1000, 64)])
    func linearMatchesNaiveLoop(rows: Int, outputs: Int, inputs: Int) {
        var r = GemmaTestRandom(state: UInt64(rows * 7 + outputs))
        let x = r.values(rows * inputs, 1), w = r.values(outputs * inputs, 1), y0 = r.values(rows * outputs, 1)
        for accumulate in [false, true] {
            var y = y0
            x.withUnsafeBufferPointer { xp in
                w.withUnsafeBufferPointer { wp in
                    y.withUnsafeMutableBufferPointer { yp in
                        BLAS.linear(rows: rows, input: xp.baseAddress!, inputWidth: inputs, weight: wp.baseAddress!,
                                    outputWidth: outputs, output: yp.baseAddress!, accumulate: accumulate, threads: 2)
                    }
                }
            }
            var worst = 0.0
            for t in 0..<rows {
                for o in 0..<outputs {
                    var s = accumulate ? Double(y0[t * outputs + o]) : 0
                    for i in 0..<inputs { s += Double(x[t * inputs + i]) * Double(w[o * inputs + i]) }
                    worst = max(worst, abs(s - Double(y[t * outputs + o])))
                }
            }
            #expect(worst < 1e-3, "rows \(rows) outputs \(outputs) inputs \(inputs) accumulate \(accumulate): \(worst)")
        }
    }
}
