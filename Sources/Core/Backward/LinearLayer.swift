// A bias-free linear layer y = x · Wᵀ, W [out, in] (the GGUF layout), forward and backward:
// dx = dy · W and, for a trained weight, dW = dyᵀ · x. Reference: llm.c `matmul_forward/backward`.

import Foundation

public enum LinearLayer {
    /// y[T, out] = x[T, in] · W[out, in]ᵀ.
    public static func forward(_ x: UnsafePointer<Float>, rows t: Int, inputWidth: Int,
                               weight w: UnsafePointer<Float>, outputWidth: Int, out y: UnsafeMutablePointer<Float>,
                               threads: Int = 1) {
        BLAS.linear(rows: t, input: x, inputWidth: inputWidth, weight: w, outputWidth: outputWidth, output: y, threads: threads)
    }

    /// dx[T, in] (+)= dy[T, out] · W[out, in]; the columns of dx are split over `threads`.
    public static func backwardInput(dOut dy: UnsafePointer<Float>, rows t: Int, inputWidth: Int,
                                     weight w: UnsafePointer<Float>, outputWidth: Int,
                                     dInput dx: UnsafeMutablePointer<Float>, accumulate: Bool = false, threads: Int = 1) {
        let beta: Float = accumulate ? 1 : 0
        let parts = min(threads, max(1, inputWidth / 64), max(1, t * outputWidth * inputWidth / (1 << 18)))
        if parts <= 1 {
            BLAS.gemmNN(m: t, n: inputWidth, k: outputWidth, a: dy, lda: outputWidth, b: w, ldb: inputWidth,
                        beta: beta, c: dx, ldc: inputWidth)
            return
        }
        let per = ((inputWidth + parts - 1) / parts + 15) / 16 * 16
        let gs = SendablePointer(dy), ws = SendablePointer(w), xs = SendablePointer(dx)
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            let lo = p * per, hi = min(inputWidth, lo + per)
            guard lo < hi else { return }
            BLAS.gemmNN(m: t, n: hi - lo, k: outputWidth, a: gs.pointer, lda: outputWidth, b: ws.pointer + lo, ldb: inputWidth,
                        beta: beta, c: xs.pointer + lo, ldc: inputWidth)
        }
    }

    /// dW[out, in] (+)= dy[T, out]ᵀ · x[T, in].
    public static func backwardWeight(dOut dy: UnsafePointer<Float>, input x: UnsafePointer<Float>, rows t: Int,
                                      inputWidth: Int, outputWidth: Int,
                                      dWeight dw: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        BLAS.gemmTN(m: outputWidth, n: inputWidth, k: t, a: dy, lda: outputWidth, b: x, ldb: inputWidth,
                    beta: accumulate ? 1 : 0, c: dw, ldc: inputWidth)
    }

    // Array conveniences (tests).

    public static func forward(_ x: [Float], rows t: Int, weight: Matrix, threads: Int = 1) -> [Float] {
        var y = [Float](repeating: 0, count: t * weight.rows)
        x.withUnsafeBufferPointer { xp in weight.values.withUnsafeBufferPointer { wp in y.withUnsafeMutableBufferPointer { yp in
            forward(xp.baseAddress!, rows: t, inputWidth: weight.cols, weight: wp.baseAddress!, outputWidth: weight.rows,
                    out: yp.baseAddress!, threads: threads)
        } } }
        return y
    }

    /// (dx [T, in], dW [out, in]).
    public static func backward(dOut dy: [Float], input x: [Float], rows t: Int, weight: Matrix) -> (dx: [Float], dW: Matrix) {
        var dx = [Float](repeating: 0, count: t * weight.cols)
        var dw = Matrix(rows: weight.rows, cols: weight.cols)
        dy.withUnsafeBufferPointer { g in x.withUnsafeBufferPointer { xp in weight.values.withUnsafeBufferPointer { wp in
            dx.withUnsafeMutableBufferPointer { d in
                backwardInput(dOut: g.baseAddress!, rows: t, inputWidth: weight.cols, weight: wp.baseAddress!,
                              outputWidth: weight.rows, dInput: d.baseAddress!)
            }
            dw.values.withUnsafeMutableBufferPointer { d in
                backwardWeight(dOut: g.baseAddress!, input: xp.baseAddress!, rows: t, inputWidth: weight.cols,
                               outputWidth: weight.rows, dWeight: d.baseAddress!)
            } } } }
        return (dx, dw)
    }
}
