// The kernels on GGUF's own blocks (Sources/CQuantKernels), each implementation the CPU can run,
// against the plain reference dequantiser (GGUF/Dequantizer) and Double arithmetic: exact
// dequantisation, products of rounded activations for every row count from 1 to 17 (each row
// the same bits as alone), stacked parts, exact cancellation, and the Float32-input Q8_0 product. Paths this CPU lacks
// are reported as skipped tests.

import Foundation
import Testing
import Core

/// Quantised bytes kept alive for a QuantizedMatrix.
private final class Blocks {
    let pointer: UnsafeMutableRawPointer
    init(_ bytes: [UInt8]) {
        pointer = .allocate(byteCount: max(1, bytes.count), alignment: 64)
        bytes.withUnsafeBytes { pointer.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
    }
    deinit { pointer.deallocate() }
}

private final class Owners {
    let all: [Blocks]
    init(_ all: [Blocks]) { self.all = all }
}

/// One activation row rounded as the kernels must round it: ggml's Q8_0 / Q8_K rounding, as
/// the Swift `ActivationRounding` (bit-exact with llama.cpp, its own tests) computes it.
private func roundedActivations(_ x: ArraySlice<Float>, blockSize size: Int) -> [Double] {
    let x = Array(x)
    var out = [Float](repeating: 0, count: x.count)
    (size == 32 ? ActivationRounding.q8_0 : .q8_K).apply(x, rows: 1, width: x.count, stride: x.count, out: &out, outStride: x.count)
    return out.map(Double.init)
}

@Suite struct QuantizedKernelTests {
    static let types: [GGMLType] = [.q8_0, .q5_0, .q4_K, .q6_K]

    @Test func portableKernels() throws { try checkPath(.portable) }

    @Test(.enabled(if: QuantizedKernels.Path.avx2.isSupported, "this CPU lacks AVX2+FMA+F16C"))
    func avx2Kernels() throws { try checkPath(.avx2) }

    @Test(.enabled(if: QuantizedKernels.Path.avx512.isSupported, "this CPU lacks AVX-512 BW/VL"))
    func avx512Kernels() throws { try checkPath(.avx512) }

    @Test(.enabled(if: QuantizedKernels.Path.avx512VNNI.isSupported, "this CPU lacks AVX-512 VNNI"))
    func avx512VNNIKernels() throws { try checkPath(.avx512VNNI) }

    /// The path in use is the best the CPU has.
    @Test func dispatchPicksTheBestSupportedPath() {
        #expect(QuantizedKernels.Path.portable.isSupported)
        #expect(QuantizedKernels.best.isSupported)
        #expect(QuantizedKernels.Path.allCases.filter { $0.rawValue > QuantizedKernels.best.rawValue }.allSatisfy { !$0.isSupported })
    }

    private func checkPath(_ path: QuantizedKernels.Path) throws {
        for type in Self.types {
            try checkProducts(type: type, path: path)
            try checkCancellation(type: type, path: path)
        }
        try checkStackedParts(path: path)
        try checkFloatQ8_0(path: path)
    }

    /// Dequantisation equals the reference bit for bit; products of n = 1…17 input rows (two
    /// threads) agree with a Double product of the reference weights and the rounded inputs.
    private func checkProducts(type: GGMLType, path: QuantizedKernels.Path) throws {
        var r = GemmaTestRandom(state: 7 &+ UInt64(type.rawValue))
        let rows = 37, cols = 512
        let values = r.values(rows * cols, 1)
        let bytes = try Quantizer.quantize(values, as: type)
        var reference = [Float](repeating: 0, count: rows * cols)
        try bytes.withUnsafeBytes { try Dequantizer.dequantize(type, from: $0.baseAddress!, count: rows * cols, into: &reference) }
        let blocks = Blocks(bytes)
        let m = try #require(QuantizedMatrix(stacking: [(type, rows, UnsafeRawPointer(blocks.pointer))], cols: cols, owner: blocks))

        var dense = [Float](repeating: .nan, count: rows * cols)
        m.dequantize(rows: 0..<rows, into: &dense, path: path)
        #expect(dense == reference, "\(type) on \(path): dequantised values differ from the reference")
        var tail = [Float](repeating: .nan, count: 5 * cols)
        m.dequantize(rows: 30..<35, into: &tail, path: path)
        #expect(tail == Array(reference[30 * cols ..< 35 * cols]))

        let scratch = QuantizedProductScratch()
        let blockSize = type == .q4_K || type == .q6_K ? 256 : 32
        for n in 1...17 {
            // Inputs with a few large values, as real activations have.
            var x = r.values(n * cols, 1)
            for j in 0..<n { x[j * cols + (j * 37) % cols] = 40 }
            var y = [Float](repeating: .nan, count: n * rows)
            m.matMulT(x, count: n, into: &y, threads: 2, scratch: scratch, path: path)
            for j in 0..<n {
                // Batch invariance: the row alone gives the same bits.
                var alone = [Float](repeating: .nan, count: rows)
                Array(x[j * cols ..< (j + 1) * cols]).withUnsafeBufferPointer {
                    m.matMulT($0.baseAddress!, count: 1, into: &alone, threads: 1, scratch: scratch, path: path)
                }
                #expect(alone.elementsEqual(y[j * rows ..< (j + 1) * rows]), "\(type) on \(path): row \(j) of \(n) differs from the row alone")
                let xr = roundedActivations(x[j * cols ..< (j + 1) * cols], blockSize: blockSize)
                for i in 0..<rows {
                    var sum = 0.0, scale = 0.0
                    for k in 0..<cols {
                        let p = Double(reference[i * cols + k]) * xr[k]
                        sum += p; scale += abs(p)
                    }
                    #expect(abs(Double(y[j * rows + i]) - sum) <= 2e-6 * scale, "\(type) on \(path), n = \(n), row \(j), output \(i)")
                }
            }
        }
    }

