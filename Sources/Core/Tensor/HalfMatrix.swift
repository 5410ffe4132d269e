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
        // Split on multiples of 4 rows so that every part but the last runs the 4-row kernel only.
        let per = ((rows + parts - 1) / parts + 3) / 4 * 4
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

    private func kernel(_ storage: UnsafePointer<Float16>, rowRange: Range<Int>, x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>) {
        let c = cols
        var r = rowRange.lowerBound
        while r + 4 <= rowRange.upperBound {
            let w0 = UnsafeRawPointer(storage + r * c)
            let w1 = w0 + 2 * c, w2 = w1 + 2 * c, w3 = w2 + 2 * c
            for j in 0..<n {
                let xj = x + j * c
                var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
                var i = 0
                while i + 8 <= c {
                    let xv = UnsafeRawPointer(xj + i).loadUnaligned(as: SIMD8<Float>.self)
                    a0.addProduct(SIMD8<Float>(w0.loadUnaligned(fromByteOffset: 2 * i, as: SIMD8<Float16>.self)), xv)
                    a1.addProduct(SIMD8<Float>(w1.loadUnaligned(fromByteOffset: 2 * i, as: SIMD8<Float16>.self)), xv)
                    a2.addProduct(SIMD8<Float>(w2.loadUnaligned(fromByteOffset: 2 * i, as: SIMD8<Float16>.self)), xv)
                    a3.addProduct(SIMD8<Float>(w3.loadUnaligned(fromByteOffset: 2 * i, as: SIMD8<Float16>.self)), xv)
                    i += 8
                }
                var s0 = a0.sum(), s1 = a1.sum(), s2 = a2.sum(), s3 = a3.sum()
                while i < c {
                    let xv = xj[i]
                    s0 += Float(storage[r * c + i]) * xv
                    s1 += Float(storage[(r + 1) * c + i]) * xv
                    s2 += Float(storage[(r + 2) * c + i]) * xv
                    s3 += Float(storage[(r + 3) * c + i]) * xv
                    i += 1
                }
                let yj = y + j * rows + r
                yj[0] = s0; yj[1] = s1; yj[2] = s2; yj[3] = s3
            }
            r += 4
        }
        while r < rowRange.upperBound {
            let w = storage + r * c
            for j in 0..<n {
                let xj = x + j * c
                var a = SIMD8<Float>()
                var i = 0
                while i + 8 <= c {
                    a.addProduct(SIMD8<Float>(UnsafeRawPointer(w + i).loadUnaligned(as: SIMD8<Float16>.self)),
                                 UnsafeRawPointer(xj + i).loadUnaligned(as: SIMD8<Float>.self))
                    i += 8
                }
                var s = a.sum()
                while i < c { s += Float(w[i]) * xj[i]; i += 1 }
                y[j * rows + r] = s
            }
            r += 1
        }
    }
}
