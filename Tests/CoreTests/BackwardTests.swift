// Every backward piece of Backward/ against central finite differences, on random inputs and on
// the tiny synthetic Gemma (GemmaSyntheticModel.swift). Pieces are checked in Float with the
// loss L = Σ r ⊙ y accumulated in Double; the whole stack is checked against the independent
// Double reference forward of SyntheticGemma (finite differences of its loss in W_down).
// Tolerance: max |numeric − analytic| ≤ 1e-2 · max |analytic| + 1e-4 (Float pieces),
// ≤ 2e-3 · max |analytic| (stack vs the Double reference).

import Foundation
import Testing
import Core

/// Central differences of `loss` at the given indices of x.
private func numericGradient(_ x: [Float], indices: [Int], h: Float = 1e-3, loss: ([Float]) -> Double) -> [Double] {
    indices.map { i in
        var p = x, m = x
        p[i] += h; m[i] -= h
        return (loss(p) - loss(m)) / Double(p[i] - m[i])
    }
}

private func projection(_ y: [Float], _ r: [Float]) -> Double {
    zip(y, r).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
}

/// Checks analytic[indices] against numeric with the Float-piece tolerance.
private func expectClose(_ analytic: [Float], _ numeric: [Double], indices: [Int], _ what: String,
                         relative: Double = 1e-2, absolute: Double = 1e-4) {
    let scale = indices.map { abs(Double(analytic[$0])) }.max() ?? 0
    var worst = 0.0
    for (k, i) in indices.enumerated() { worst = max(worst, abs(numeric[k] - Double(analytic[i]))) }
    #expect(worst <= relative * scale + absolute, "\(what): max |Δ| \(worst) vs max |g| \(scale)")
}

@Suite struct BackwardTests {
    @Test func rmsNorm() {
        var r = GemmaTestRandom(state: 1)
        let rows = 3, n = 24
        let x = r.values(rows * n, 1.5), w = r.norms(n), proj = r.values(rows * n, 1)
        let (_, s) = RMSNormLayer.forward(x, rows: rows, weight: w, eps: 1e-6)
        let dx = RMSNormLayer.backward(dOut: proj, input: x, scales: s, weight: w)
        let idx = Array(0..<(rows * n))
        let num = numericGradient(x, indices: idx) { projection(RMSNormLayer.forward($0, rows: rows, weight: w, eps: 1e-6).y, proj) }
        expectClose(dx, num, indices: idx, "rmsnorm dx")
    }

    @Test func linear() {
        var r = GemmaTestRandom(state: 2)
        let t = 3, inW = 12, outW = 7
        let x = r.values(t * inW, 1), w = Matrix(rows: outW, cols: inW, values: r.values(outW * inW, 0.5))
        let proj = r.values(t * outW, 1)
        let (dx, dw) = LinearLayer.backward(dOut: proj, input: x, rows: t, weight: w)
        let ix = Array(0..<x.count), iw = Array(0..<w.values.count)
        expectClose(dx, numericGradient(x, indices: ix) { projection(LinearLayer.forward($0, rows: t, weight: w), proj) }, indices: ix, "linear dx")
        expectClose(dw.values, numericGradient(w.values, indices: iw) {
            projection(LinearLayer.forward(x, rows: t, weight: Matrix(rows: outW, cols: inW, values: $0)), proj)
        }, indices: iw, "linear dW")
    }

    @Test func rope() {
        var r = GemmaTestRandom(state: 3)
        let t = 5, heads = 3, e = 8
        let x = r.values(t * heads * e, 1), proj = r.values(t * heads * e, 1)
        let tables = RoPELayer.tables(rows: t, headDim: e, base: 10_000)
        func fwd(_ v: [Float]) -> [Float] {
            var y = v
            y.withUnsafeMutableBufferPointer { p in
                RoPELayer.forward(p.baseAddress!, rows: t, heads: heads, headDim: e, stride: heads * e, cos: tables.cos, sin: tables.sin)
            }
            return y
        }
        var g = proj
        g.withUnsafeMutableBufferPointer { p in
            RoPELayer.backward(p.baseAddress!, rows: t, heads: heads, headDim: e, stride: heads * e, cos: tables.cos, sin: tables.sin)
        }
        let idx = Array(0..<x.count)
        expectClose(g, numericGradient(x, indices: idx) { projection(fwd($0), proj) }, indices: idx, "rope dx")
    }

