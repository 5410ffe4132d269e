// Dequantiser checks on hand-built blocks: expected values are computed per element from the
// block layouts of ggml-common.h / gguf-py quants.py (element-index formulation, independent of
// the loop structure of the decoders), with small exact scales so comparisons are exact.

import Testing
import Core

private func decode(_ type: GGMLType, _ bytes: [UInt8]) throws -> [Float] {
    let count = bytes.count / type.bytesPerBlock * type.blockSize
    var out = [Float](repeating: .nan, count: count)
    try bytes.withUnsafeBytes { src in
        try out.withUnsafeMutableBufferPointer { dst in
            try Dequantizer.dequantize(type, from: src.baseAddress!, count: count, into: dst.baseAddress!)
        }
    }
    return out
}

private func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
private func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8((v >> (8 * $0)) & 0xFF) } }
private func pattern(_ count: Int, _ multiplier: Int, _ add: Int = 0) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 * multiplier + add) }
}

// IEEE half bit patterns of exact values.
private let halfOne: UInt16 = 0x3C00, halfHalf: UInt16 = 0x3800, halfQuarter: UInt16 = 0x3400
private let halfTwo: UInt16 = 0x4000, halfMinusOne: UInt16 = 0xBC00

/// The 12 scale bytes of Q4_K/Q5_K packing 6-bit scales `sc` and mins `m` (8 each), as laid
/// out in gguf-py Q4_K.get_scale_min: bytes 0-3 = sc0-3 | (sc4-7 >> 4) << 6; bytes 4-7 =
/// m0-3 | (m4-7 >> 4) << 6; bytes 8-11 = (sc4-7 & 15) | (m4-7 & 15) << 4.
private func packK4(_ sc: [UInt8], _ m: [UInt8]) -> [UInt8] {
    var b = [UInt8](repeating: 0, count: 12)
    for j in 0..<4 {
        b[j] = sc[j] | ((sc[j + 4] >> 4) << 6)
        b[j + 4] = m[j] | ((m[j + 4] >> 4) << 6)
        b[j + 8] = (sc[j + 4] & 15) | ((m[j + 4] & 15) << 4)
    }
    return b
}

@Suite("ggml dequantisers")
struct GGUFDequantizerTests {
    @Test func blockLayouts() {
        let expected: [(GGMLType, Int, Int)] = [
            (.f32, 1, 4), (.f16, 1, 2), (.bf16, 1, 2), (.q4_0, 32, 18), (.q4_1, 32, 20),
            (.q5_0, 32, 22), (.q5_1, 32, 24), (.q8_0, 32, 34), (.q8_1, 32, 36), (.q2_K, 256, 84),
            (.q3_K, 256, 110), (.q4_K, 256, 144), (.q5_K, 256, 176), (.q6_K, 256, 210),
            (.q8_K, 256, 292), (.iq4_nl, 32, 18), (.iq4_xs, 256, 136), (.tq2_0, 256, 66),
        ]
        for (type, block, bytes) in expected {
            #expect(type.blockSize == block && type.bytesPerBlock == bytes, "\(type)")
        }
        #expect(GGMLType(name: "q4_k") == .q4_K && GGMLType(name: "BF16") == .bf16 && GGMLType(name: "Q7") == nil)
    }

    @Test func floatTypes() throws {
        let halves: [UInt16] = [0x3C00, 0xC000, 0x7C00, 0x0001, 0x3555]
        let expectedHalves: [Float] = [1, -2, .infinity, 0x1p-24, Float(Float16(bitPattern: 0x3555))]
        #expect(try decode(.f16, halves.flatMap(le16)) == expectedHalves)
        let bf: [UInt16] = [0x3F80, 0xC040, 0x7F80, 0x0000]
        #expect(try decode(.bf16, bf.flatMap(le16)) == [1, -3, .infinity, 0])
        let f: [Float] = [1.5, -0.0, .greatestFiniteMagnitude]
        #expect(try decode(.f32, f.flatMap { le32($0.bitPattern) }) == f)
    }

    @Test func q8_0() throws {
        let qs = (0..<32).map { UInt8(bitPattern: Int8(-128 + 8 * $0)) }
        let values = try decode(.q8_0, le16(halfHalf) + qs)
        let expected: [Float] = (0..<32).map { (j: Int) -> Float in Float(-128 + 8 * j) * 0.5 }
        #expect(values == expected)
    }

