// A weight matrix left in the GGUF file's own quantised blocks (Q8_0, Q5_0, Q4_K, Q6_K), read
// where it lies (the file's memory map): nothing is widened or copied at load.
//
// Two products (see Sources/CQuantKernels):
// - `matMulT`, for decoding: the input rows are rounded to 8-bit blocks (per 32 values for
//   Q8_0/Q5_0, per 256 for the K-quants) and each block's products are summed as integers,
//   with SIMD kernels chosen from CPUID. About 0.6 bytes of weights read per multiply-add.
// - `matMulTDequantized`, for prompts: each thread dequantises its share of the rows to Float32
//   and multiplies with OpenBLAS sgemm, split exactly as `BLAS.linear` splits a dense matrix,
//   so a prompt's activations are the bits a Float32 copy of the weights would give.

import CQuantKernels

public struct QuantizedMatrix: @unchecked Sendable {
    /// Consecutive row ranges stored as one GGUF tensor each (stacked tensors, e.g. q | k | v).
    public struct Part: Sendable {
        public let type: GGMLType
        public let rows: Int
        /// Row `rowOffset` of the stacked matrix is this part's row 0.
        public let rowOffset: Int
        let data: SendableRawPointer
        let rowBytes: Int
    }

    public let rows: Int
    public let cols: Int
    public let parts: [Part]
    /// Keeps the memory the parts point into alive (the GGUF file).
    private let owner: AnyObject

    /// Types the kernels handle.
    public static func supports(_ type: GGMLType) -> Bool { scen_qtype_supported(Int32(type.rawValue)) != 0 }

    /// Stacks tensors of `cols` columns (their raw GGUF bytes) vertically; nil unless every
    /// part's type is supported and `cols` is a whole number of its blocks. `owner` must keep
    /// the bytes alive.
    public init?(stacking parts: [(type: GGMLType, rows: Int, data: UnsafeRawPointer)], cols: Int, owner: AnyObject) {
        guard !parts.isEmpty, cols > 0 else { return nil }
        var built: [Part] = []
        var offset = 0
        for p in parts {
            let t = Int32(p.type.rawValue)
            guard scen_qtype_supported(t) != 0, cols % Int(scen_qtype_block_values(t)) == 0 else { return nil }
            built.append(Part(type: p.type, rows: p.rows, rowOffset: offset, data: SendableRawPointer(p.data),
                              rowBytes: scen_qtype_row_bytes(t, Int32(cols))))
            offset += p.rows
        }
        self.parts = built
        rows = offset
        self.cols = cols
        self.owner = owner
    }

    /// Y[n, rows] = round8(X[n, cols]) · Wᵀ (row stride of Y: `rows`), the rows of every part
    /// split evenly over `threads`. `path` forces an implementation (tests); it must be supported.
    public func matMulT(_ x: UnsafePointer<Float>, count n: Int, into y: UnsafeMutablePointer<Float>,
                        threads: Int, scratch: QuantizedProductScratch, path: QuantizedKernels.Path? = nil) {
        precondition(path?.isSupported ?? true, "kernel path \(path!) is not supported by this CPU")
        let kernelPath = (path ?? QuantizedKernels.current).rawValue
        guard n > 0 else { return }
        // One rounding per activation format present (the formats of Q8_0/Q5_0 and of the K-quants).
        var formats: [(blockValues: Int32, type: Int32, offset: Int)] = []
        var bytes = 0
        for p in parts {
            let t = Int32(p.type.rawValue), bv = scen_qtype_block_values(t)
            if !formats.contains(where: { $0.blockValues == bv }) {
                formats.append((bv, t, bytes))
                bytes += n * scen_activation_row_bytes(t, Int32(cols))
            }
        }
        let act = scratch.activations(bytes: bytes)
        for f in formats { scen_quantize_activations(f.type, x, Int32(n), Int32(cols), cols, act + f.offset) }
        let shared = SendableRawPointer(act), ys = SendablePointer(y), offsets = formats
        let work = max(1, threads)
        let body: @Sendable (Int) -> Void = { p in
            for part in parts {
                let t = Int32(part.type.rawValue)
                // Split at multiples of 8: the kernels take Q8_0/Q5_0 rows in groups of eight
                // from the start of each share, so a row's group never depends on the split.
                let lo = part.rows * p / work / 8 * 8, hi = p == work - 1 ? part.rows : part.rows * (p + 1) / work / 8 * 8
                guard lo < hi else { continue }
                let offset = offsets.first { $0.blockValues == scen_qtype_block_values(t) }!.offset
                scen_gemv_on(kernelPath, t, part.data.pointer + lo * part.rowBytes, part.rowBytes, Int32(hi - lo), Int32(cols),
                          shared.pointer + offset, Int32(n), ys.pointer + part.rowOffset + lo, rows)
            }
        }
        Parallel.forEach(work, body)
    }

