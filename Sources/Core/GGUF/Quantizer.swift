// Encodes Float32 values into ggml storage types for the GGUF writer: F32, F16, BF16, Q4_0,
// Q4_1, Q5_0, Q5_1, Q8_0 as the reference quantisers quantize_row_*_ref of ggml-quants.c (BF16
// as ggml_compute_fp32_to_bf16 in ggml-impl.h); the K-quants are in Quantizer+KQuants.swift.

/// Encoders from `Float` to ggml storage types.
public enum Quantizer {
    /// Whether `quantize` supports `type`.
    public static func canQuantize(_ type: GGMLType) -> Bool {
        switch type {
        case .f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K, .q8_K: return true
        default: return false
        }
    }

    /// The stored bytes of `values` as `type`; the count must be a multiple of `type.blockSize`.
    public static func quantize(_ values: [Float], as type: GGMLType) throws(GGUFError) -> [UInt8] {
        guard values.count % type.blockSize == 0 else {
            throw .badCount(count: values.count, blockSize: type.blockSize)
        }
        guard canQuantize(type) else { throw .unsupportedQuantization(type) }
        let blocks = values.count / type.blockSize
        var out = [UInt8](repeating: 0, count: blocks * type.bytesPerBlock)
        values.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBytes { y in
                guard let src = x.baseAddress, let dst = y.baseAddress else { return }
                for b in 0..<blocks {
                    let block = UnsafeBufferPointer(start: src + b * type.blockSize, count: type.blockSize)
                    let target = dst + b * type.bytesPerBlock
                    switch type {
                    case .f32: target.storeBytes(of: block[0].bitPattern.littleEndian, as: UInt32.self)
                    case .f16: target.storeBytes(of: Float16(block[0]).bitPattern.littleEndian, as: UInt16.self)
                    case .bf16: target.storeBytes(of: bf16Bits(block[0]).littleEndian, as: UInt16.self)
                    case .q4_0: encodeQ4_0(block, target)
                    case .q4_1: encodeQ4_1(block, target)
                    case .q5_0: encodeQ5_0(block, target)
                    case .q5_1: encodeQ5_1(block, target)
                    case .q8_0: encodeQ8_0(block, target)
                    case .q4_K: encodeAffineK(block, target, levels: 15)
                    case .q5_K: encodeAffineK(block, target, levels: 31)
                    case .q6_K: encodeQ6_K(block, target)
                    case .q8_K: encodeQ8_K(block, target)
                    default: break
                    }
                }
            }
        }
        return out
    }

    /// Float32 to bfloat16 bits: NaN made quiet, otherwise rounded to nearest even.
    static func bf16Bits(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if bits & 0x7fff_ffff > 0x7f80_0000 { return UInt16(truncatingIfNeeded: (bits >> 16) | 64) }
        let rounded = UInt64(bits) + 0x7fff + UInt64((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }

    // MARK: Field writers and rounding helpers

    private static func storeHalf(_ value: Float, _ p: UnsafeMutableRawPointer, _ offset: Int) {
        p.storeBytes(of: Float16(value).bitPattern.littleEndian, toByteOffset: offset, as: UInt16.self)
    }

    /// Truncation of `v` to an integer in 0...maxValue (NaN to 0), as the C `MIN(max, (int8_t)v)`.
    private static func truncated(_ v: Float, max maxValue: UInt8) -> UInt8 {
        if v >= Float(maxValue) { return maxValue }
        return v > 0 ? UInt8(v) : 0
    }

    /// The element with the largest magnitude, sign kept (first one on ties).
    private static func signedAbsMax(_ x: UnsafeBufferPointer<Float>) -> Float {
        var amax: Float = 0, max: Float = 0
        for v in x where abs(v) > amax {
            amax = abs(v)
            max = v
        }
        return max
    }

    private static func minMax(_ x: UnsafeBufferPointer<Float>) -> (Float, Float) {
        var lo = Float.greatestFiniteMagnitude, hi = -Float.greatestFiniteMagnitude
        for v in x {
            lo = Swift.min(lo, v)
            hi = Swift.max(hi, v)
        }
        return (lo, hi)
    }

    // MARK: Block encoders

    /// d = max / -8 (max = the value of largest magnitude); q = min(15, trunc(x / d + 8.5)).
    private static func encodeQ4_0(_ x: UnsafeBufferPointer<Float>, _ y: UnsafeMutableRawPointer) {
        let d = signedAbsMax(x) / -8
        let id: Float = d != 0 ? 1 / d : 0
        storeHalf(d, y, 0)
        for j in 0..<16 {
            let q0 = truncated(x[j] * id + 8.5, max: 15)
            let q1 = truncated(x[j + 16] * id + 8.5, max: 15)
            y.storeBytes(of: q0 | (q1 << 4), toByteOffset: 2 + j, as: UInt8.self)
        }
    }

    /// d = (max - min) / 15, m = min; q = min(15, trunc((x - min) / d + 0.5)).
    private static func encodeQ4_1(_ x: UnsafeBufferPointer<Float>, _ y: UnsafeMutableRawPointer) {
        let (lo, hi) = minMax(x)
        let d = (hi - lo) / 15
        let id: Float = d != 0 ? 1 / d : 0
        storeHalf(d, y, 0)
        storeHalf(lo, y, 2)
        for j in 0..<16 {
            let q0 = truncated((x[j] - lo) * id + 0.5, max: 15)
            let q1 = truncated((x[j + 16] - lo) * id + 0.5, max: 15)
            y.storeBytes(of: q0 | (q1 << 4), toByteOffset: 4 + j, as: UInt8.self)
        }
    }

    /// d = max / -16; q = min(31, trunc(x / d + 16.5)); bit 4 of element j goes to bit j of qh.
    private static func encodeQ5_0(_ x: UnsafeBufferPointer<Float>, _ y: UnsafeMutableRawPointer) {
        let d = signedAbsMax(x) / -16
        let id: Float = d != 0 ? 1 / d : 0
        storeHalf(d, y, 0)
        var qh: UInt32 = 0
        for j in 0..<16 {
            let q0 = truncated(x[j] * id + 16.5, max: 31)
            let q1 = truncated(x[j + 16] * id + 16.5, max: 31)
            y.storeBytes(of: (q0 & 0x0F) | ((q1 & 0x0F) << 4), toByteOffset: 6 + j, as: UInt8.self)
            qh |= UInt32(q0 >> 4) << UInt32(j)
            qh |= UInt32(q1 >> 4) << UInt32(j + 16)
        }
        y.storeBytes(of: qh.littleEndian, toByteOffset: 2, as: UInt32.self)
    }

    /// d = (max - min) / 31, m = min; q = min(31, trunc((x - min) / d + 0.5)).
    private static func encodeQ5_1(_ x: UnsafeBufferPointer<Float>, _ y: UnsafeMutableRawPointer) {
        let (lo, hi) = minMax(x)
        let d = (hi - lo) / 31
        let id: Float = d != 0 ? 1 / d : 0
        storeHalf(d, y, 0)
        storeHalf(lo, y, 2)
        var qh: UInt32 = 0
        for j in 0..<16 {
            let q0 = truncated((x[j] - lo) * id + 0.5, max: 31)
            let q1 = truncated((x[j + 16] - lo) * id + 0.5, max: 31)
            y.storeBytes(of: (q0 & 0x0F) | ((q1 & 0x0F) << 4), toByteOffset: 8 + j, as: UInt8.self)
            qh |= UInt32(q0 >> 4) << UInt32(j)
            qh |= UInt32(q1 >> 4) << UInt32(j + 16)
        }
        y.storeBytes(of: qh.littleEndian, toByteOffset: 4, as: UInt32.self)
    }

    /// d = max|x| / 127; q = round-half-away(x / d).
    private static func encodeQ8_0(_ x: UnsafeBufferPointer<Float>, _ y: UnsafeMutableRawPointer) {
        var amax: Float = 0
        for v in x { amax = Swift.max(amax, abs(v)) }
        let d = amax / 127
        let id: Float = d != 0 ? 1 / d : 0
        storeHalf(d, y, 0)
        for j in 0..<32 {
            let v = (x[j] * id).rounded(.toNearestOrAwayFromZero)
            let q: Int8 = v >= 127 ? 127 : (v <= -127 ? -127 : (v.isNaN ? 0 : Int8(v)))
            y.storeBytes(of: q, toByteOffset: 2 + j, as: Int8.self)
        }
    }
}