    /// Weights equal in pairs and inputs of opposite sign in pairs: every block's integer sum is
    /// exactly zero, so the product must be exactly 0 (large terms of both signs must cancel
    /// exactly, not leave rounding residue).
    private func checkCancellation(type: GGMLType, path: QuantizedKernels.Path) throws {
        var r = GemmaTestRandom(state: 1234)
        let rows = 8, cols = 512
        var values = r.values(rows * cols, 1)
        for i in stride(from: 0, to: values.count, by: 2) { values[i + 1] = values[i] }
        let bytes = try Quantizer.quantize(values, as: type)
        var reference = [Float](repeating: 0, count: rows * cols)
        try bytes.withUnsafeBytes { try Dequantizer.dequantize(type, from: $0.baseAddress!, count: rows * cols, into: &reference) }
        // The pairs must survive quantisation for the cancellation to be exact.
        try #require(stride(from: 0, to: reference.count, by: 2).allSatisfy { reference[$0] == reference[$0 + 1] })
        let blocks = Blocks(bytes)
        let m = try #require(QuantizedMatrix(stacking: [(type, rows, UnsafeRawPointer(blocks.pointer))], cols: cols, owner: blocks))
        var x = [Float](repeating: 0, count: cols)
        for i in stride(from: 0, to: cols, by: 2) {
            let v = Float(1 + (i * 7919) % 1000) * (i % 6 == 0 ? 1000 : 1)
            x[i] = v; x[i + 1] = -v
        }
        var y = [Float](repeating: .nan, count: rows)
        m.matMulT(x, count: 1, into: &y, threads: 1, scratch: QuantizedProductScratch(), path: path)
        #expect(y == [Float](repeating: 0, count: rows), "\(type) on \(path): \(y)")
    }

    /// Stacked parts of different types (Q5_0 and Q8_0 rows, as attn_q | attn_v) land in their
    /// own output columns; uneven row counts split over three threads.
    private func checkStackedParts(path: QuantizedKernels.Path) throws {
        var r = GemmaTestRandom(state: 55)
        let cols = 64
        let a = r.values(13 * cols, 2), b = r.values(6 * cols, 2)
        let ba = Blocks(try Quantizer.quantize(a, as: .q5_0)), bb = Blocks(try Quantizer.quantize(b, as: .q8_0))
        let m = try #require(QuantizedMatrix(stacking: [(.q5_0, 13, UnsafeRawPointer(ba.pointer)), (.q8_0, 6, UnsafeRawPointer(bb.pointer))],
                                             cols: cols, owner: Owners([ba, bb])))
        var w = [Float](repeating: 0, count: 19 * cols)
        m.dequantize(rows: 0..<19, into: &w, path: path)
        let x = r.values(2 * cols, 1)
        var y = [Float](repeating: .nan, count: 2 * 19)
        m.matMulT(x, count: 2, into: &y, threads: 3, scratch: QuantizedProductScratch(), path: path)
        for j in 0..<2 {
            let xr = roundedActivations(x[j * cols ..< (j + 1) * cols], blockSize: 32)
            for i in 0..<19 {
                var sum = 0.0, scale = 0.0
                for k in 0..<cols { let p = Double(w[i * cols + k]) * xr[k]; sum += p; scale += abs(p) }
                #expect(abs(Double(y[j * 19 + i]) - sum) <= 2e-6 * scale)
            }
        }
    }

    /// The Float32-input Q8_0 product (a prompt's logits): the stored weights times unrounded inputs.
    private func checkFloatQ8_0(path: QuantizedKernels.Path) throws {
        var r = GemmaTestRandom(state: 77)
        let rows = 21, cols = 640
        let bytes = try Quantizer.quantize(r.values(rows * cols, 1), as: .q8_0)
        var reference = [Float](repeating: 0, count: rows * cols)
        try bytes.withUnsafeBytes { try Dequantizer.dequantize(.q8_0, from: $0.baseAddress!, count: rows * cols, into: &reference) }
        let blocks = Blocks(bytes)
        let m = try #require(QuantizedMatrix(stacking: [(.q8_0, rows, UnsafeRawPointer(blocks.pointer))], cols: cols, owner: blocks))
        for n in [1, 3] {
            let x = r.values(n * cols, 3)
            var y = [Float](repeating: .nan, count: n * rows)
            m.matMulTFloatQ8_0(x, count: n, into: &y, threads: 2, path: path)
            for j in 0..<n {
                for i in 0..<rows {
                    var sum = 0.0, scale = 0.0
                    for k in 0..<cols { let p = Double(reference[i * cols + k]) * Double(x[j * cols + k]); sum += p; scale += abs(p) }
                    #expect(abs(Double(y[j * rows + i]) - sum) <= 2e-6 * scale)
                }
            }
        }
    }
}
