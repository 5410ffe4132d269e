// Malformed GGUF input: each defect raises its typed GGUFError and nothing traps (bad magic,
// versions, truncation at every header prefix, out-of-bounds / misaligned tensors, unknown
// types, absurd counts, duplicates, invalid UTF-8, bad shapes, random corruption).

import Testing
import Core

/// Hand-assembles GGUF bytes, for inputs the writer refuses to produce.
private struct RawGGUF {
    var bytes: [UInt8] = []

    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func string(_ s: String) { rawString(Array(s.utf8)) }
    mutating func rawString(_ b: [UInt8]) { u64(UInt64(b.count)); bytes += b }

    /// Magic, version, tensor count, KV count.
    static func header(version: UInt32 = 3, tensors: UInt64, kvs: UInt64) -> RawGGUF {
        var raw = RawGGUF()
        raw.u32(0x4655_4747)
        raw.u32(version)
        raw.u64(tensors)
        raw.u64(kvs)
        return raw
    }

    mutating func kvU32(_ key: String, _ value: UInt32) { string(key); u32(4); u32(value) }

    mutating func tensorInfo(_ name: String, shape: [UInt64], type: UInt32, offset: UInt64) {
        string(name)
        u32(UInt32(shape.count))
        for d in shape { u64(d) }
        u32(type)
        u64(offset)
    }

    /// Zero padding to `align`, then `count` data bytes.
    mutating func data(_ count: Int, align: Int = 32) {
        bytes += [UInt8](repeating: 0, count: (align - bytes.count % align) % align)
        bytes += [UInt8](repeating: 0x3c, count: count)
    }
}

private func parseError(_ bytes: [UInt8]) -> GGUFError? {
    do {
        _ = try GGUFFile(data: bytes)
        return nil
    } catch {
        return error
    }
}

private func isTruncated(_ error: GGUFError?) -> Bool {
    if case .truncated = error { return true }
    return false
}

@Suite("GGUF malformed input")
struct GGUFMalformedTests {
    /// A valid file with every value type and three tensors of different types.
    static func validFile() throws -> [UInt8] {
        var writer = GGUFWriter()
        writer.set(GGUFKeys.General.architecture, .string("gemma3"))
        writer.set("u8", .uint8(1)); writer.set("i8", .int8(-1))
        writer.set("u16", .uint16(2)); writer.set("i16", .int16(-2))
        writer.set("u32", .uint32(3)); writer.set("i32", .int32(-3))
        writer.set("u64", .uint64(4)); writer.set("i64", .int64(-4))
        writer.set("f32", .float32(0.5)); writer.set("f64", .float64(0.25)); writer.set("b", .bool(true))
        writer.set("strs", .array([.string("x"), .string("yz")]))
        writer.set("ints", .array([.int32(1), .int32(2), .int32(3)]))
        writer.set("nest", .array([.array([.uint8(1)])]))
        try writer.addTensor(name: "a", shape: [4], type: .f32, values: [1, 2, 3, 4])
        try writer.addTensor(name: "b", shape: [32, 2], type: .q8_0, values: (0..<64).map { Float($0) / 8 })
        try writer.addTensor(name: "c", shape: [2, 3], type: .f16, values: [1, 2, 3, 4, 5, 6])
        return try writer.data()
    }

    @Test func validFileParses() throws {
        let file = try GGUFFile(data: try Self.validFile())
        #expect(file.tensors.map(\.name) == ["a", "b", "c"])
        #expect(try file.dequantize(file.require("c")) == [1, 2, 3, 4, 5, 6])
    }

    @Test func badMagic() throws {
        var bytes = try Self.validFile()
        bytes[0] = UInt8(ascii: "B")
        #expect(parseError(bytes) == .badMagic(0x4655_4742))
        #expect(parseError(Array("GGML....".utf8)) == .badMagic(0x4c4d_4747))
    }

    @Test(arguments: [UInt32(0), 1, 4, 0x0300_0000])
    func unsupportedVersion(_ version: UInt32) {
        let raw = RawGGUF.header(version: version, tensors: 0, kvs: 0)
        #expect(parseError(raw.bytes) == .unsupportedVersion(version))
    }

    @Test func version2IsAccepted() throws {
        var raw = RawGGUF.header(version: 2, tensors: 0, kvs: 1)
        raw.kvU32("k", 7)
        let file = try GGUFFile(data: raw.bytes)
        #expect(file.version == 2 && file.metadata["k"] == .uint32(7))
    }

