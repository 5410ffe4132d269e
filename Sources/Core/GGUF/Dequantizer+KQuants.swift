// Decoders for ggml's 256-element "K-quant" super-block formats Q2_K ... Q8_K.
// Layouts from ggml-common.h (block_q2_K ... block_q8_K); arithmetic as in ggml-quants.c
// dequantize_row_q*_K and gguf-py quants.py: y = (d * scale) * q - (dmin * min).

extension Dequantizer {
    /// block_q2_K: scales[16] (low nibble scale, high nibble min), qs[64] (2-bit quants),
    /// half d, half dmin. Element g*128 + j*32 + l is bits 2j..2j+1 of qs[g*32 + l];
    /// sub-block of 16 elements e/16 uses scales[e/16].
    static func q2_K(_ src: UnsafeRawPointer, _ blocks: Int, _ dst: UnsafeMutablePointer<Float>) {
        for b in 0..<blocks {
            let p = src + b * 84
            let y = dst + b * 256
            let d = half(p, 80)
            let dmin = half(p, 82)
            for g in 0..<2 {
                for j in 0..<4 {
                    let shift = UInt8(2 * j)
                    for h in 0..<2 {
                        let sc = byte(p, g * 8 + j * 2 + h)
                        let dl = d * Float(sc & 0x0F)
                        let ml = dmin * Float(sc >> 4)
                        let out = y + g * 128 + j * 32 + h * 16
                        let qs = 16 + g * 32 + h * 16
                        for l in 0..<16 {
                            out[l] = dl * Float((byte(p, qs + l) >> shift) & 3) - ml
                        }
                    }
                }
            }
        }
    }

    /// block_q3_K: hmask[32], qs[64] (low 2 bits), scales[12] (16 six-bit scales), half d.
    /// Element g*128 + j*32 + l: low bits 2j..2j+1 of qs[g*32 + l]; high bit is bit (4g + j) of
    /// hmask[l], and q = low - 4 when that bit is clear. Scale s: low nibble from scales[s % 8]
    /// (high nibble for s >= 8), top 2 bits from scales[8 + s % 4] >> 2(s / 4); minus 32.
    static func q3_K(_ src: UnsafeRawPointer, _ blocks: Int, _ dst: UnsafeMutablePointer<Float>) {
        for b in 0..<blocks {
            let p = src + b * 110
            let y = dst + b * 256
            let d = half(p, 108)
            for g in 0..<2 {
                for j in 0..<4 {
                    let shift = UInt8(2 * j)
                    let hbit = UInt8(4 * g + j)
                    for h in 0..<2 {
                        let s = g * 8 + j * 2 + h
                        let low = s < 8 ? byte(p, 96 + s) & 0x0F : byte(p, 96 + s - 8) >> 4
                        let high = (byte(p, 96 + 8 + s % 4) >> UInt8(2 * (s / 4))) & 3
                        let dl = d * Float(Int32(low | (high << 4)) - 32)
                        let out = y + g * 128 + j * 32 + h * 16
                        for l in 0..<16 {
                            let i = h * 16 + l
                            let q = Int32((byte(p, 32 + g * 32 + i) >> shift) & 3)
                            let offset: Int32 = (byte(p, i) >> hbit) & 1 == 0 ? 4 : 0
                            out[l] = dl * Float(q - offset)
                        }
                    }
                }
            }
        }
    }

    /// The 6-bit scale and min of sub-block `j` (0..<8) packed in the 12 bytes at `offset`
    /// (ggml-quants.c get_scale_min_k4): j < 4 in the low 6 bits of bytes j and j + 4; j >= 4
    /// from the nibbles of byte j + 4 plus the top 2 bits of bytes j - 4 and j.
    @inline(__always)
    static func scaleMinK4(_ p: UnsafeRawPointer, _ offset: Int, _ j: Int) -> (scale: UInt8, min: UInt8) {
        if j < 4 {
            return (byte(p, offset + j) & 63, byte(p, offset + j + 4) & 63)
        }
        let packed = byte(p, offset + j + 4)
        let scale = (packed & 0x0F) | ((byte(p, offset + j - 4) >> 6) << 4)
        let min = (packed >> 4) | ((byte(p, offset + j) >> 6) << 4)
        return (scale, min)
    }