    /// GQA (H=4, K=2), causal, with and without a sliding window shorter than the sequence.
    @Test(arguments: [nil, 3] as [Int?]) func attention(window: Int?) {
        var r = GemmaTestRandom(state: 4)
        let t = 7, h = 4, k = 2, e = 8
        let shape = AttentionLayer.Shape(rows: t, heads: h, kvHeads: k, headDim: e, window: window, scale: 1 / Float(e).squareRoot())
        let q = r.values(t * h * e, 1.5), kk = r.values(t * k * e, 1.5), v = r.values(t * k * e, 1), proj = r.values(t * h * e, 1)
        func fwd(_ q: [Float], _ kk: [Float], _ v: [Float]) -> (y: [Float], p: [Float]) {
            var o = [Float](repeating: 0, count: t * h * e)
            let p = o.withUnsafeMutableBufferPointer { op in
                AttentionLayer.forward(q: q, qStride: h * e, k: kk, kStride: k * e, v: v, vStride: k * e, shape: shape, out: op.baseAddress!)
            }
            return (o, p)
        }
        let probs = fwd(q, kk, v).p
        var dq = [Float](repeating: 0, count: q.count), dk = [Float](repeating: 0, count: kk.count), dv = dk
        dq.withUnsafeMutableBufferPointer { a in dk.withUnsafeMutableBufferPointer { b in dv.withUnsafeMutableBufferPointer { c in
            AttentionLayer.backward(dOut: proj, q: q, qStride: h * e, k: kk, kStride: k * e, v: v, vStride: k * e, probs: probs,
                                    shape: shape, dq: a.baseAddress!, dk: b.baseAddress!, dv: c.baseAddress!)
        } } }
        // The mask: with a window, key 0 is invisible to the last query.
        if let window { #expect(probs[(0 * t + (t - 1)) * t + 0] == 0 && t - 1 >= window) }
        expectClose(dq, numericGradient(q, indices: Array(q.indices)) { projection(fwd($0, kk, v).y, proj) }, indices: Array(q.indices), "attention dq")
        expectClose(dk, numericGradient(kk, indices: Array(kk.indices)) { projection(fwd(q, $0, v).y, proj) }, indices: Array(kk.indices), "attention dk")
        expectClose(dv, numericGradient(v, indices: Array(v.indices)) { projection(fwd(q, kk, $0).y, proj) }, indices: Array(v.indices), "attention dv")
    }

    @Test func geluGLU() {
        var r = GemmaTestRandom(state: 5)
        let t = 2, f = 20
        let gu = r.values(t * 2 * f, 3), proj = r.values(t * f, 1)
        func fwd(_ v: [Float]) -> [Float] {
            var x = [Float](repeating: 0, count: t * f)
            x.withUnsafeMutableBufferPointer { GeluGLULayer.forward(v, rows: t, ffn: f, out: $0.baseAddress!) }
            return x
        }
        var dgu = [Float](repeating: 0, count: gu.count)
        dgu.withUnsafeMutableBufferPointer { GeluGLULayer.backward(dOut: proj, input: gu, rows: t, ffn: f, dInput: $0.baseAddress!) }
        let idx = Array(gu.indices)
        expectClose(dgu, numericGradient(gu, indices: idx) { projection(fwd($0), proj) }, indices: idx, "gelu-glu dgu")
    }

    /// Y = G · M for the F16 matrix equals the plain sum.
    @Test func halfMatrixTransposedProduct() {
        var r = GemmaTestRandom(state: 6)
        let rows = 3000, cols = 20, n = 3
        let m = HalfMatrix(rows: rows, cols: cols, values: r.values(rows * cols, 1))
        let g = r.values(n * rows, 1)
        var y = [Float](repeating: 0, count: n * cols)
        y.withUnsafeMutableBufferPointer { m.matMul(g, count: n, into: $0.baseAddress!, threads: 2) }
        var worst = 0.0
        for j in 0..<n {
            for c in 0..<cols {
                var s = 0.0
                for v in 0..<rows { s += Double(g[j * rows + v]) * Double(Float(m.values[v * cols + c])) }
                worst = max(worst, abs(s - Double(y[j * cols + c])))
            }
        }
        #expect(worst < 1e-3, "max |Δ| \(worst)")
    }

    /// Final norm + tied logits + cross-entropy at selected rows: dh against finite differences.
    @Test func tiedOutputCrossEntropy() throws {
        let model = try SyntheticGemma().model()
        var r = GemmaTestRandom(state: 7)
        let t = 4, d = model.config.hiddenSize
        let h = r.values(t * d, 2)
        let targets = [TargetToken(row: 1, token: 3), TargetToken(row: 3, token: 17)]
        func loss(_ h: [Float]) -> Double {
            Double(TiedOutputCrossEntropy.forward(hidden: h, width: d, targets: targets, model: model).0.loss)
        }
        let saved = TiedOutputCrossEntropy.forward(hidden: h, width: d, targets: targets, model: model).1
        var dh = [Float](repeating: 0, count: t * d)
        dh.withUnsafeMutableBufferPointer {
            TiedOutputCrossEntropy.backward(saved, targets: targets, rows: t, width: d, model: model, dHidden: $0.baseAddress!)
        }
        let idx = Array(h.indices)
        expectClose(dh, numericGradient(h, indices: idx, h: 1e-2, loss: loss), indices: idx, "tied CE dh", absolute: 2e-4)
        #expect(dh[0..<d].allSatisfy { $0 == 0 }, "rows without a target get no gradient")
    }

    /// The head over a shortlist: over every token it is the full head; over a subset it is the
    /// cross-entropy of the softmax over those tokens (a lower loss), and its dh matches finite
    /// differences of that loss.
    @Test func shortlistedTiedOutputCrossEntropy() throws {
        let model = try SyntheticGemma().model()
        var r = GemmaTestRandom(state: 8)
        let t = 4, d = model.config.hiddenSize, v = model.config.vocabSize
        let h = r.values(t * d, 2)
        let targets = [TargetToken(row: 1, token: 3), TargetToken(row: 3, token: 17)]
        func run(_ h: [Float], _ s: TiedOutputCrossEntropy.Shortlist?) -> (TiedOutputCrossEntropy.Result, [Float]) {
            let (res, saved) = TiedOutputCrossEntropy.forward(hidden: h, width: d, targets: targets, model: model, shortlist: s)
            var dh = [Float](repeating: 0, count: t * d)
            dh.withUnsafeMutableBufferPointer {
                TiedOutputCrossEntropy.backward(saved, targets: targets, rows: t, width: d, model: model, dHidden: $0.baseAddress!)
            }
            return (res, dh)
        }
        let (full, dhFull) = run(h, nil)
        let (every, dhEvery) = run(h, TiedOutputCrossEntropy.Shortlist(tokens: (0..<Int32(v)).reversed(), model: model))
        #expect(abs(every.loss - full.loss) < 1e-5 && every.argmaxCorrect == full.argmaxCorrect)
        #expect(zip(dhEvery, dhFull).allSatisfy { abs($0 - $1) < 1e-6 })

        let some = TiedOutputCrossEntropy.Shortlist(tokens: [3, 17, 5, 40, 3, 22], model: model)
        #expect(some.tokens == [3, 5, 17, 22, 40])
        let (part, dh) = run(h, some)
        #expect(part.loss < full.loss, "fewer terms in the partition")
        let idx = Array(h.indices)
        let num = numericGradient(h, indices: idx, h: 1e-2) { Double(run($0, some).0.loss) }
        expectClose(dh, num, indices: idx, "shortlisted CE dh", absolute: 2e-4)
    }

    /// A shortlist of a full pass: the targets and each target row's k most probable tokens.
    @Test func shortlistOfFullPass() throws {
        let model = try SyntheticGemma().model()
        var r = GemmaTestRandom(state: 9)
        let t = 3, d = model.config.hiddenSize, v = model.config.vocabSize
        let h = r.values(t * d, 2)
        let targets = [TargetToken(row: 0, token: 7), TargetToken(row: 2, token: 9)]
        let saved = TiedOutputCrossEntropy.forward(hidden: h, width: d, targets: targets, model: model).1
        let s = TiedOutputCrossEntropy.Shortlist.top(saved, perRow: 4, targets: targets, model: model)
        var expected: Set<Int32> = [7, 9]
        let logits = RMSNormLayer.forward(targets.flatMap { Array(h[$0.row * d ..< ($0.row + 1) * d]) }, rows: 2,
                                          weight: model.outputNorm, eps: model.config.rmsNormEps).0
        for i in 0..<2 {
            let z = (0..<v).map { tok in (0..<d).reduce(Float(0)) { $0 + logits[i * d + $1] * model.embedding.row(tok)[$1] } }
            expected.formUnion(z.indices.sorted { z[$0] > z[$1] }.prefix(4).map { Int32($0) })
        }
        #expect(Set(s.tokens) == expected)
    }

    /// One whole block (sliding window shorter than the sequence): dh0 against finite differences.
    @Test(arguments: [1, 5]) func block(layer: Int) throws {
        let model = try SyntheticGemma().model()
        let c = model.config
        var r = GemmaTestRandom(state: 8)
        let t = 7, d = c.hiddenSize
        let h0 = r.values(t * d, 2), proj = r.values(t * d, 1)
        let rope = RoPELayer.tables(rows: t, headDim: c.headDim, base: c.ropeBase(layer: layer))
        let (_, saved) = BlockLayer.forward(h0, rows: t, layer: layer, model: model, rope: rope)
        let dy = BlockLayer.backwardToDownOutput(proj, saved: saved, layer: layer, model: model)
        let dh0 = BlockLayer.backward(dh2: proj, dDownOutput: dy, saved: saved, layer: layer, model: model, rope: rope)
        let idx = Array(h0.indices)
        let num = numericGradient(h0, indices: idx, h: 1e-2) { projection(BlockLayer.forward($0, rows: t, layer: layer, model: model, rope: rope).h2, proj) }
        expectClose(dh0, num, indices: idx, "block \(layer) dh0", relative: 2e-2, absolute: 1e-3)
    }

    /// The whole stack from layer L's down projection to the loss: dW_down = dyᵀ·x against finite
    /// differences of the independent Double reference's loss; and the training loss equals the
    /// inference forward's and the reference's.
    @Test func stackAgainstDoubleReference() throws {
        let synthetic = SyntheticGemma()
        let model = try synthetic.model()
        let c = model.config, layer = 2
        let ids: [Int32] = [2, 11, 7, 30, 4, 19, 8, 44, 13, 25]
        let targets = (6..<10).map { TargetToken(row: $0 - 1, token: ids[$0]) }
        let stack = try DownProjectionTrainingStack(model: model, layer: layer, tokens: ids, targets: targets)
        let y = stack.baseDownOutput()
        let (result, dy) = stack.lossAndGradient(downOutput: y)

        // Loss: training forward vs inference forward vs Double reference.
        func referenceLoss(_ w: [Float]) -> Double {
            let ref = synthetic.reference(ids.map(Int.init), downOverride: (layer, w))
            return targets.reduce(0.0) { acc, tk in
                let z = ref.logits[tk.row], m = z.max()!
                return acc + (log(z.reduce(0) { $0 + exp($1 - m) }) + m - z[Int(tk.token)])
            } / Double(targets.count)
        }
        let session = model.makeSession(capacity: 16)
        let logits = try session.prefill(ids, logitRows: targets.map(\.row))
        var inference = 0.0
        for (i, tk) in targets.enumerated() {
            let z = logits[i].map(Double.init), m = z.max()!
            inference += log(z.reduce(0) { $0 + exp($1 - m) }) + m - z[Int(tk.token)]
        }
        inference /= Double(targets.count)
        let w0 = synthetic.layers[layer].down
        #expect(abs(Double(result.loss) - inference) < 1e-4, "training \(result.loss) vs inference \(inference)")
        #expect(abs(Double(result.loss) - referenceLoss(w0)) < 1e-4)
        #expect(abs(Double(stack.loss(downOutput: y).loss) - Double(result.loss)) < 1e-6)

        // Gradient: dW = dyᵀ x [D, F] vs central differences of the reference in W_down.
        var dw = [Float](repeating: 0, count: c.hiddenSize * c.ffnSize)
        dy.withUnsafeBufferPointer { g in stack.ffnInput.withUnsafeBufferPointer { x in dw.withUnsafeMutableBufferPointer { o in
            LinearLayer.backwardWeight(dOut: g.baseAddress!, input: x.baseAddress!, rows: ids.count, inputWidth: c.ffnSize,
                                       outputWidth: c.hiddenSize, dWeight: o.baseAddress!)
        } } }
        var r = GemmaTestRandom(state: 9)
        let idx = (0..<40).map { _ in Int(r.next() % UInt64(dw.count)) }
        let num = numericGradient(w0, indices: idx, h: 1e-3, loss: referenceLoss)
        expectClose(dw, num, indices: idx, "stack dW_down", relative: 2e-3, absolute: 1e-5)
    }
}
