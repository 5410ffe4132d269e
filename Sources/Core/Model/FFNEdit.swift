// The editing hook of the Gemma forward pass: where SCEN reads and changes the model.
//
// Contract
// --------
// In every block the FFN computes  x = gelu_tanh(gate) ⊙ up   ([T, F], one row per token)
// and then the down projection      y = x · W_downᵀ            ([T, D]), W_down [D, F],
// which is normalised (post_ffw_norm) and added to the residual stream.
//
// * Editing. A request may carry a `DownProjectionEditor` that names one layer L. During the
//   request's prefill, when the forward pass reaches layer L it computes x for the new tokens
//   and calls `editor.selectEdit(for:)` with it, *before* the down projection. The editor can
//   score its indexing neurons on any row (typically the last prompt token,
//   `activations.lastRow`) and returns the `DownProjectionEdit` to use, or nil. A non-nil edit
//   becomes the session's active edit: it is applied at layer L to the prompt tokens of that
//   same prefill (there is no second prefill) and to every token decoded afterwards, until
//   `GemmaSession.reset()` or `setEdit(_:layer:)`. The editor is consulted once per `prefill`.
// * Observing. A `ForwardObserver` set on the session sees x of every layer for every forward
//   call (prefill and decode) before the editor and the down projection, and (optionally) the
//   residual stream h entering every block and the final h before output_norm, from which a
//   backward pass can recompute any block.
// * Cost when unused: one nil check per layer.
//
// `FFNActivations` points into the session's scratch memory: it is valid only during the
// callback; copy what you keep.

/// x = gelu(gate) ⊙ up of one layer for the rows (tokens) of one forward call.
public typealias FFNActivations = ActivationRows

/// Row-major activations [T, width] of one layer for the rows (tokens) of one forward call.
public struct ActivationRows {
    /// Block index (0-based); for the residual stream, `blockCount` means the final h.
    public let layer: Int
    /// Absolute positions of the rows: row t is the token at position `positions.lowerBound + t`.
    public let positions: Range<Int>
    /// Values per row (F for FFN activations, D for the residual stream).
    public let width: Int
    /// Row-major [T, width] values.
    public let base: UnsafePointer<Float>
    /// The token ids of the rows [T] (empty when the caller did not give them).
    public let tokens: [Int32]

    public init(layer: Int, positions: Range<Int>, width: Int, base: UnsafePointer<Float>, tokens: [Int32] = []) {
        self.layer = layer; self.positions = positions; self.width = width; self.base = base; self.tokens = tokens
    }

    /// T: number of rows (tokens).
    public var rowCount: Int { positions.count }

    /// Row t (0-based within this call) without copying.
    public func row(_ t: Int) -> UnsafeBufferPointer<Float> {
        precondition(t >= 0 && t < rowCount, "row \(t) out of 0..<\(rowCount)")
        return UnsafeBufferPointer(start: base + t * width, count: width)
    }

    /// A copy of row t.
    public func copy(row t: Int) -> [Float] { Array(row(t)) }

    /// A copy of the row at absolute position `position`, if it is in this call.
    public func copy(position: Int) -> [Float]? {
        positions.contains(position) ? copy(row: position - positions.lowerBound) : nil
    }

    /// A copy of the last row (the last prompt token during prefill).
    public var lastRow: [Float] { copy(row: rowCount - 1) }
}

/// A change to one layer's down-projection output y [T, D] computed from its input x [T, F].
public protocol DownProjectionEdit: Sendable {
    /// If true, `apply` receives an uninitialised y and must write all of it (the base
    /// product is not computed); if false, y already holds x · W_downᵀ and `apply` modifies it.
    var replacesBaseOutput: Bool { get }

    /// x: [rows, ffnSize] row-major; y: [rows, hiddenSize] row-major.
    func apply(input x: UnsafePointer<Float>, rows: Int, ffnSize: Int,
               output y: UnsafeMutablePointer<Float>, hiddenSize: Int)
}