    @Test func truncatedAtEveryHeaderPrefix() throws {
        let bytes = try Self.validFile()
        let file = try GGUFFile(data: bytes)
        for length in 0..<file.dataOffset {
            let error = parseError(Array(bytes[0..<length]))
            #expect(isTruncated(error), "prefix \(length): \(String(describing: error))")
        }
        // Cut inside the data section: the header is whole but a tensor's bytes are missing.
        let lastEnd = file.dataOffset + (file.tensors.map { $0.offset + $0.byteCount }.max() ?? 0)
        for length in stride(from: file.dataOffset, to: lastEnd, by: 7) {
            let error = parseError(Array(bytes[0..<length]))
            var outOfBounds = false
            if case .tensorOutOfBounds = error { outOfBounds = true }
            #expect(outOfBounds, "prefix \(length): \(String(describing: error))")
        }
        #expect(parseError(Array(bytes[0..<lastEnd])) == nil)
    }

    @Test func emptyHeaderOnlyFileNeedsNoPadding() throws {
        let raw = RawGGUF.header(tensors: 0, kvs: 0)
        let file = try GGUFFile(data: raw.bytes)
        #expect(file.tensors.isEmpty && file.metadata.isEmpty)
        #expect(parseError([]) == .truncated(what: "magic", at: 0))
    }

    @Test func tensorOffsetBeyondEOF() {
        var raw = RawGGUF.header(tensors: 1, kvs: 0)
        raw.tensorInfo("w", shape: [4], type: 0, offset: 1024)
        raw.data(16)
        #expect(parseError(raw.bytes) == .tensorOutOfBounds(name: "w"))
    }

    @Test func tensorSizeBeyondEOF() {
        var raw = RawGGUF.header(tensors: 1, kvs: 0)
        raw.tensorInfo("w", shape: [32, 1 << 20], type: 0, offset: 0)
        raw.data(128)
        #expect(parseError(raw.bytes) == .tensorOutOfBounds(name: "w"))

        var huge = RawGGUF.header(tensors: 1, kvs: 0)
        huge.tensorInfo("w", shape: [32], type: 0, offset: UInt64.max - 31)
        huge.data(128)
        #expect(parseError(huge.bytes) == .tensorOutOfBounds(name: "w"))
    }

    @Test func misalignedTensorOffset() {
        var raw = RawGGUF.header(tensors: 1, kvs: 0)
        raw.tensorInfo("w", shape: [4], type: 0, offset: 8)
        raw.data(64)
        #expect(parseError(raw.bytes) == .misaligned(name: "w"))
    }

    @Test func customAlignmentIsUsedForOffsets() throws {
        var raw = RawGGUF.header(tensors: 1, kvs: 1)
        raw.kvU32(GGUFKeys.General.alignment, 8)
        raw.tensorInfo("w", shape: [2], type: 0, offset: 8)
        raw.data(16, align: 8)
        let file = try GGUFFile(data: raw.bytes)
        #expect(file.alignment == 8 && file.dataOffset % 8 == 0)
    }

    @Test(arguments: [UInt32(0), 3, 48])
    func badAlignment(_ value: UInt32) {
        var raw = RawGGUF.header(tensors: 0, kvs: 1)
        raw.kvU32(GGUFKeys.General.alignment, value)
        #expect(parseError(raw.bytes) == .badAlignment(Int(value)))
    }

    @Test func alignmentOfWrongType() {
        var raw = RawGGUF.header(tensors: 0, kvs: 1)
        raw.string(GGUFKeys.General.alignment); raw.u32(8); raw.string("32")
        #expect(parseError(raw.bytes) == .typeMismatch(key: GGUFKeys.General.alignment, expected: "an integer"))
    }

    @Test func unknownValueType() {
        var raw = RawGGUF.header(tensors: 0, kvs: 1)
        raw.string("k"); raw.u32(13); raw.u32(0)
        #expect(parseError(raw.bytes) == .unknownValueType(13, key: "k"))

        var array = RawGGUF.header(tensors: 0, kvs: 1)
        array.string("arr"); array.u32(9); array.u32(0xFFFF_FFFF); array.u64(1)
        #expect(parseError(array.bytes) == .unknownValueType(0xFFFF_FFFF, key: "arr"))
    }

    @Test(arguments: [UInt32(4), 5, 31, 40, 1000])
    func unknownTensorType(_ type: UInt32) {
        var raw = RawGGUF.header(tensors: 1, kvs: 0)
        raw.tensorInfo("w", shape: [32], type: type, offset: 0)
        raw.data(256)
        #expect(parseError(raw.bytes) == .unknownTensorType(type, tensor: "w"))
    }

