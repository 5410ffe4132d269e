// Simple encoders for the K-quant formats Q4_K, Q5_K, Q6_K and Q8_K (block layouts of
// ggml-common.h). Scales come from each sub-block's min/max, not from ggml's iterative
// search (quantize_row_q*_K_ref), so the bytes differ from llama-quantize's but decode alike.

extension Quantizer {
    /// Rounds half away from zero and clamps to `lo...hi`; NaN becomes `lo`.
    static func clampedRound(_ v: Float, _ lo: Int32, _ hi: Int32) -> Int32 {
        let r = v.rounded(.toNearestOrAwayFromZero)
        if !(r >= Float(lo)) { return lo }
        return r >= Float(hi) ? hi : Int32(r)
    }

    /// Ceiling clamped to `0...hi` (a 6-bit scale large enough to cover the wanted step).
    static func clampedCeil(_ v: Float, _ hi: Int32) -> Int32 {
        let r = v.rounded(.up)
        if !(r >= 0) { return 0 }
        return r >= Float(hi) ? hi : Int32(r)
    }

    /// Float rounded through Float16, as the decoder will see it.
    static func viaHalf(_ v: Float) -> Float { Float(Float16(v)) }

    /// Q4_K (levels = 15) and Q5_K (levels = 31): eight sub-blocks of 32 with
    /// y = d*sc*q - dmin*m; 6-bit sc and m packed as ggml-quants.c get_scale_min_k4 reads them.
    static func encodeAffineK(_ x: UnsafeBufferPointer<Float>, _ y: UnsafeMutableRawPointer, levels: Int32) {
        var scales = [Float](repeating: 0, count: 8), mins = [Float](repeating: 0, count: 8)
        for s in 0..<8 {
            var lo: Float = 0, hi: Float = -.greatestFiniteMagnitude
            for v in x[(s * 32)..<(s * 32 + 32)] {
                lo = Swift.min(lo, v)
                hi = Swift.max(hi, v)
            }
            scales[s] = Swift.max(0, hi - lo) / Float(levels)
            mins[s] = -lo
        }
        let d = viaHalf((scales.max() ?? 0) / 63)
        let dmin = viaHalf((mins.max() ?? 0) / 63)
        var sc = [UInt8](repeating: 0, count: 8), m = [UInt8](repeating: 0, count: 8)
        for s in 0..<8 {
            sc[s] = d > 0 ? UInt8(clampedCeil(scales[s] / d, 63)) : 0
            m[s] = dmin > 0 ? UInt8(clampedCeil(mins[s] / dmin, 63)) : 0
        }
        y.storeBytes(of: Float16(d).bitPattern.littleEndian, toByteOffset: 0, as: UInt16.self)
        y.storeBytes(of: Float16(dmin).bitPattern.littleEndian, toByteOffset: 2, as: UInt16.self)
        for j in 0..<4 {
            y.storeBytes(of: sc[j] | ((sc[j + 4] >> 4) << 6), toByteOffset: 4 + j, as: UInt8.self)
            y.storeBytes(of: m[j] | ((m[j + 4] >> 4) << 6), toByteOffset: 8 + j, as: UInt8.self)
            y.storeBytes(of: (sc[j + 4] & 15) | ((m[j + 4] & 15) << 4), toByteOffset: 12 + j, as: UInt8.self)
        }
        // Element g*64 + h*32 + l: nibble h of qs[g*32 + l]; Q5_K adds bit (2g + h) of qh[l].
        let qsOffset = levels == 15 ? 16 : 48
        var qh = [UInt8](repeating: 0, count: 32)
        for g in 0..<4 {
            for l in 0..<32 {
                var byte: UInt8 = 0
                for h in 0..<2 {
                    let s = 2 * g + h
                    let e = g * 64 + h * 32 + l
                    let step = d * Float(sc[s])
                    let q = step > 0 ? clampedRound((x[e] + dmin * Float(m[s])) / step, 0, levels) : 0
                    byte |= UInt8(q & 15) << (4 * h)
                    qh[l] |= UInt8(q >> 4) << s
                }
                y.storeBytes(of: byte, toByteOffset: qsOffset + g * 32 + l, as: UInt8.self)
            }
        }
        if levels == 31 {
            for l in 0..<32 { y.storeBytes(of: qh[l], toByteOffset: 16 + l, as: UInt8.self) }
        }
    }

    /// Q6_K: sixteen sub-blocks of 16 with y = d*sc*(q - 32), int8 sc, 6-bit q.
    static func encodeQ6_K(_ x: UnsafeBufferPointer<Float>, _ y: UnsafeMutableRawPointer) {
        var scales = [Float](repeating: 0, count: 16)
        for s in 0..<16 {
            var amax: Float = 0
            for v in x[(s * 16)..<(s * 16 + 16)] { amax = Swift.max(amax, abs(v)) }
            scales[s] = amax / 31
        }
        let d = viaHalf((scales.max() ?? 0) / 127)
        var sc = [Int8](repeating: 0, count: 16)
        for s in 0..<16 { sc[s] = d > 0 ? Int8(clampedCeil(scales[s] / d, 127)) : 0 }
        var q = [UInt8](repeating: 32, count: 256)
        for e in 0..<256 {
            let step = d * Float(sc[e / 16])
            if step > 0 { q[e] = UInt8(clampedRound(x[e] / step, -32, 31) + 32) }
        }
        // Half g, element r = 32k + l: nibble k / 2 of ql[64g + 32(k % 2) + l], bits 2k of qh[32g + l].
        for g in 0..<2 {
            for l in 0..<32 {
                let q1 = q[g * 128 + l], q2 = q[g * 128 + l + 32]
                let q3 = q[g * 128 + l + 64], q4 = q[g * 128 + l + 96]
                y.storeBytes(of: (q1 & 15) | ((q3 & 15) << 4), toByteOffset: g * 64 + l, as: UInt8.self)
                y.storeBytes(of: (q2 & 15) | ((q4 & 15) << 4), toByteOffset: g * 64 + l + 32, as: UInt8.self)
                let high = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6)
                y.storeBytes(of: high, toByteOffset: 128 + g * 32 + l, as: UInt8.self)
            }
        }
        for s in 0..<16 { y.storeBytes(of: sc[s], toByteOffset: 192 + s, as: Int8.self) }
        y.storeBytes(of: Float16(d).bitPattern.littleEndian, toByteOffset: 208, as: UInt16.self)
    }

    /// Q8_K: float d = max|x| / 127, int8 q = round(x / d), int16 sums of each 16 quants.
    static func encodeQ8_K(_ x: UnsafeBufferPointer<Float>, _ y: UnsafeMutableRawPointer) {
        var amax: Float = 0
        for v in x { amax = Swift.max(amax, abs(v)) }
        let d = amax / 127
        y.storeBytes(of: d.bitPattern.littleEndian, toByteOffset: 0, as: UInt32.self)
        for s in 0..<16 {
            var sum: Int16 = 0
            for l in 0..<16 {
                let q = d > 0 ? Int8(clampedRound(x[s * 16 + l] / d, -127, 127)) : 0
                y.storeBytes(of: q, toByteOffset: 4 + s * 16 + l, as: Int8.self)
                sum += Int16(q)
            }
            y.storeBytes(of: sum.littleEndian, toByteOffset: 260 + 2 * s, as: Int16.self)
        }
    }
}
