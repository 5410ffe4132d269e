// Writer -> reader round trips: every metadata value type, arrays, alignment, tensor
// encodings (within their quantisation error), row-range and Float16 decoding, typed helpers.

import Foundation
import Testing
import Core

@Suite("GGUF writer/reader round trip")
struct GGUFRoundTripTests {
    static let scalarValues: [(String, GGUFValue)] = [
        ("t.u8", .uint8(255)), ("t.i8", .int8(-128)),
        ("t.u16", .uint16(65535)), ("t.i16", .int16(-32768)),
        ("t.u32", .uint32(.max)), ("t.i32", .int32(.min)),
        ("t.u64", .uint64(.max)), ("t.i64", .int64(.min)),
        ("t.f32", .float32(-1.5e-7)), ("t.f32inf", .float32(.infinity)),
        ("t.f64", .float64(3.141592653589793)), ("t.f64neg0", .float64(-0.0)),
        ("t.true", .bool(true)), ("t.false", .bool(false)),
        ("t.str", .string("Grüße, 世界 🙂")), ("t.empty", .string("")),
    ]

    static let arrayValues: [(String, GGUFValue)] = [
        ("a.u8", .array([.uint8(0), .uint8(7), .uint8(255)])),
        ("a.i8", .array([.int8(-1), .int8(1)])),
        ("a.u16", .array([.uint16(1)])), ("a.i16", .array([.int16(-2), .int16(2)])),
        ("a.u32", .array([.uint32(3), .uint32(4)])), ("a.i32", .array([.int32(-5), .int32(6)])),
        ("a.u64", .array([.uint64(1 << 40)])), ("a.i64", .array([.int64(-(1 << 40))])),
        ("a.f32", .array([.float32(0.5), .float32(-2)])), ("a.f64", .array([.float64(1e300)])),
        ("a.bool", .array([.bool(true), .bool(false), .bool(true)])),
        ("a.str", .array([.string("<pad>"), .string(""), .string("▁the")])),
        ("a.empty", .array([])),
        ("a.nested", .array([.array([.int32(1), .int32(2)]), .array([.int32(3)])])),
    ]

