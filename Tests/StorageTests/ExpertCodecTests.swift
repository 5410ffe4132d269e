import Core
import Storage
import Testing

func sampleExpert(form: StoredExpert.Form = .lowRank, r: Int = 3, f: Int = 16, d: Int = 8, layer: Int = 9) -> StoredExpert {
    var state: UInt64 = 42
    func next() -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: state >> 11) % 2000 - 1000) / 1000
    }
    switch form {
    case .lowRank:
        return StoredExpert(form: .lowRank, layer: layer, a: Matrix(rows: r, cols: f, values: (0..<(r * f)).map { _ in next() }),
                            b: Matrix(rows: d, cols: r, values: (0..<(d * r)).map { _ in next() }))
    case .full:
        return StoredExpert(form: .full, layer: layer, a: Matrix(rows: 0, cols: f, values: []),
                            b: Matrix(rows: d, cols: f, values: (0..<(d * f)).map { _ in next() }))
    }
}

@Suite("SHA-256")
struct ChecksumTests {
    @Test func fipsVectors() {
        #expect(Checksum.sha256Hex([UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Checksum.sha256Hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Checksum.sha256Hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(Checksum.sha256Hex([UInt8](repeating: 0x61, count: 1_000_000))
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}

@Suite("Expert codec")
struct ExpertCodecTests {
    @Test func float32RoundTripIsExact() throws {
        let expert = sampleExpert()
        let blob = try ExpertCodec.encode(expert)
        #expect(blob.count == 28 + 4 * (3 * 16 + 8 * 3) + 32)
        #expect(Array(blob.prefix(4)) == Array("SCEX".utf8))
        #expect(try ExpertCodec.decode(blob) == expert)
        #expect(ExpertCodec.checksum(of: blob) == Checksum.sha256(blob.dropLast(32)))
    }

    @Test func fullFormRoundTrips() throws {
        let expert = sampleExpert(form: .full)
        #expect(try ExpertCodec.decode(try ExpertCodec.encode(expert)) == expert)
    }

    @Test func float16RoundTripIsClose() throws {
        let expert = sampleExpert()
        let blob = try ExpertCodec.encode(expert, as: .float16)
        #expect(blob.count == 28 + 2 * (3 * 16 + 8 * 3) + 32)
        let back = try ExpertCodec.decode(blob)
        #expect(back.a.rows == 3 && back.b.rows == 8 && back.layer == 9)
        for (x, y) in zip(expert.a.values + expert.b.values, back.a.values + back.b.values) {
            #expect(abs(x - y) <= 1e-3)  // |x| ≤ 1: half precision keeps ~3 decimal digits
        }
    }

    @Test func encodeRefusesBadShapesAndNonFiniteValues() {
        var bad = sampleExpert()
        bad.b = Matrix(rows: 8, cols: 2, values: Array(repeating: 0, count: 16))
        #expect(throws: ExpertCodecError.self) { try ExpertCodec.encode(bad) }
        var nan = sampleExpert()
        nan.a.values[5] = .nan
        #expect(throws: ExpertCodecError.nonFiniteValue(index: 5)) { try ExpertCodec.encode(nan) }
        var huge = sampleExpert()
        huge.a.values[0] = 1e30
        #expect(throws: ExpertCodecError.nonFiniteValue(index: 0)) { try ExpertCodec.encode(huge, as: .float16) }
    }

    @Test func everyCorruptionIsATypedError() throws {
        let blob = try ExpertCodec.encode(sampleExpert())
        func error(_ b: [UInt8]) -> ExpertCodecError? {
            do { _ = try ExpertCodec.decode(b); return nil } catch { return error }
        }
        #expect(error([]) == .truncated(length: 0, expected: 60))
        #expect(error(Array(blob.prefix(40))) == .truncated(length: 40, expected: 60))
        #expect(error(Array(blob.dropLast())) == .truncated(length: blob.count - 1, expected: blob.count))
        #expect(error(blob + [0]) == .truncated(length: blob.count + 1, expected: blob.count))

        var magic = blob; magic[0] = 0x58
        #expect(error(magic) == .badMagic([0x58, 0x43, 0x45, 0x58]))
        var version = blob; version[4] = 2
        #expect(error(version) == .unsupportedVersion(2))
        var type = blob; type[6] = 7
        #expect(error(type) == .unknownValueType(7))
        var form = blob; form[7] = 9
        #expect(error(form) == .unknownForm(9))
        var shape = blob; shape[12] = 0xFF; shape[13] = 0xFF; shape[14] = 0xFF; shape[15] = 0x7F
        if case .badShape = error(shape) {} else { Issue.record("huge rank should be badShape, got \(String(describing: error(shape)))") }

        var payload = blob; payload[40] ^= 0x01
        #expect(error(payload) == .checksumMismatch)
        var trailer = blob; trailer[trailer.count - 1] ^= 0x80
        #expect(error(trailer) == .checksumMismatch)
        // Every single-byte flip is detected (one way or another), never a trap.
        for i in stride(from: 0, to: blob.count, by: 7) {
            var flipped = blob
            flipped[i] ^= 0x10
            #expect(error(flipped) != nil, "flip at \(i)")
        }
    }

    @Test func floatVectorsRoundTrip() throws {
        let v: [Float] = [0, -1.5, .pi, 1e-30, -3e38]
        #expect(try FloatVectorCodec.decode(FloatVectorCodec.encode(v), count: 5) == v)
        #expect(throws: ExpertCodecError.self) { try FloatVectorCodec.decode([1, 2, 3], count: 1) }
    }
}