    @Test func q8_1() throws {
        let qs = (0..<32).map { UInt8(bitPattern: Int8(15 - $0)) }
        let expected: [Float] = (0..<32).map { (j: Int) -> Float in Float(15 - j) * 2 }
        #expect(try decode(.q8_1, le16(halfTwo) + le16(0x7BFF) + qs) == expected)
    }

    @Test func q4_0() throws {
        let qs = (0..<16).map { UInt8($0) | UInt8(15 - $0) << 4 }
        let values = try decode(.q4_0, le16(halfTwo) + qs)
        for j in 0..<16 {
            #expect(values[j] == 2 * Float(j - 8))
            #expect(values[j + 16] == 2 * Float(7 - j))
        }
    }

    @Test func q4_1() throws {
        let qs = (0..<16).map { UInt8($0) | UInt8(($0 * 3) % 16) << 4 }
        let values = try decode(.q4_1, le16(halfQuarter) + le16(halfMinusOne) + qs)
        for j in 0..<16 {
            #expect(values[j] == 0.25 * Float(j) - 1)
            #expect(values[j + 16] == 0.25 * Float((j * 3) % 16) - 1)
        }
    }

    @Test func q5_0AndQ5_1() throws {
        let qh: UInt32 = 0xA5C3_0F96
        let qs = (0..<16).map { UInt8($0) | UInt8(15 - $0) << 4 }
        func q(_ e: Int) -> Int {
            let low = e < 16 ? Int(qs[e] & 15) : Int(qs[e - 16] >> 4)
            return low | Int((qh >> UInt32(e)) & 1) << 4
        }
        let v0 = try decode(.q5_0, le16(halfOne) + le32(qh) + qs)
        let expected0: [Float] = (0..<32).map { (e: Int) -> Float in Float(q(e) - 16) }
        #expect(v0 == expected0)
        let v1 = try decode(.q5_1, le16(halfHalf) + le16(halfMinusOne) + le32(qh) + qs)
        let expected1: [Float] = (0..<32).map { (e: Int) -> Float in 0.5 * Float(q(e)) - 1 }
        #expect(v1 == expected1)
    }

    static let k4Scales: [UInt8] = [1, 2, 3, 63, 17, 33, 48, 62]
    static let k4Mins: [UInt8] = [0, 1, 5, 63, 16, 40, 7, 60]

    @Test func k4ScalePackingByHand() throws {
        // Worked by hand from the bit table in gguf-py quants.py (Q4_K.get_scale_min).
        let packed: [UInt8] = [0x41, 0x82, 0xC3, 0xFF, 0x40, 0x81, 0x05, 0xFF, 0x01, 0x81, 0x70, 0xCE]
        #expect(packK4(Self.k4Scales, Self.k4Mins) == packed)
        // With d = dmin = 1: all-zero quants decode to -min, all-one quants to scale - min.
        let zeros = try decode(.q4_K, le16(halfOne) + le16(halfOne) + packed + [UInt8](repeating: 0, count: 128))
        let ones = try decode(.q4_K, le16(halfOne) + le16(halfOne) + packed + [UInt8](repeating: 0x11, count: 128))
        for j in 0..<8 {
            #expect(zeros[32 * j] == -Float(Self.k4Mins[j]), "min of sub-block \(j)")
            #expect(ones[32 * j] - zeros[32 * j] == Float(Self.k4Scales[j]), "scale of sub-block \(j)")
        }
    }

    @Test func q4_K() throws {
        let qs = pattern(128, 37, 5)
        let block = le16(halfOne) + le16(halfHalf) + packK4(Self.k4Scales, Self.k4Mins) + qs
        let values = try decode(.q4_K, block + block)
        for e in 0..<256 {
            let (g, h, l) = (e / 64, (e % 64) / 32, e % 32)
            let q = Float((qs[g * 32 + l] >> (4 * h)) & 15)
            let s = e / 32
            let expected = Float(Self.k4Scales[s]) * q - 0.5 * Float(Self.k4Mins[s])
            #expect(values[e] == expected && values[e + 256] == expected, "element \(e)")
        }
    }

