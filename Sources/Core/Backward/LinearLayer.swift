// A bias-free linear layer y = x · Wᵀ, W [out, in] (the GGUF layout), forward and backward:
// dx = dy · W and, for a trained weight, dW = dyᵀ · x. Reference: llm.c `matmul_forward/backward`.

import Foundation

public enum LinearLayer {
    /// y[T, out] = x[T, in] · W[out, in]ᵀ.
    public static func forward(_ x: UnsafePointer<Float>, rows t: Int, inputWidth: Int,
                               weight w: UnsafePointer<Float>, outputWidth: Int, out y: UnsafeMutablePointer<Float>) {
        BLAS.linear(rows: t, input: x, inputWidth: inputWidth, weight: w, outputWidth: outputWidth, output: y)
    }

    /// dx[T, in] (+)= dy[T, out] · W[out, in].
    public static func backwardInput(dOut dy: UnsafePointer<Float>, rows t: Int, inputWidth: Int,
                                     weight w: UnsafePointer<Float>, outputWidth: Int,
                                     dInput dx: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        BLAS.gemmNN(m: t, n: inputWidth, k: outputWidth, a: dy, lda: outputWidth, b: w, ldb: inputWidth,
                    beta: accumulate ? 1 : 0, c: dx, ldc: inputWidth)
    }

    /// dW[out, in] (+)= dy[T, out]ᵀ · x[T, in].
    public static func backwardWeight(dOut dy: UnsafePointer<Float>, input x: UnsafePointer<Float>, rows t: Int,
                                      inputWidth: Int, outputWidth: Int,
                                      dWeight dw: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        BLAS.gemmTN(m: outputWidth, n: inputWidth, k: t, a: dy, lda: outputWidth, b: x, ldb: inputWidth,
                    beta: accumulate ? 1 : 0, c: dw, ldc: inputWidth)
    }

    // Array conveniences (tests).

    public static func forward(_ x: [Float], rows t: Int, weight: Matrix) -> [Float] {
        var y = [Float](repeating: 0, count: t * weight.rows)
        x.withUnsafeBufferPointer { xp in weight.values.withUnsafeBufferPointer { wp in y.withUnsafeMutableBufferPointer { yp in
            forward(xp.baseAddress!, rows: t, inputWidth: weight.cols, weight: wp.baseAddress!, outputWidth: weight.rows, out: yp.baseAddress!)
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