    /// Y[n, rows] = X[n, cols] · Wᵀ in Float32 (the exact stored weights, unrounded inputs):
    /// each thread dequantises its rows (a tile at a time, `BLAS.linearTile`) and calls sgemm,
    /// with `BLAS.linear`'s split and tiles, so the bits are the dense product's.
    public func matMulTDequantized(_ x: UnsafePointer<Float>, count t: Int, into y: UnsafeMutablePointer<Float>,
                                   threads: Int, scratch: QuantizedProductScratch) {
        guard t > 0 else { return }
        if t == 1 {
            let w = scratch.panel(0, count: rows * cols)
            dequantize(rows: 0..<rows, into: w)
            BLAS.gemv(m: rows, n: cols, a: w, lda: cols, x: x, beta: 0, y: y)
            return
        }
        let split = BLAS.linearSplit(rows: t, inputWidth: cols, outputWidth: rows, threads: threads)
        let tile = BLAS.linearTile(rows: t, per: split.per)
        let panels = (0..<split.parts).map { p in
            SendablePointer(scratch.panel(p, count: max(0, min(rows, p * split.per + tile) - p * split.per) * cols))
        }
        let xs = SendablePointer(x), ys = SendablePointer(y)
        let body: @Sendable (Int) -> Void = { p in
            let lo = p * split.per, hi = min(rows, lo + split.per)
            let w = panels[p].pointer
            for c in stride(from: lo, to: hi, by: tile) {
                let end = min(hi, c + tile)
                dequantize(rows: c..<end, into: w)
                BLAS.gemmNT(m: t, n: end - c, k: cols, a: xs.pointer, lda: cols, b: w, ldb: cols, beta: 0,
                            c: ys.pointer + c, ldc: rows)
            }
        }
        Parallel.forEach(split.parts, body)
    }

    /// Rows `range` as Float32, row-major into `out` (range.count · cols values).
    public func dequantize(rows range: Range<Int>, into out: UnsafeMutablePointer<Float>, path: QuantizedKernels.Path? = nil) {
        precondition(range.lowerBound >= 0 && range.upperBound <= rows, "QuantizedMatrix rows \(range) out of 0..<\(rows)")
        precondition(path?.isSupported ?? true, "kernel path \(path!) is not supported by this CPU")
        let kernelPath = (path ?? QuantizedKernels.current).rawValue
        for part in parts {
            let lo = max(range.lowerBound, part.rowOffset), hi = min(range.upperBound, part.rowOffset + part.rows)
            guard lo < hi else { continue }
            scen_dequantize_on(kernelPath, Int32(part.type.rawValue), part.data.pointer + (lo - part.rowOffset) * part.rowBytes, part.rowBytes,
                            Int32(hi - lo), Int32(cols), out + (lo - range.lowerBound) * cols)
        }
    }

    /// Y[n, rows] = X[n, cols] · Wᵀ for a single-part Q8_0 matrix, Float32 inputs unrounded
    /// (the tied output projection of a prompt's rows); rows split over `threads`.
    public func matMulTFloatQ8_0(_ x: UnsafePointer<Float>, count n: Int, into y: UnsafeMutablePointer<Float>, threads: Int,
                                 path: QuantizedKernels.Path? = nil) {
        precondition(parts.count == 1 && parts[0].type == .q8_0, "matMulTFloatQ8_0 needs one Q8_0 part")
        precondition(path?.isSupported ?? true, "kernel path \(path!) is not supported by this CPU")
        let kernelPath = (path ?? QuantizedKernels.current).rawValue
        guard n > 0 else { return }
        let part = parts[0], xs = SendablePointer(x), ys = SendablePointer(y), cols = cols, rows = rows
        let work = max(1, threads)
        let body: @Sendable (Int) -> Void = { p in
            let lo = rows * p / work, hi = rows * (p + 1) / work
            guard lo < hi else { return }
            scen_gemv_f32_q8_0_on(kernelPath, part.data.pointer + lo * part.rowBytes, part.rowBytes, Int32(hi - lo), Int32(cols),
                               xs.pointer, cols, Int32(n), ys.pointer + lo, rows)
        }
        Parallel.forEach(work, body)
    }
}

/// A session's buffers for quantised products (rounded activations, dequantised panels),
/// grown on demand and reused. Not thread-safe: one per session.
public final class QuantizedProductScratch {
    private var activationBuffer: UnsafeMutableRawPointer?
    private var activationCapacity = 0
    private var panels: [(pointer: UnsafeMutablePointer<Float>, count: Int)] = []

    public init() {}

    deinit {
        activationBuffer?.deallocate()
        for p in panels { p.pointer.deallocate() }
    }

    func activations(bytes: Int) -> UnsafeMutableRawPointer {
        if let activationBuffer, activationCapacity >= bytes { return activationBuffer }
        activationBuffer?.deallocate()
        activationCapacity = max(bytes, 4096)
        let b = UnsafeMutableRawPointer.allocate(byteCount: activationCapacity, alignment: 64)
        activationBuffer = b
        return b
    }

    func panel(_ i: Int, count: Int) -> UnsafeMutablePointer<Float> {
        while panels.count <= i { panels.append((.allocate(capacity: 16), 16)) }
        if panels[i].count < count {
            panels[i].pointer.deallocate()
            panels[i] = (.allocate(capacity: count), count)
        }
        return panels[i].pointer
    }
}

/// Which implementation of the quantised kernels runs (process-wide).
public enum QuantizedKernels {
    public enum Path: Int32, CaseIterable, Sendable, CustomStringConvertible {
        case portable = 0, avx2 = 1, avx512 = 2, avx512VNNI = 3
        public var description: String { String(cString: scen_kernels_path_name(rawValue)) }
        /// Whether this CPU runs it.
        public var isSupported: Bool { scen_kernels_supported(rawValue) != 0 }
    }

    /// The path in use: the best this CPU supports, or the one the environment variable
    /// SCEN_KERNELS names ("portable", "avx2", "avx512", "avx512-vnni") if the CPU has it.
    public static var current: Path { Path(rawValue: scen_kernels_path()) ?? .portable }

    /// The best supported path.
    public static var best: Path { Path.allCases.last { $0.isSupported } ?? .portable }
}
