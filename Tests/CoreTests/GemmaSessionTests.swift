// Hermetic tests of the Gemma forward pass on a tiny synthetic model (D=16, F=32, H=4, K=1,
// E=8, 6 blocks so layer 5 is global, V=50, sliding window 4).

import Foundation
import Testing
import Core

@Suite struct GemmaSessionTests {
    let synthetic = SyntheticGemma()

    /// A fixed token sequence longer than the window and than one attention tile (64 rows).
    func sequence(_ n: Int, seed: UInt64 = 7) -> [Int32] {
        var r = GemmaTestRandom(state: seed)
        return (0..<n).map { _ in Int32(r.next() % UInt64(synthetic.vocab)) }
    }

    @Test func configIsReadFromMetadata() throws {
        let c = try synthetic.model().config
        #expect(c.blockCount == 6 && c.hiddenSize == 16 && c.ffnSize == 32 && c.vocabSize == 50)
        #expect(c.headCount == 4 && c.kvHeadCount == 1 && c.headDim == 8 && c.slidingWindow == 4)
        #expect(c.ropeBaseLocal == 10_000 && c.ropeBaseGlobal == 1_000_000)
        #expect(c.queryScale == 1 / Float(8).squareRoot())
        #expect((0..<6).filter { c.isGlobal(layer: $0) } == [5])
    }

    @Test func matchesNaiveReference() throws {
        let model = try synthetic.model()
        let ids = sequence(70)
        let ref = synthetic.reference(ids.map(Int.init))
        let session = model.makeSession(capacity: 80)
        let rows = Array(0..<ids.count)
        let logits = try session.prefill(ids, logitRows: rows)
        var worst = 0.0
        for t in rows { worst = max(worst, gemmaMaxAbsDiff(logits[t], ref.logits[t])) }
        #expect(worst < 1e-4, "max |Δlogit| vs the Double reference: \(worst)")
    }

    /// Prefill-then-decode (and chunked prefill) equal a full recompute at every step,
    /// including positions far beyond the sliding window.
    @Test func kvCacheMatchesRecompute() throws {
        let model = try synthetic.model()
        let ids = sequence(20)
        let full = model.makeSession(capacity: 32)
        let all = try full.prefill(ids, logitRows: Array(ids.indices))

        let stepwise = model.makeSession(capacity: 32)
        var worst: Float = 0
        var last = try stepwise.prefill(Array(ids[0..<3]))
        worst = max(worst, gemmaMaxAbsDiff(last, all[2]))
        for t in 3..<ids.count {
            last = try stepwise.decode(ids[t])
            worst = max(worst, gemmaMaxAbsDiff(last, all[t]))
        }
        #expect(worst < 1e-4, "decode vs full prefill: \(worst)")
        #expect(stepwise.position == ids.count)

        // Prefill in chunks that start mid-sequence (the T > 1 path with p0 > 0).
        let chunked = model.makeSession(capacity: 32)
        _ = try chunked.prefill(Array(ids[0..<5]))
        let mid = try chunked.prefill(Array(ids[5..<13]), logitRows: Array(0..<8))
        let tail = try chunked.prefill(Array(ids[13...]))
        var worstChunk: Float = 0
        for i in 0..<8 { worstChunk = max(worstChunk, gemmaMaxAbsDiff(mid[i], all[5 + i])) }
        worstChunk = max(worstChunk, gemmaMaxAbsDiff(tail, all[ids.count - 1]))
        #expect(worstChunk < 1e-4, "chunked prefill vs full prefill: \(worstChunk)")

        // reset() makes the session reusable.
        chunked.reset()
        let again = try chunked.prefill(ids)
        #expect(gemmaMaxAbsDiff(again, all[ids.count - 1]) < 1e-5)
    }

    @Test func capacityAndTokenErrors() throws {
        let session = try synthetic.model().makeSession(capacity: 4)
        #expect(throws: GemmaError.contextFull(capacity: 4)) { try session.prefill([1, 2, 3, 4, 5]) }
        #expect(throws: GemmaError.invalidToken(50)) { try session.prefill([1, 50]) }
        #expect(throws: GemmaError.emptyInput) { try session.prefill([]) }
        let out = try session.generate(prompt: [1, 2], maxTokens: 10)
        #expect(out.count == 3, "generation stops when the cache is full (the last token needs no slot)")
    }

