// The transposed F16 product Y[n, cols] = G[n, rows] · M[rows, cols], i.e. y_j = Σ_v g_{j,v} · M_v:
// the gradient of logits = h · Eᵀ with respect to h for the tied Float16 embedding E [V, D].
// Exact (every row contributes; nothing is skipped). M is streamed once for all n inputs; rows
// are split over threads, each with its own [n, cols] accumulator, summed at the end.

import Foundation

extension HalfMatrix {
    /// Y[n, cols] = G[n, rows] · M (G row-major with row length `rows`).
    public func matMul(_ g: UnsafePointer<Float>, count n: Int, into y: UnsafeMutablePointer<Float>, threads: Int = 2) {
        let parts = max(1, min(threads, rows / 1024))
        let per = (rows + parts - 1) / parts
        let c = cols
        var partials = [Float](repeating: 0, count: parts * n * c)
        values.withUnsafeBufferPointer { all in
            partials.withUnsafeMutableBufferPointer { pb in
                let ws = SendablePointer(all.baseAddress!), gs = SendablePointer(g), ps = SendablePointer(pb.baseAddress!)
                let body: @Sendable (Int) -> Void = { p in
                    let lo = p * per, hi = min(self.rows, lo + per)
                    guard lo < hi else { return }
                    let acc = ps.pointer + p * n * c
                    let w = ws.pointer, gp = gs.pointer, rowsCount = self.rows
                    for v in lo..<hi {
                        let wr = UnsafeRawPointer(w + v * c)
                        var i = 0
                        while i + 8 <= c {
                            let wv = SIMD8<Float>(wr.loadUnaligned(fromByteOffset: 2 * i, as: SIMD8<Float16>.self))
                            for j in 0..<n {
                                let a = acc + j * c + i
                                Kernels.store8(Kernels.load8(a, 0) + gp[j * rowsCount + v] * wv, a, 0)
                            }
                            i += 8
                        }
                        while i < c {
                            let wv = Float(w[v * c + i])
                            for j in 0..<n { acc[j * c + i] += gp[j * rowsCount + v] * wv }
                            i += 1
                        }
                    }
                }
                if parts == 1 { body(0) } else { DispatchQueue.concurrentPerform(iterations: parts, execute: body) }
            }
        }
        y.update(repeating: 0, count: n * c)
        partials.withUnsafeBufferPointer { pb in
            for p in 0..<parts { Kernels.add(pb.baseAddress! + p * n * c, into: y, count: n * c) }
        }
    }
}