    /// block_q4_K: half d, half dmin, scales[12] (8 six-bit scale/min pairs), qs[128].
    /// Element g*64 + h*32 + l is nibble h of qs[g*32 + l], in sub-block 2g + h.
    static func q4_K(_ src: UnsafeRawPointer, _ blocks: Int, _ dst: UnsafeMutablePointer<Float>) {
        for b in 0..<blocks {
            let p = src + b * 144
            let y = dst + b * 256
            let d = half(p, 0)
            let dmin = half(p, 2)
            for g in 0..<4 {
                let (sc0, m0) = scaleMinK4(p, 4, 2 * g)
                let (sc1, m1) = scaleMinK4(p, 4, 2 * g + 1)
                let d0 = d * Float(sc0), min0 = dmin * Float(m0)
                let d1 = d * Float(sc1), min1 = dmin * Float(m1)
                let out = y + g * 64
                let qs = 16 + g * 32
                for l in 0..<32 {
                    let q = byte(p, qs + l)
                    out[l] = d0 * Float(q & 0x0F) - min0
                    out[l + 32] = d1 * Float(q >> 4) - min1
                }
            }
        }
    }

    /// block_q5_K: half d, half dmin, scales[12], qh[32], qs[128]. As Q4_K, plus a fifth bit:
    /// bit (2g + h) of qh[l] for element g*64 + h*32 + l.
    static func q5_K(_ src: UnsafeRawPointer, _ blocks: Int, _ dst: UnsafeMutablePointer<Float>) {
        for b in 0..<blocks {
            let p = src + b * 176
            let y = dst + b * 256
            let d = half(p, 0)
            let dmin = half(p, 2)
            for g in 0..<4 {
                let (sc0, m0) = scaleMinK4(p, 4, 2 * g)
                let (sc1, m1) = scaleMinK4(p, 4, 2 * g + 1)
                let d0 = d * Float(sc0), min0 = dmin * Float(m0)
                let d1 = d * Float(sc1), min1 = dmin * Float(m1)
                let bit0 = UInt8(2 * g), bit1 = UInt8(2 * g + 1)
                let out = y + g * 64
                let qs = 48 + g * 32
                for l in 0..<32 {
                    let q = byte(p, qs + l)
                    let h = byte(p, 16 + l)
                    out[l] = d0 * Float((q & 0x0F) | (((h >> bit0) & 1) << 4)) - min0
                    out[l + 32] = d1 * Float((q >> 4) | (((h >> bit1) & 1) << 4)) - min1
                }
            }
        }
    }

    /// block_q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16], half d.
    /// In half g (128 elements), element r = 32k + l (k < 4) takes nibble k / 2 of
    /// ql[64g + 32(k % 2) + l] and bits 2k..2k+1 of qh[32g + l]; q - 32 times d * scales[e / 16].
    static func q6_K(_ src: UnsafeRawPointer, _ blocks: Int, _ dst: UnsafeMutablePointer<Float>) {
        for b in 0..<blocks {
            let p = src + b * 210
            let y = dst + b * 256
            let d = half(p, 208)
            for g in 0..<2 {
                let out = y + g * 128
                let ql = g * 64
                let qh = 128 + g * 32
                let sc = 192 + g * 8
                for l in 0..<32 {
                    let s = l / 16
                    let h = byte(p, qh + l)
                    let a = byte(p, ql + l)
                    let c = byte(p, ql + l + 32)
                    let q1 = Int32((a & 0x0F) | ((h & 3) << 4)) - 32
                    let q2 = Int32((c & 0x0F) | (((h >> 2) & 3) << 4)) - 32
                    let q3 = Int32((a >> 4) | (((h >> 4) & 3) << 4)) - 32
                    let q4 = Int32((c >> 4) | (((h >> 6) & 3) << 4)) - 32
                    out[l] = (d * Float(signedByte(p, sc + s))) * Float(q1)
                    out[l + 32] = (d * Float(signedByte(p, sc + s + 2))) * Float(q2)
                    out[l + 64] = (d * Float(signedByte(p, sc + s + 4))) * Float(q3)
                    out[l + 96] = (d * Float(signedByte(p, sc + s + 6))) * Float(q4)
                }
            }
        }
    }

    /// block_q8_K: float d, int8 qs[256], int16 bsums[16] (unused here); value = d * q.
    static func q8_K(_ src: UnsafeRawPointer, _ blocks: Int, _ dst: UnsafeMutablePointer<Float>) {
        for b in 0..<blocks {
            let p = src + b * 292
            let y = dst + b * 256
            let d = Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(as: UInt32.self)))
            for j in 0..<256 { y[j] = d * Float(signedByte(p, 4 + j)) }
        }
    }
}