    @Test func greedyGenerationFollowsArgmax() throws {
        let model = try synthetic.model()
        let session = model.makeSession(capacity: 40)
        let prompt = sequence(6)
        let out = try session.generate(prompt: prompt, maxTokens: 12)
        #expect(out.count == 12)
        // Recompute each step from scratch and check the argmax.
        var seq = prompt.map(Int.init)
        for tok in out {
            let ref = synthetic.reference(seq).logits.last!
            let best = ref.indices.max { ref[$0] < ref[$1] }!
            #expect(Int(tok) == best)
            seq.append(Int(tok))
        }
        // A stop id ends generation at its first occurrence and is returned as the last id.
        let stop = out[out.count / 2]
        let stopped = try session.generate(prompt: prompt, maxTokens: 12, stopIDs: [stop])
        #expect(stopped == Array(out[0...out.firstIndex(of: stop)!]))
    }

    // MARK: The editing hook

    final class FixedEditor: DownProjectionEditor {
        let layer: Int
        let edit: (any DownProjectionEdit)?
        var seen: [Float] = []
        var seenPositions: Range<Int> = 0..<0
        var calls = 0
        init(layer: Int, edit: (any DownProjectionEdit)?) { self.layer = layer; self.edit = edit }
        func selectEdit(for activations: FFNActivations) -> (any DownProjectionEdit)? {
            calls += 1
            seen = activations.lastRow
            seenPositions = activations.positions
            return edit
        }
    }

    @Test func zeroDeltaAndIdentityReplacementLeaveLogitsUnchanged() throws {
        let model = try synthetic.model()
        let ids = sequence(9)
        let layer = 2
        let base = try model.makeSession(capacity: 16).generateLogits(ids, decode: [3, 4, 5])

        var r = GemmaTestRandom(state: 3)
        let zero = LowRankDownProjectionDelta(a: Matrix(rows: 2, cols: 32, values: r.values(64, 1)),
                                              b: Matrix(rows: 16, cols: 2))
        let withZero = try model.makeSession(capacity: 16).generateLogits(ids, decode: [3, 4, 5], editor: FixedEditor(layer: layer, edit: zero))
        let same = DownProjectionReplacement(weight: Matrix(rows: 16, cols: 32, values: synthetic.layers[layer].down))
        let withSame = try model.makeSession(capacity: 16).generateLogits(ids, decode: [3, 4, 5], editor: FixedEditor(layer: layer, edit: same))
        for i in base.indices {
            #expect(gemmaMaxAbsDiff(withZero[i], base[i]) < 1e-6)
            #expect(gemmaMaxAbsDiff(withSame[i], base[i]) < 1e-5)
        }
    }

