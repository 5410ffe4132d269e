// Reads the shipped Gemma 3 270M GGUF file and checks header, metadata, tensor table and
// dequantised values against the gguf-py oracle fixtures (Tests/Fixtures/model_meta.json,
// dequant.json, written by tools/make_fixtures.py); also times dequantising every tensor.

import Foundation
import Testing
import Core
import TestSupport

/// One entry of Tests/Fixtures/dequant.json.
private struct DequantFixture: Decodable {
    let name: String
    let type: String
    let shape: [Int]
    let n_elements: Int
    let row_prefix: Int
    let rows: [String: [Double]]
    let sum: Double
    let sum_abs: Double
}

/// Tests/Fixtures/model_meta.json.
private struct MetaFixture: Decodable {
    struct Entry: Decodable {
        let type: String
        let value: JSONScalar?
        let elem_type: String?
        let length: Int?
        let first5: [JSONScalar]?
    }
    struct Tensor: Decodable {
        let name: String
        let type: String
        let shape: [Int]
        let offset: Int
        let file_offset: Int
        let n_bytes: Int
    }
    let gguf_version: UInt32
    let tensor_count: Int
    let kv_count: Int
    let data_offset: Int
    let alignment: Int
    let metadata: [String: Entry]
    let tensors: [Tensor]
}

/// A JSON scalar from the metadata fixture.
private enum JSONScalar: Decodable, Equatable {
    case bool(Bool), number(Double), string(String)

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else { self = .string(try c.decode(String.self)) }
    }

    /// Whether `value` (a non-array GGUF value) equals this fixture scalar.
    func matches(_ value: GGUFValue) -> Bool {
        switch (self, value) {
        case let (.bool(b), .bool(v)): return b == v
        case let (.string(s), .string(v)): return s == v
        case let (.number(n), .float32(v)): return Double(v) == n || Float(n) == v
        case let (.number(n), _): return value.double == n
        default: return false
        }
    }
}

private func typeName(_ value: GGUFValue) -> String {
    switch value.valueType {
    case .uint8: "UINT8"
    case .int8: "INT8"
    case .uint16: "UINT16"
    case .int16: "INT16"
    case .uint32: "UINT32"
    case .int32: "INT32"
    case .float32: "FLOAT32"
    case .bool: "BOOL"
    case .string: "STRING"
    case .array: "ARRAY"
    case .uint64: "UINT64"
    case .int64: "INT64"
    case .float64: "FLOAT64"
    }
}

@Suite("GGUF real model", .enabled(if: ModelTestEnvironment.enabled))
struct GGUFModelTests {
    @Test func headerAndHyperParameters() throws {
        let file = try ModelTestEnvironment.file.get()
        #expect(file.version == 3)
        #expect(file.alignment == 32)
        #expect(file.tensors.count == 236)
        #expect(try file.string(GGUFKeys.General.architecture) == GGUFKeys.Gemma3.architecture)
        #expect(try file.int(GGUFKeys.Gemma3.blockCount) == 18)
        #expect(try file.int(GGUFKeys.Gemma3.embeddingLength) == 640)
        #expect(try file.int(GGUFKeys.Gemma3.feedForwardLength) == 2048)
        #expect(try file.int(GGUFKeys.Gemma3.headCount) == 4)
        #expect(try file.int(GGUFKeys.Gemma3.headCountKV) == 1)
        #expect(try file.int(GGUFKeys.Gemma3.keyLength) == 256)
        #expect(try file.int(GGUFKeys.Gemma3.valueLength) == 256)
        #expect(try file.int(GGUFKeys.Gemma3.contextLength) == 32768)
        #expect(try file.int(GGUFKeys.Gemma3.slidingWindow) == 512)
        #expect(try file.float(GGUFKeys.Gemma3.rmsNormEpsilon) == 1e-6)
        #expect(try file.float(GGUFKeys.Gemma3.ropeFreqBase) == 1_000_000)
        let tokens = try file.strings(GGUFKeys.Tokenizer.tokens)
        #expect(tokens.count == 262_144)
        #expect(Array(tokens.prefix(5)) == ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"])
        #expect(try file.floats(GGUFKeys.Tokenizer.scores).count == 262_144)
        #expect(try file.ints(GGUFKeys.Tokenizer.tokenType).count == 262_144)
        #expect(try file.int(GGUFKeys.Tokenizer.bosTokenID) == 2)
        #expect(try file.int(GGUFKeys.Tokenizer.eosTokenID) == 1)
        let embedding = try file.require("token_embd.weight")
        #expect(embedding.shape == [640, 262_144] && embedding.type == .q8_0)
    }