/// y += (x · Aᵀ) · Bᵀ with A [r, F] and B [D, r]: a rank-r delta to W_down (ΔW = B·A).
public struct LowRankDownProjectionDelta: DownProjectionEdit {
    /// A: [r, F].
    public let a: Matrix
    /// B: [D, r].
    public let b: Matrix
    public var rank: Int { a.rows }
    public var replacesBaseOutput: Bool { false }

    public init(a: Matrix, b: Matrix) {
        precondition(b.cols == a.rows, "LowRankDownProjectionDelta: A is \(a.rows)×\(a.cols), B is \(b.rows)×\(b.cols)")
        self.a = a
        self.b = b
    }

    public func apply(input x: UnsafePointer<Float>, rows: Int, ffnSize: Int,
                      output y: UnsafeMutablePointer<Float>, hiddenSize: Int) {
        precondition(a.cols == ffnSize && b.rows == hiddenSize, "low-rank delta does not fit F=\(ffnSize), D=\(hiddenSize)")
        let r = rank
        guard r > 0, rows > 0 else { return }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: rows * r) { tmp in
            let t = tmp.baseAddress!
            a.values.withUnsafeBufferPointer { ap in
                BLAS.linear(rows: rows, input: x, inputWidth: ffnSize, weight: ap.baseAddress!, outputWidth: r, output: t)
            }
            b.values.withUnsafeBufferPointer { bp in
                BLAS.linear(rows: rows, input: t, inputWidth: r, weight: bp.baseAddress!, outputWidth: hiddenSize,
                            output: y, accumulate: true)
            }
        }
    }
}

/// y = x · W'ᵀ with a full replacement W' [D, F] for the layer's W_down.
public struct DownProjectionReplacement: DownProjectionEdit {
    /// W': [D, F].
    public let weight: Matrix
    public var replacesBaseOutput: Bool { true }

    public init(weight: Matrix) { self.weight = weight }

    public func apply(input x: UnsafePointer<Float>, rows: Int, ffnSize: Int,
                      output y: UnsafeMutablePointer<Float>, hiddenSize: Int) {
        precondition(weight.rows == hiddenSize && weight.cols == ffnSize,
                     "replacement is \(weight.rows)×\(weight.cols), expected \(hiddenSize)×\(ffnSize)")
        weight.values.withUnsafeBufferPointer { w in
            BLAS.linear(rows: rows, input: x, inputWidth: ffnSize, weight: w.baseAddress!, outputWidth: hiddenSize, output: y)
        }
    }
}

/// Chooses, per request, the edit to apply at one layer (see the contract at the top).
public protocol DownProjectionEditor: AnyObject {
    /// L: the layer consulted and edited.
    var layer: Int { get }
    /// Called once during the request's prefill with layer L's x for the prompt tokens.
    func selectEdit(for activations: FFNActivations) -> (any DownProjectionEdit)?
}

/// Sees activations of every layer in every forward call of a session (see the contract at
/// the top). Both methods default to doing nothing.
public protocol ForwardObserver: AnyObject {
    /// x = gelu(gate) ⊙ up [T, F] of `activations.layer`.
    func observeFFNInput(_ activations: FFNActivations)
    /// The residual stream h [T, D] entering block `hidden.layer`; `layer == blockCount` is the
    /// final h (before output_norm).
    func observeResidual(_ hidden: ActivationRows)
}

extension ForwardObserver {
    public func observeFFNInput(_ activations: FFNActivations) {}
    public func observeResidual(_ hidden: ActivationRows) {}
}

/// Records copies of x at one layer for chosen absolute positions (nil: every position).
public final class FFNInputCapture: ForwardObserver {
    public let layer: Int
    public let positions: Set<Int>?
    /// Captured rows by absolute position (a later forward over the same position overwrites).
    public private(set) var rows: [Int: [Float]] = [:]

    public init(layer: Int, positions: Set<Int>? = nil) {
        self.layer = layer
        self.positions = positions
    }

    public func observeFFNInput(_ activations: FFNActivations) {
        guard activations.layer == layer else { return }
        for p in activations.positions where positions?.contains(p) ?? true {
            rows[p] = activations.copy(position: p)
        }
    }

    public func removeAll() { rows.removeAll() }
}