    static func sampleValues(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let unit = Float(state >> 40) / Float(1 << 24)  // [0, 1)
            return (unit - 0.5) * 4
        }
    }

    @Test func metadataOfEveryTypeRoundTrips() throws {
        var writer = GGUFWriter()
        for (key, value) in Self.scalarValues + Self.arrayValues { writer.set(key, value) }
        let file = try GGUFFile(data: try writer.data())
        #expect(file.version == 3)
        #expect(file.tensors.isEmpty)
        #expect(file.metadataKeys == (Self.scalarValues + Self.arrayValues).map(\.0))
        for (key, value) in Self.scalarValues + Self.arrayValues {
            #expect(file.metadata[key] == value, "\(key)")
        }
    }

    @Test func setReplacesInPlace() throws {
        var writer = GGUFWriter()
        writer.set("a", .uint32(1))
        writer.set("b", .uint32(2))
        writer.set("a", .string("x"))
        let file = try GGUFFile(data: try writer.data())
        #expect(file.metadataKeys == ["a", "b"])
        #expect(file.metadata["a"] == .string("x"))
    }

    @Test func typedMetadataHelpers() throws {
        var writer = GGUFWriter()
        writer.set(GGUFKeys.Gemma3.blockCount, .uint32(18))
        writer.set(GGUFKeys.Gemma3.rmsNormEpsilon, .float32(1e-6))
        writer.set(GGUFKeys.General.architecture, .string("gemma3"))
        writer.set(GGUFKeys.Tokenizer.addBOSToken, .bool(true))
        writer.set(GGUFKeys.Tokenizer.tokens, .array([.string("a"), .string("b")]))
        writer.set(GGUFKeys.Tokenizer.scores, .array([.float32(-1), .float32(0.5)]))
        writer.set(GGUFKeys.Tokenizer.tokenType, .array([.int32(3), .int32(1)]))
        let file = try GGUFFile(data: try writer.data())
        #expect(try file.int(GGUFKeys.Gemma3.blockCount) == 18)
        #expect(try file.float(GGUFKeys.Gemma3.rmsNormEpsilon) == 1e-6)
        #expect(try file.double(GGUFKeys.Gemma3.blockCount) == 18)
        #expect(try file.string(GGUFKeys.General.architecture) == "gemma3")
        #expect(try file.bool(GGUFKeys.Tokenizer.addBOSToken))
        #expect(try file.strings(GGUFKeys.Tokenizer.tokens) == ["a", "b"])
        #expect(try file.floats(GGUFKeys.Tokenizer.scores) == [-1, 0.5])
        #expect(try file.ints(GGUFKeys.Tokenizer.tokenType) == [3, 1])
        #expect(try file.optionalInt("absent") == nil)
        #expect(try file.optionalString(GGUFKeys.General.architecture) == "gemma3")
        #expect(throws: GGUFError.missingKey("absent")) { try file.int("absent") }
        #expect(throws: GGUFError.typeMismatch(key: GGUFKeys.General.architecture, expected: "an integer")) {
            try file.int(GGUFKeys.General.architecture)
        }
        #expect(throws: GGUFError.typeMismatch(key: GGUFKeys.Gemma3.blockCount, expected: "a string")) {
            try file.optionalString(GGUFKeys.Gemma3.blockCount)
        }
        #expect(throws: GGUFError.typeMismatch(key: GGUFKeys.Tokenizer.scores, expected: "an array of strings")) {
            try file.strings(GGUFKeys.Tokenizer.scores)
        }
    }

    @Test func alignmentIsRecordedAndHonoured() throws {
        var writer = GGUFWriter(alignment: 64)
        writer.set("k", .string("odd length key value"))
        try writer.addTensor(name: "a", shape: [3], type: .f32, values: [1, 2, 3])
        try writer.addTensor(name: "b", shape: [5], type: .f32, values: [4, 5, 6, 7, 8])
        let file = try GGUFFile(data: try writer.data())
        #expect(file.alignment == 64)
        #expect(file.metadata[GGUFKeys.General.alignment] == .uint32(64))
        #expect(file.dataOffset % 64 == 0)
        #expect(file.tensors.map(\.offset) == [0, 64])
        #expect(try file.dequantize(file.require("b")) == [4, 5, 6, 7, 8])

        let defaultFile = try GGUFFile(data: try GGUFWriter().data())
        #expect(defaultFile.alignment == 32)
        #expect(defaultFile.metadata[GGUFKeys.General.alignment] == nil)
    }

    @Test func badWriterInputIsRejected() throws {
        var writer = GGUFWriter()
        #expect(throws: GGUFError.badShape(name: "x")) {
            try writer.addTensor(name: "x", shape: [4], type: .f32, values: [1, 2, 3])
        }
        #expect(throws: GGUFError.badShape(name: "q")) {
            try writer.addTensor(name: "q", shape: [16], type: .q8_0, values: [Float](repeating: 0, count: 16))
        }
        #expect(throws: GGUFError.unsupportedQuantization(.iq2_xxs)) {
            try writer.addTensor(name: "i", shape: [256], type: .iq2_xxs, values: [Float](repeating: 0, count: 256))
        }
        try writer.addTensor(name: "t", shape: [1], type: .f32, values: [0])
        #expect(throws: GGUFError.duplicateTensor("t")) {
            try writer.addTensor(name: "t", shape: [1], type: .f32, values: [0])
        }
        writer.set("mixed", .array([.int32(1), .string("x")]))
        #expect(throws: GGUFError.typeMismatch(key: "mixed", expected: "an array of elements of one type")) {
            try writer.data()
        }
        #expect(throws: GGUFError.badAlignment(48)) { try GGUFWriter(alignment: 48).data() }
    }

    /// Largest error allowed for one block of `type` whose values span `range` (max - min)
    /// and reach magnitude `amax`.
    static func tolerance(_ type: GGMLType, amax: Float, range: Float) -> Float {
        switch type {
        case .f32: return 0
        case .f16: return amax * 0x1p-11
        case .bf16: return amax * 0x1p-8
        case .q8_0: return amax / 127 * 0.5 + amax * 0x1p-10
        case .q4_0: return amax / 8 * 1.0 + amax * 0x1p-9  // clamp at +7 costs up to one step
        case .q5_0: return amax / 16 * 1.0 + amax * 0x1p-9
        case .q4_1: return range / 15 * 0.5 + amax * 0x1p-9
        case .q5_1: return range / 31 * 0.5 + amax * 0x1p-9
        // K-quants: half a step, the 6-bit scale rounding, clamping by up to one dmin step.
        case .q4_K: return range / 15 * (0.5 + 1.0 / 63) + amax / 63 + amax * 0x1p-9
        case .q5_K: return range / 31 * (0.5 + 1.0 / 63) + amax / 63 + amax * 0x1p-9
        case .q6_K: return amax / 31 * (0.5 + 1.0 / 127) + amax * 0x1p-9
        case .q8_K: return amax / 127 * 0.5 + amax * 0x1p-20
        default: return .infinity
        }
    }

    @Test(arguments: [GGMLType.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q4_K, .q5_K, .q6_K, .q8_K])
    func tensorValuesRoundTrip(type: GGMLType) throws {
        let shape = [256, 3, 2]
        var values = Self.sampleValues(256 * 6, seed: UInt64(type.rawValue) + 1)
        for i in 0..<32 { values[i] = 0 }              // an all-zero sub-block
        for i in 256..<320 { values[i] = 0.75 }        // constant sub-blocks
        for i in 512..<768 { values[i] *= 0.01 }       // a block of small values
        var writer = GGUFWriter()
        try writer.addTensor(name: "w", shape: shape, type: type, values: values)
        let file = try GGUFFile(data: try writer.data())
        let info = try file.require("w")
        #expect(info.shape == shape && info.type == type)
        #expect(info.rowLength == 256 && info.rowCount == 6 && info.elementCount == 1536)
        #expect(info.byteCount == 1536 / type.blockSize * type.bytesPerBlock)
        #expect(file.rawBytes(of: info).count == info.byteCount)
        let decoded = try file.dequantize(info)
        #expect(decoded.count == values.count)
        let block = max(type.blockSize, 32)
        for start in stride(from: 0, to: values.count, by: block) {
            let slice = values[start..<(start + block)]
            let amax = slice.map(abs).max() ?? 0
            let range = (slice.max() ?? 0) - (slice.min() ?? 0)
            let tol = Self.tolerance(type, amax: amax, range: range)
            for i in slice.indices {
                #expect(abs(decoded[i] - values[i]) <= tol, "\(type) element \(i): \(decoded[i]) vs \(values[i])")
            }
        }
    }

    @Test func rowRangesAndFloat16MatchWholeTensor() throws {
        // Large enough to take the parallel paths.
        let rows = 300, rowLength = 512
        let values = Self.sampleValues(rows * rowLength, seed: 99)
        var writer = GGUFWriter()
        try writer.addTensor(name: "big", shape: [rowLength, rows], type: .q8_0, values: values)
        try writer.addTensor(name: "half", shape: [rowLength, 2], type: .f16, values: Array(values[0..<1024]))
        let file = try GGUFFile(data: try writer.data())
        let info = try file.require("big")
        let whole = try file.dequantize(info)

        var direct = [Float](repeating: 0, count: whole.count)
        let raw = file.rawBytes(of: info)
        try direct.withUnsafeMutableBufferPointer { out in
            try Dequantizer.dequantize(.q8_0, from: raw.baseAddress!, count: whole.count, into: out.baseAddress!)
        }
        #expect(direct == whole)

        var part = [Float](repeating: .nan, count: 7 * rowLength)
        try part.withUnsafeMutableBufferPointer { try file.dequantizeRows(info, rows: 100..<107, into: $0.baseAddress!) }
        #expect(part == Array(whole[(100 * rowLength)..<(107 * rowLength)]))

        let halves = try file.dequantizeF16(info)
        #expect(halves == whole.map { Float16($0) })
        let halfInfo = try file.require("half")
        #expect(try file.dequantizeF16(halfInfo) == values[0..<1024].map { Float16($0) })

        var sink = [Float](repeating: 0, count: rowLength)
        #expect(throws: GGUFError.rowsOutOfRange(name: "big", rows: 299..<301, rowCount: 300)) {
            try sink.withUnsafeMutableBufferPointer { try file.dequantizeRows(info, rows: 299..<301, into: $0.baseAddress!) }
        }
    }

    @Test func lookupsAndForeignInfos() throws {
        var writer = GGUFWriter()
        try writer.addTensor(name: "a", shape: [2], type: .f32, values: [1, 2])
        let file = try GGUFFile(data: try writer.data())
        #expect(file.tensor(named: "b") == nil)
        #expect(throws: GGUFError.missingTensor("b")) { try file.require("b") }
        let foreign = try GGUFTensorInfo(name: "a", shape: [1 << 20], type: .f32, offset: 0)
        #expect(file.rawBytes(of: foreign).count == 0)
        #expect(throws: GGUFError.tensorOutOfBounds(name: "a")) { try file.dequantize(foreign) }
    }

    @Test func fileRoundTrip() throws {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("gguf-roundtrip-\(UUID().uuidString).gguf").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        var writer = GGUFWriter()
        writer.set(GGUFKeys.General.architecture, .string("gemma3"))
        try writer.addTensor(name: "w", shape: [32, 2], type: .q8_0, values: Self.sampleValues(64, seed: 5))
        try writer.write(to: path)
        let fromDisk = try GGUFFile(path: path)
        let inMemory = try GGUFFile(data: try writer.data())
        #expect(fromDisk.metadata == inMemory.metadata)
        #expect(fromDisk.tensors == inMemory.tensors)
        #expect(try fromDisk.dequantize(fromDisk.require("w")) == inMemory.dequantize(inMemory.require("w")))
        #expect(fromDisk.fileSize == (try writer.data()).count)

        #expect(throws: GGUFError.cannotOpen(path: path + ".missing", errno: ENOENT)) {
            try GGUFFile(path: path + ".missing")
        }
        #expect(throws: GGUFError.cannotWrite(path: "/nonexistent-dir/x.gguf", errno: ENOENT)) {
            try writer.write(to: "/nonexistent-dir/x.gguf")
        }
    }
}