    @Test func metadataAndTensorTableMatchOracle() throws {
        let file = try ModelTestEnvironment.file.get()
        let meta = try JSONDecoder().decode(MetaFixture.self, from: ModelTestEnvironment.fixture("model_meta.json"))
        #expect(file.version == meta.gguf_version)
        #expect(file.metadata.count == meta.kv_count)
        #expect(file.dataOffset == meta.data_offset)
        #expect(file.alignment == meta.alignment)
        #expect(Set(file.metadata.keys) == Set(meta.metadata.keys))
        for (key, entry) in meta.metadata {
            guard let value = file.metadata[key] else { continue }
            #expect(typeName(value) == entry.type, "\(key)")
            if let expected = entry.value {
                #expect(expected.matches(value), "\(key): \(value) vs \(expected)")
            }
            if let length = entry.length, let first5 = entry.first5, let elements = value.array {
                #expect(elements.count == length, "\(key)")
                if let elemType = entry.elem_type, let first = elements.first {
                    #expect(typeName(first) == elemType, "\(key)")
                }
                #expect(zip(first5, elements).allSatisfy { $0.matches($1) }, "\(key)")
            }
        }
        #expect(file.tensors.count == meta.tensor_count)
        #expect(file.tensors.map(\.name) == meta.tensors.map(\.name))
        for (info, expected) in zip(file.tensors, meta.tensors) {
            #expect(info.type.name == expected.type, "\(info.name)")
            #expect(info.shape == expected.shape, "\(info.name)")
            #expect(info.offset == expected.offset, "\(info.name)")
            #expect(file.dataOffset + info.offset == expected.file_offset, "\(info.name)")
            #expect(info.byteCount == expected.n_bytes, "\(info.name)")
        }
    }

    @Test func dequantisedValuesMatchOracle() throws {
        let file = try ModelTestEnvironment.file.get()
        let fixtures = try JSONDecoder().decode([DequantFixture].self, from: ModelTestEnvironment.fixture("dequant.json"))
        #expect(!fixtures.isEmpty)
        var typesSeen = Set<String>()
        for fixture in fixtures {
            let info = try file.require(fixture.name)
            typesSeen.insert(fixture.type)
            #expect(info.type.name == fixture.type, "\(fixture.name)")
            #expect(info.shape == fixture.shape && info.elementCount == fixture.n_elements, "\(fixture.name)")

            // Sums over the whole tensor, decoded in row chunks (token_embd is 168M values).
            let chunkRows = max(1, (1 << 20) / info.rowLength)
            var buffer = [Float](repeating: 0, count: chunkRows * info.rowLength)
            var sum = 0.0, sumAbs = 0.0
            for first in stride(from: 0, to: info.rowCount, by: chunkRows) {
                let rows = first..<min(info.rowCount, first + chunkRows)
                try buffer.withUnsafeMutableBufferPointer { try file.dequantizeRows(info, rows: rows, into: $0.baseAddress!) }
                for v in buffer.prefix(rows.count * info.rowLength) {
                    sum += Double(v)
                    sumAbs += Double(abs(v))
                }
            }
            #expect(abs(sum - fixture.sum) <= 1e-4 * abs(fixture.sum), "\(fixture.name) sum \(sum) vs \(fixture.sum)")
            #expect(abs(sumAbs - fixture.sum_abs) <= 1e-4 * fixture.sum_abs, "\(fixture.name) sum_abs")

            for (key, expected) in fixture.rows {
                guard let row = Int(key) else {
                    Issue.record("bad row key \(key)")
                    continue
                }
                var values = [Float](repeating: .nan, count: info.rowLength)
                try values.withUnsafeMutableBufferPointer { try file.dequantizeRows(info, rows: row..<(row + 1), into: $0.baseAddress!) }
                #expect(expected.count == min(fixture.row_prefix, info.rowLength))
                var worst = 0.0
                for (i, e) in expected.enumerated() {
                    let v = Double(values[i])
                    let scale = max(abs(v), abs(e))
                    if abs(v - e) > 1e-6 * scale { worst = max(worst, abs(v - e) / scale) }
                }
                #expect(worst == 0, "\(fixture.name) row \(row): relative error \(worst)")
            }
        }
        #expect(typesSeen.isSuperset(of: ["F32", "Q8_0", "Q5_0", "Q4_K", "Q6_K"]))
    }

    @Test func everyTensorDequantisesToFiniteValues() throws {
        let file = try ModelTestEnvironment.file.get()
        let clock = ContinuousClock()
        var total = 0
        var nonFinite: [String] = []
        let floatTime = try clock.measure {
            for info in file.tensors where info.name != "token_embd.weight" {
                let values = try file.dequantize(info)
                total += values.count
                if !values.allSatisfy({ $0.isFinite }) { nonFinite.append(info.name) }
            }
        }
        var embedding: [Float16] = []
        let embeddingTime = try clock.measure {
            embedding = try file.dequantizeF16(file.require("token_embd.weight"))
        }
        total += embedding.count
        if !embedding.allSatisfy({ $0.isFinite }) { nonFinite.append("token_embd.weight") }
        #expect(nonFinite.isEmpty, "non-finite values in \(nonFinite)")
        #expect(total == file.tensors.reduce(0) { $0 + $1.elementCount })
        print("GGUF: dequantised \(file.tensors.count) tensors (\(total) values): "
            + "token_embd to Float16 in \(embeddingTime), the other tensors to Float in \(floatTime)")
    }
}
