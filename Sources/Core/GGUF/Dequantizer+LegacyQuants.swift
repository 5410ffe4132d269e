// Decoders for ggml's 32-element block formats Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and Q8_1.
// Layouts from ggml-common.h (block_q4_0 ... block_q8_1); arithmetic as in ggml-quants.c
// dequantize_row_q*_* and gguf-py quants.py: y = d * q (Q*_0) or y = d * q + m (Q*_1).

extension Dequantizer {
    /// block_q4_0: half d; 16 bytes of nibbles. Element j < 16 is the low nibble of byte j,
    /// element j + 16 the high nibble; value = d * (nibble - 8).
    static func q4_0(_ src: UnsafeRawPointer, _ blocks: Int, _ dst: UnsafeMutablePointer<Float>) {
        for b in 0..<blocks {
            let p = src + b * 18
            let y = dst + b * 32
            let d = half(p, 0)
            for j in 0..<16 {
                let q = byte(p, 2 + j)
                y[j] = d * Float(Int32(q & 0x0F) - 8)
                y[j + 16] = d * Float(Int32(q >> 4) - 8)
            }
        }
    }

    /// block_q4_1: half d, half m; 16 bytes of nibbles (as Q4_0); value = d * nibble + m.
    static func q4_1(_ src: UnsafeRawPointer, _ blocks: Int, _ dst: UnsafeMutablePointer<Float>) {
        for b in 0..<blocks {
            let p = src + b * 20
            let y = dst + b * 32
            let d = half(p, 0)
            let m = half(p, 2)
            for j in 0..<16 {
                let q = byte(p, 4 + j)
                y[j] = d * Float(q & 0x0F) + m
                y[j + 16] = d * Float(q >> 4) + m
            }
        }
    }

    /// block_q5_0: half d; uint32 qh (bit j = 5th bit of element j); 16 bytes of nibbles
    /// (as Q4_0); value = d * (q - 16).
    static func q5_0(_ src: UnsafeRawPointer, _ blocks: Int, _ dst: UnsafeMutablePointer<Float>) {
        for b in 0..<blocks {
            let p = src + b * 22
            let y = dst + b * 32
            let d = half(p, 0)
            let qh = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
            for j in 0..<16 {
                let q = byte(p, 6 + j)
                let hi0 = Int32((qh >> UInt32(j)) & 1) << 4
                let hi1 = Int32((qh >> UInt32(j + 16)) & 1) << 4
                y[j] = d * Float((Int32(q & 0x0F) | hi0) - 16)
                y[j + 16] = d * Float((Int32(q >> 4) | hi1) - 16)
            }
        }
    }

    /// block_q5_1: half d, half m; uint32 qh; 16 bytes of nibbles; value = d * q + m.
    static func q5_1(_ src: UnsafeRawPointer, _ blocks: Int, _ dst: UnsafeMutablePointer<Float>) {
        for b in 0..<blocks {
            let p = src + b * 24
            let y = dst + b * 32
            let d = half(p, 0)
            let m = half(p, 2)
            let qh = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
            for j in 0..<16 {
                let q = byte(p, 8 + j)
                let hi0 = UInt32((qh >> UInt32(j)) & 1) << 4
                let hi1 = UInt32((qh >> UInt32(j + 16)) & 1) << 4
                y[j] = d * Float(UInt32(q & 0x0F) | hi0) + m
                y[j + 16] = d * Float(UInt32(q >> 4) | hi1) + m
            }
        }
    }

    /// block_q8_0: half d; 32 int8 quants; value = d * q.
    static func q8_0(_ src: UnsafeRawPointer, _ blocks: Int, _ dst: UnsafeMutablePointer<Float>) {
        for b in 0..<blocks {
            let p = src + b * 34
            let y = dst + b * 32
            let d = half(p, 0)
            for j in 0..<32 { y[j] = Float(signedByte(p, 2 + j)) * d }
        }
    }

    /// block_q8_1: half d, half s (sum, unused here); 32 int8 quants; value = d * q.
    static func q8_1(_ src: UnsafeRawPointer, _ blocks: Int, _ dst: UnsafeMutablePointer<Float>) {
        for b in 0..<blocks {
            let p = src + b * 36
            let y = dst + b * 32
            let d = half(p, 0)
            for j in 0..<32 { y[j] = Float(signedByte(p, 4 + j)) * d }
        }
    }
}