    @Test func q5_K() throws {
        let qh = pattern(32, 73, 11)
        let qs = pattern(128, 29, 3)
        let block = le16(halfHalf) + le16(halfQuarter) + packK4(Self.k4Scales, Self.k4Mins) + qh + qs
        let values = try decode(.q5_K, block)
        for e in 0..<256 {
            let (g, h, l) = (e / 64, (e % 64) / 32, e % 32)
            let low = (qs[g * 32 + l] >> (4 * h)) & 15
            let high = (qh[l] >> (e / 32)) & 1
            let s = e / 32
            let expected = 0.5 * Float(Self.k4Scales[s]) * Float(low | high << 4) - 0.25 * Float(Self.k4Mins[s])
            #expect(values[e] == expected, "element \(e)")
        }
    }

    @Test func q6_K() throws {
        let ql = pattern(128, 41, 7)
        let qh = pattern(64, 89, 1)
        let scales: [Int8] = [-128, -3, -1, 0, 1, 2, 5, 9, 17, 33, 64, 127, -64, -17, 100, 3]
        let block = ql + qh + scales.map { UInt8(bitPattern: $0) } + le16(halfQuarter)
        let values = try decode(.q6_K, block)
        for e in 0..<256 {
            let (g, r) = (e / 128, e % 128)
            let low = (ql[g * 64 + r % 64] >> (4 * (r / 64))) & 15
            let high = (qh[g * 32 + r % 32] >> (2 * (r / 32))) & 3
            let q = Int(low | high << 4) - 32
            #expect(values[e] == 0.25 * Float(scales[e / 16]) * Float(q), "element \(e)")
        }
    }

    @Test func q2_K() throws {
        let scales = pattern(16, 23, 4)
        let qs = pattern(64, 53, 9)
        let values = try decode(.q2_K, scales + qs + le16(halfHalf) + le16(halfQuarter))
        for e in 0..<256 {
            let (g, j, l) = (e / 128, (e % 128) / 32, e % 32)
            let q = Float((qs[g * 32 + l] >> (2 * j)) & 3)
            let sc = scales[e / 16]
            #expect(values[e] == 0.5 * Float(sc & 15) * q - 0.25 * Float(sc >> 4), "element \(e)")
        }
    }

    @Test func q3_K() throws {
        // Sixteen 6-bit scales A..P packed as in gguf-py Q3_K: bytes 0-7 hold the low nibbles
        // (A-H low, I-P high), bytes 8-11 the top 2 bits (A-D, E-H, I-L, M-P at shifts 0, 2, 4, 6).
        let sixBit: [UInt8] = (0..<16).map { UInt8(($0 * 4 + 1) % 64) }
        var packed = [UInt8](repeating: 0, count: 12)
        for s in 0..<16 {
            packed[s % 8] |= (sixBit[s] & 15) << (s < 8 ? 0 : 4)
            packed[8 + s % 4] |= (sixBit[s] >> 4) << (2 * (s / 4))
        }
        let hmask = pattern(32, 97, 13)
        let qs = pattern(64, 45, 6)
        let values = try decode(.q3_K, hmask + qs + packed + le16(halfTwo))
        for e in 0..<256 {
            let low = Int((qs[(e / 128) * 32 + e % 32] >> (2 * ((e % 128) / 32))) & 3)
            let high = (hmask[e % 32] >> (e / 32)) & 1
            let q = low - (high == 1 ? 0 : 4)
            let scale = Float(Int(sixBit[e / 16]) - 32)
            #expect(values[e] == 2 * scale * Float(q), "element \(e)")
        }
    }

    @Test func q8_K() throws {
        let qs = (0..<256).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let block = le32(Float(0.125).bitPattern) + qs + [UInt8](repeating: 0xEE, count: 32)
        let values = try decode(.q8_K, block)
        let expected: [Float] = qs.map { (b: UInt8) -> Float in 0.125 * Float(Int8(bitPattern: b)) }
        #expect(values == expected)
    }

    @Test func errors() throws {
        var out = [Float](repeating: 0, count: 64)
        let bytes = [UInt8](repeating: 0, count: 512)
        try bytes.withUnsafeBytes { src in
            try out.withUnsafeMutableBufferPointer { dst in
                #expect(throws: GGUFError.badCount(count: 40, blockSize: 32)) {
                    try Dequantizer.dequantize(.q8_0, from: src.baseAddress!, count: 40, into: dst.baseAddress!)
                }
                #expect(throws: GGUFError.unsupportedQuantization(.iq4_nl)) {
                    try Dequantizer.dequantize(.iq4_nl, from: src.baseAddress!, count: 32, into: dst.baseAddress!)
                }
                try Dequantizer.dequantize(.q4_K, from: src.baseAddress!, count: 0, into: dst.baseAddress!)
            }
        }
    }
}
