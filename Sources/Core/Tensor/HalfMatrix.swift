// A row-major Float16 matrix and its F16→F32 matrix-vector kernels (F16C `vcvtph2ps` + FMA
// via SIMD8). Used for Gemma's tied token embedding / output matrix [V, D], which in Float16
// takes half the memory (and half the memory traffic per decoded token) of Float32.

import Foundation

public final class HalfMatrix: @unchecked Sendable {
    /// Number of rows (e.g. V) and row length (e.g. D).
    public let rows: Int
    public let cols: Int
    /// Row-major values; `values[r * cols + c]` is element (r, c).
    public let values: [Float16]

    /// A matrix holding `values` (row-major, rows·cols of them).
    public init(rows: Int, cols: Int, values: [Float16]) {
        precondition(rows > 0 && cols > 0 && values.count == rows * cols,
                     "HalfMatrix: \(values.count) values for \(rows)×\(cols)")
        self.rows = rows
        self.cols = cols
        self.values = values
    }

    /// A matrix holding Float32 `values` rounded to nearest Float16.
    public convenience init(rows: Int, cols: Int, values: [Float]) {
        let n = values.count
        let half = [Float16](unsafeUninitializedCapacity: n) { dst, count in
            values.withUnsafeBufferPointer { src in
                var i = 0
                while i + 8 <= n {
                    let v = UnsafeRawPointer(src.baseAddress! + i).loadUnaligned(as: SIMD8<Float>.self)
                    UnsafeMutableRawPointer(dst.baseAddress! + i).storeBytes(of: SIMD8<Float16>(v), as: SIMD8<Float16>.self)
                    i += 8
                }
                while i < n { dst[i] = Float16(src[i]); i += 1 }
            }
            count = n
        }
        self.init(rows: rows, cols: cols, values: half)
    }

    /// Row r as Float32 into `out` (cols values).
    public func copyRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        precondition(r >= 0 && r < rows, "HalfMatrix row \(r) out of 0..<\(rows)")
        values.withUnsafeBufferPointer { all in
        let src = all.baseAddress! + r * cols
        var i = 0
        while i + 8 <= cols {
            let h = UnsafeRawPointer(src + i).loadUnaligned(as: SIMD8<Float16>.self)
            UnsafeMutableRawPointer(out + i).storeBytes(of: SIMD8<Float>(h), as: SIMD8<Float>.self)
            i += 8
        }
        while i < cols { out[i] = Float(src[i]); i += 1 }
        }
    }

    /// Row r as Float32.
    public func row(_ r: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: cols) { buf, n in
            copyRow(r, into: buf.baseAddress!)
            n = cols
        }
    }

    /// y[rows] = M[rows, cols] · x[cols], rows split over `threads` threads.
    public func matVec(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, threads: Int = 2) {
        matMulT(x, count: 1, into: y, threads: threads)
    }

    /// Y[n, rows] = X[n, cols] · Mᵀ: each of n input rows against every matrix row; the
    /// matrix is streamed from memory once for all n inputs. Rows split over `threads` threads.
    public func matMulT(_ x: UnsafePointer<Float>, count n: Int, into y: UnsafeMutablePointer<Float>, threads: Int = 2) {
        guard rows > 0, n > 0 else { return }
        let parts = max(1, min(threads, rows / 64))
        let per = (rows + parts - 1) / parts
        values.withUnsafeBufferPointer { all in
            let w = all.baseAddress!
            if parts == 1 {
                kernel(w, rowRange: 0..<rows, x: x, n: n, y: y)
            } else {
                let ws = SendablePointer(w), xs = SendablePointer(x), ys = SendablePointer(y)
                DispatchQueue.concurrentPerform(iterations: parts) { p in
                    let lo = p * per, hi = min(rows, lo + per)
                    if lo < hi { self.kernel(ws.pointer, rowRange: lo..<hi, x: xs.pointer, n: n, y: ys.pointer) }
                }
            }
        }
    }

    /// One matrix row at a time against each of the n inputs (the row stays in L1 across
    /// inputs). One row with two accumulators streams at memory speed (~30 GB/s here); a
    /// 4-row variant was measured ~40 % slower.
    private func kernel(_ storage: UnsafePointer<Float16>, rowRange: Range<Int>, x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>) {
        let c = cols
        if n > 1 {
            // Several inputs: convert each row once, then n Float32 dot products from L1.
            withUnsafeTemporaryAllocation(of: Float.self, capacity: c) { buf in
                let row = buf.baseAddress!
                for r in rowRange {
                    let w = storage + r * c
                    var i = 0
                    while i + 8 <= c {
                        Kernels.store8(SIMD8<Float>(UnsafeRawPointer(w + i).loadUnaligned(as: SIMD8<Float16>.self)), row, i)
                        i += 8
                    }
                    while i < c { row[i] = Float(w[i]); i += 1 }
                    for j in 0..<n { y[j * rows + r] = Kernels.dot(row, x + j * c, count: c) }
                }
            }
            return
        }
        let c16 = c & ~15
        for r in rowRange {
            let w = UnsafeRawPointer(storage + r * c)
            for j in 0..<n {
                let xj = UnsafeRawPointer(x + j * c)
                var a0 = SIMD8<Float>(), a1 = SIMD8<Float>()
                var i = 0
                while i < c16 {
                    a0.addProduct(SIMD8<Float>(w.loadUnaligned(fromByteOffset: 2 * i, as: SIMD8<Float16>.self)),
                                  xj.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self))
                    a1.addProduct(SIMD8<Float>(w.loadUnaligned(fromByteOffset: 2 * i + 16, as: SIMD8<Float16>.self)),
                                  xj.loadUnaligned(fromByteOffset: 4 * i + 32, as: SIMD8<Float>.self))
                    i += 16
                }
                if i + 8 <= c {
                    a0.addProduct(SIMD8<Float>(w.loadUnaligned(fromByteOffset: 2 * i, as: SIMD8<Float16>.self)),
                                  xj.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self))
                    i += 8
                }
                var s = (a0 + a1).sum()
                let wr = storage + r * c, xr = x + j * c
                while i < c { s += Float(wr[i]) * xr[i]; i += 1 }
                y[j * rows + r] = s
            }
        }
    }
}