    @Test func absurdCounts() {
        let huge: UInt64 = 1 << 60
        #expect(parseError(RawGGUF.header(tensors: 0, kvs: huge).bytes)
            == .absurdCount(what: "metadata KV count", count: huge))
        #expect(parseError(RawGGUF.header(tensors: huge, kvs: 0).bytes)
            == .absurdCount(what: "tensor count", count: huge))

        var array = RawGGUF.header(tensors: 0, kvs: 1)
        array.string("arr"); array.u32(9); array.u32(0); array.u64(huge)
        #expect(parseError(array.bytes) == .absurdCount(what: "array length of 'arr'", count: huge))

        var key = RawGGUF.header(tensors: 0, kvs: 1)
        key.u64(huge)
        #expect(parseError(key.bytes) == .absurdCount(what: "key #0 length", count: huge))

        var value = RawGGUF.header(tensors: 0, kvs: 1)
        value.string("s"); value.u32(8); value.u64(UInt64.max)
        #expect(parseError(value.bytes) == .absurdCount(what: "value of 's' length", count: UInt64.max))

        var name = RawGGUF.header(tensors: 1, kvs: 0)
        name.u64(huge)
        #expect(parseError(name.bytes) == .absurdCount(what: "name of tensor #0 length", count: huge))
    }

    @Test func duplicates() {
        var keys = RawGGUF.header(tensors: 0, kvs: 2)
        keys.kvU32("k", 1)
        keys.kvU32("k", 2)
        #expect(parseError(keys.bytes) == .duplicateKey("k"))

        var tensors = RawGGUF.header(tensors: 2, kvs: 0)
        tensors.tensorInfo("w", shape: [4], type: 0, offset: 0)
        tensors.tensorInfo("w", shape: [4], type: 0, offset: 32)
        tensors.data(64)
        #expect(parseError(tensors.bytes) == .duplicateTensor("w"))
    }

    @Test func invalidUTF8() {
        var key = RawGGUF.header(tensors: 0, kvs: 1)
        key.rawString([0x66, 0xC3, 0x28]); key.u32(4); key.u32(0)
        #expect(parseError(key.bytes) == .invalidUTF8(at: 24))

        var value = RawGGUF.header(tensors: 0, kvs: 1)
        value.string("k"); value.u32(8); value.rawString([0xFF, 0xFE])
        #expect(parseError(value.bytes) == .invalidUTF8(at: 24 + 9 + 4))
    }

    @Test func badShapes() {
        let cases: [([UInt64], UInt32)] = [
            ([], 0),                       // no dimensions
            ([1, 1, 1, 1, 1], 0),          // five dimensions
            ([4, 0], 0),                   // zero-sized dimension
            ([UInt64(Int64.max) + 1], 0),  // does not fit in Int
            ([1 << 62, 1 << 3], 0),        // element count overflows
            ([16], 8),                     // Q8_0 row not a whole number of 32-blocks
            ([32, 1 << 59], 8),            // byte count overflows
        ]
        for (shape, type) in cases {
            var raw = RawGGUF.header(tensors: 1, kvs: 0)
            raw.tensorInfo("w", shape: shape, type: type, offset: 0)
            raw.data(64)
            #expect(parseError(raw.bytes) == .badShape(name: "w"), "\(shape)")
        }
    }

    @Test func arraysNestedTooDeep() {
        var raw = RawGGUF.header(tensors: 0, kvs: 1)
        raw.string("deep"); raw.u32(9)
        for _ in 0..<20 { raw.u32(9); raw.u64(1) }
        raw.u32(4); raw.u64(1); raw.u32(0)
        #expect(parseError(raw.bytes) == .nestingTooDeep(key: "deep"))
    }

    /// Random corruption must end in a typed error or a valid file, never a trap.
    @Test func randomCorruptionNeverTraps() throws {
        let original = try Self.validFile()
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Int {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Int(state >> 1)
        }
        var parsed = 0
        for _ in 0..<3000 {
            var bytes = original
            for _ in 0..<(1 + next() % 4) {
                let position = next() % min(bytes.count, 400)
                bytes[position] = next() % 3 == 0 ? 0xFF : UInt8(truncatingIfNeeded: next())
            }
            if next() % 4 == 0 { bytes.removeLast(next() % bytes.count) }
            guard let file = try? GGUFFile(data: bytes) else { continue }
            parsed += 1
            for info in file.tensors where info.type.isDequantizable {
                let values = try file.dequantize(info)
                #expect(values.count == info.elementCount)
            }
        }
        #expect(parsed > 0)
    }
}