    @Test func lowRankDeltaAppliesToPromptAndDecodedTokensOnlyWhenSelected() throws {
        let model = try synthetic.model()
        let ids = sequence(9)
        let layer = 3
        var r = GemmaTestRandom(state: 11)
        let a = r.values(2 * 32, 0.5), b = r.values(16 * 2, 0.5)
        let delta = LowRankDownProjectionDelta(a: Matrix(rows: 2, cols: 32, values: a), b: Matrix(rows: 16, cols: 2, values: b))
        let decoded: [Int32] = [7, 8, 9, 10]

        let base = try model.makeSession(capacity: 16).generateLogits(ids, decode: decoded)
        let notSelected = FixedEditor(layer: layer, edit: nil)
        let unedited = try model.makeSession(capacity: 16).generateLogits(ids, decode: decoded, editor: notSelected)
        for i in base.indices { #expect(gemmaMaxAbsDiff(unedited[i], base[i]) == 0) }
        #expect(notSelected.calls == 1, "the editor is consulted once per prefill, not per decoded token")

        let selected = FixedEditor(layer: layer, edit: delta)
        let edited = try model.makeSession(capacity: 16).generateLogits(ids, decode: decoded, editor: selected)
        // Reference: W_down + B·A at `layer` for every position.
        var w = synthetic.layers[layer].down
        for row in 0..<16 { for col in 0..<32 { for k in 0..<2 { w[row * 32 + col] += b[row * 2 + k] * a[k * 32 + col] } } }
        let ref = synthetic.reference((ids + decoded.dropLast()).map(Int.init), downOverride: (layer, w))
        for (i, logits) in edited.enumerated() {
            let t = ids.count - 1 + i
            #expect(gemmaMaxAbsDiff(logits, ref.logits[t]) < 1e-4, "step \(i)")
            #expect(gemmaMaxAbsDiff(logits, base[i]) > 1e-3, "the delta changes step \(i)")
        }
    }

    @Test func editorAndObserverSeeTheDownProjectionInput() throws {
        let model = try synthetic.model()
        let ids = sequence(9)
        let layer = 4
        let ref = synthetic.reference(ids.map(Int.init))
        let editor = FixedEditor(layer: layer, edit: nil)
        let session = model.makeSession(capacity: 16)
        let capture = FFNInputCapture(layer: layer, positions: [2, 9])
        session.observer = capture
        _ = try session.prefill(ids, editor: editor)
        #expect(editor.seenPositions == 0..<9)
        #expect(gemmaMaxAbsDiff(editor.seen, ref.ffnInput[layer][8]) < 1e-5)
        #expect(gemmaMaxAbsDiff(capture.rows[2] ?? [], ref.ffnInput[layer][2]) < 1e-5)
        #expect(capture.rows[9] == nil)
        _ = try session.decode(5)
        let ref2 = synthetic.reference((ids + [5]).map(Int.init))
        #expect(gemmaMaxAbsDiff(capture.rows[9] ?? [], ref2.ffnInput[layer][9]) < 1e-5)
    }

    final class ResidualRecorder: ForwardObserver {
        var rows: [Int: [Int: [Float]]] = [:]  // layer → position → h
        func observeResidual(_ hidden: ActivationRows) {
            for p in hidden.positions { rows[hidden.layer, default: [:]][p] = hidden.copy(position: p) }
        }
    }

    @Test func observerSeesTheResidualStream() throws {
        let model = try synthetic.model()
        let ids = sequence(5)
        let session = model.makeSession(capacity: 8)
        let recorder = ResidualRecorder()
        session.observer = recorder
        _ = try session.prefill(Array(ids[0..<4]))
        let logits = try session.decode(ids[4])
        // Block 0 input: embedding × √D.
        let e0 = (0..<16).map { synthetic.embedding[Int(ids[2]) * 16 + $0] * 4 }
        #expect(recorder.rows[0]?[2] == e0)
        // The final h (layer == blockCount) gives the logits through output_norm and the embedding.
        let h = try #require(recorder.rows[6]?[4]).map(Double.init)
        let s = 1 / (h.reduce(0) { $0 + $1 * $1 } / 16 + 1e-6).squareRoot()
        let normed = (0..<16).map { h[$0] * s * Double(synthetic.outputNorm[$0]) }
        let ref = (0..<50).map { v in (0..<16).reduce(0.0) { $0 + Double(synthetic.embedding[v * 16 + $1]) * normed[$1] } }
        #expect(gemmaMaxAbsDiff(logits, ref) < 1e-4)
        #expect(recorder.rows.count == 7)
    }

    @Test func setEditAppliesWithoutAnEditor() throws {
        let model = try synthetic.model()
        let ids = sequence(9)
        let editor = FixedEditor(layer: 1, edit: DownProjectionReplacement(weight: Matrix(rows: 16, cols: 32)))
        let viaEditor = try model.makeSession(capacity: 16).prefill(ids, editor: editor)
        let session = model.makeSession(capacity: 16)
        session.setEdit(DownProjectionReplacement(weight: Matrix(rows: 16, cols: 32)), layer: 1)
        let viaSet = try session.prefill(ids)
        #expect(gemmaMaxAbsDiff(viaEditor, viaSet) == 0)
        session.reset()
        #expect(session.activeEdit?.layer == nil)
    }
}

extension GemmaSession {
    /// Logits after prefilling `ids` and after each of `decode` (in order).
    func generateLogits(_ ids: [Int32], decode: [Int32], editor: (any DownProjectionEditor)? = nil) throws -> [[Float]] {
        var out = [try prefill(ids, editor: editor)]
        for id in decode.dropLast() { out.append(try self.decode(id)) }
        return out
    }
}
