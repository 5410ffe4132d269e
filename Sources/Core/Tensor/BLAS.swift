// Every BLAS call of Core goes through this file: row-major, single precision, unit strides
// for vectors. Matrices are addressed by a base pointer and a leading dimension (the distance
// in floats between the starts of two consecutive rows), so sub-blocks of bigger buffers
// (one attention head's columns, the rows of a KV cache) are passed without copying.

import COpenBLAS
import Dispatch

public enum BLAS {
    /// Sets the number of OpenBLAS worker threads (process-wide).
    public static func setThreads(_ count: Int) {
        openblas_set_num_threads(Int32(max(1, count)))
    }

    /// The number of OpenBLAS worker threads in force.
    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// C[m, n] = alpha · A[m, k] · B[n, k]ᵀ + beta · C  ("x · Wᵀ": B holds one output per row).
    @inline(__always)
    public static func gemmNT(
        m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k),
                    alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// C[m, n] = alpha · A[m, k] · B[k, n] + beta · C.
    @inline(__always)
    public static func gemmNN(
        m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k),
                    alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// C[m, n] = alpha · A[k, m]ᵀ · B[k, n] + beta · C  (e.g. a weight gradient dyᵀ · x).
    @inline(__always)
    public static func gemmTN(
        m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k),
                    alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// y[m] = alpha · A[m, n] · x[n] + beta · y.
    @inline(__always)
    public static func gemv(
        m: Int, n: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        x: UnsafePointer<Float>, beta: Float = 0, y: UnsafeMutablePointer<Float>
    ) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(m), Int32(n), alpha, a, Int32(lda),
                    x, 1, beta, y, 1)
    }

    /// y[n] = alpha · A[m, n]ᵀ · x[m] + beta · y.
    @inline(__always)
    public static func gemvT(
        m: Int, n: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        x: UnsafePointer<Float>, beta: Float = 0, y: UnsafeMutablePointer<Float>
    ) {
        cblas_sgemv(CblasRowMajor, CblasTrans, Int32(m), Int32(n), alpha, a, Int32(lda),
                    x, 1, beta, y, 1)
    }

    /// "Linear layer": Y[t, out] = X[t, in] · W[out, in]ᵀ (+ Y if `accumulate`). One row uses a
    /// matrix-vector product on the calling thread (memory-bound: one thread saturates the
    /// bus); several rows use sgemm with the output columns split over `threads` threads, each
    /// running single-threaded OpenBLAS (OpenBLAS's own threads spin between calls and would
    /// compete with ours on a 2-core machine; see `GemmaModel.init`).
    public static func linear(
        rows t: Int, input x: UnsafePointer<Float>, inputWidth: Int,
        weight w: UnsafePointer<Float>, outputWidth: Int,
        output y: UnsafeMutablePointer<Float>, accumulate: Bool = false, threads: Int = 1
    ) {
        let beta: Float = accumulate ? 1 : 0
        if t == 1 {
            gemv(m: outputWidth, n: inputWidth, a: w, lda: inputWidth, x: x, beta: beta, y: y)
            return
        }
        let (parts, per) = linearSplit(rows: t, inputWidth: inputWidth, outputWidth: outputWidth, threads: threads)
        let xs = SendablePointer(x), ws = SendablePointer(w), ys = SendablePointer(y)
        let tile = linearTile(rows: t, per: per)
        let body: @Sendable (Int) -> Void = { p in
            let lo = p * per, hi = min(outputWidth, lo + per)
            for c in stride(from: lo, to: hi, by: tile) {
                gemmNT(m: t, n: min(hi, c + tile) - c, k: inputWidth, a: xs.pointer, lda: inputWidth,
                       b: ws.pointer + c * inputWidth, ldb: inputWidth, beta: beta, c: ys.pointer + c, ldc: outputWidth)
            }
        }
        Parallel.forEach(parts, body)
    }

    /// Output columns per sgemm call within a part of `linear`'s split. With few input rows the
    /// weights are most of the work, and the quantised path (`QuantizedMatrix.matMulTDequantized`)
    /// decodes them tile by tile into a buffer that stays in L2 rather than a whole part at once
    /// (a short prompt's prefill was mostly memory traffic); the dense path calls sgemm on the
    /// same tiles, so both give the same bits.
    static func linearTile(rows t: Int, per: Int) -> Int { t <= 64 ? min(per, 128) : per }

    /// How `linear` splits a product over threads: `parts` blocks of `per` outputs (a multiple
    /// of 16; the last block may be shorter), one part when the product is small.
    static func linearSplit(rows t: Int, inputWidth: Int, outputWidth: Int, threads: Int) -> (parts: Int, per: Int) {
        let parts = max(1, min(threads, max(1, outputWidth / 64), max(1, t * outputWidth * inputWidth / (1 << 18))))
        return (parts, parts == 1 ? outputWidth : ((outputWidth + parts - 1) / parts + 15) / 16 * 16)
    }
}
