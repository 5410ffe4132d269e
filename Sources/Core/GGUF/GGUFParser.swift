// Parses and validates the GGUF header (magic, version, metadata KV pairs, tensor infos) from a
// byte buffer, following the layout of ggml's `ggml/src/gguf.cpp` and docs/gguf.md. Every count,
// length and offset taken from the input is bounds- and overflow-checked before use.

/// The validated contents of a GGUF header.
struct GGUFHeader: Sendable {
    var version: UInt32
    var metadata: [String: GGUFValue]
    var metadataKeys: [String]
    var tensors: [GGUFTensorInfo]
    var alignment: Int
    /// Byte offset of the tensor data section from the start of the input.
    var dataOffset: Int
    /// Bytes available in the data section (input length minus `dataOffset`, at least 0).
    var dataSize: Int
}

/// A bounds-checked little-endian reader over a GGUF byte buffer.
struct GGUFParser {
    static let magic: UInt32 = 0x4655_4747  // "GGUF" read as a little-endian UInt32
    static let defaultAlignment = 32
    static let maxArrayNesting = 8
    static let maxDimensions = 4

    private let bytes: UnsafeRawBufferPointer
    private var position = 0

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    private var remaining: Int { bytes.count - position }

    // MARK: Primitive reads

    private mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws(GGUFError) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size, let base = bytes.baseAddress else {
            throw .truncated(what: what(), at: position)
        }
        let value = base.loadUnaligned(fromByteOffset: position, as: T.self)
        position += size
        return T(littleEndian: value)
    }

    /// Reads a count and rejects any that exceeds the whole input size, since every counted item
    /// occupies at least one byte.
    private mutating func readCount(_ what: String) throws(GGUFError) -> Int {
        let raw = try read(UInt64.self, what)
        guard raw <= UInt64(bytes.count), let count = Int(exactly: raw) else {
            throw .absurdCount(what: what, count: raw)
        }
        return count
    }

    private mutating func readString(_ what: @autoclosure () -> String) throws(GGUFError) -> String {
        let start = position
        let length = try readCount("\(what()) length")
        guard remaining >= length, let base = bytes.baseAddress else {
            throw .truncated(what: what(), at: start)
        }
        let slice = UnsafeRawBufferPointer(start: base + position, count: length)
        guard let string = String(validating: slice, as: UTF8.self) else {
            throw .invalidUTF8(at: start)
        }
        position += length
        return string
    }

    // MARK: Values

    private mutating func readValueType(key: String) throws(GGUFError) -> GGUFValueType {
        let raw = try read(UInt32.self, "value type of '\(key)'")
        guard let type = GGUFValueType(rawValue: raw) else { throw .unknownValueType(raw, key: key) }
        return type
    }

    private mutating func readValue(_ type: GGUFValueType, key: String, depth: Int) throws(GGUFError) -> GGUFValue {
        let what = "value of '\(key)'"
        switch type {
        case .uint8: return .uint8(try read(UInt8.self, what))
        case .int8: return .int8(try read(Int8.self, what))
        case .uint16: return .uint16(try read(UInt16.self, what))
        case .int16: return .int16(try read(Int16.self, what))
        case .uint32: return .uint32(try read(UInt32.self, what))
        case .int32: return .int32(try read(Int32.self, what))
        case .uint64: return .uint64(try read(UInt64.self, what))
        case .int64: return .int64(try read(Int64.self, what))
        case .float32: return .float32(Float(bitPattern: try read(UInt32.self, what)))
        case .float64: return .float64(Double(bitPattern: try read(UInt64.self, what)))
        case .bool: return .bool(try read(UInt8.self, what) != 0)
        case .string: return .string(try readString(what))
        case .array:
            guard depth < GGUFParser.maxArrayNesting else { throw .nestingTooDeep(key: key) }
            let elementType = try readValueType(key: key)
            let count = try readCount("array length of '\(key)'")
            var elements: [GGUFValue] = []
            elements.reserveCapacity(min(count, remaining))
            for _ in 0..<count {
                elements.append(try readValue(elementType, key: key, depth: depth + 1))
            }
            return .array(elements)
        }
    }

    // MARK: Header

    /// Parses the whole header and validates tensor placement against the input size.
    mutating func parseHeader() throws(GGUFError) -> GGUFHeader {
        let magic = try read(UInt32.self, "magic")
        guard magic == GGUFParser.magic else { throw .badMagic(magic) }
        let version = try read(UInt32.self, "version")
        guard version == 2 || version == 3 else { throw .unsupportedVersion(version) }
        let tensorCount = try readCount("tensor count")
        let kvCount = try readCount("metadata KV count")

        var metadata: [String: GGUFValue] = [:]
        var keys: [String] = []
        metadata.reserveCapacity(min(kvCount, 1024))
        for index in 0..<kvCount {
            let key = try readString("key #\(index)")
            let type = try readValueType(key: key)
            let value = try readValue(type, key: key, depth: 0)
            guard metadata.updateValue(value, forKey: key) == nil else { throw .duplicateKey(key) }
            keys.append(key)
        }

        var alignment = GGUFParser.defaultAlignment
        if let value = metadata[GGUFKeys.General.alignment] {
            guard let a = value.int else {
                throw .typeMismatch(key: GGUFKeys.General.alignment, expected: "an integer")
            }
            guard a > 0, a & (a - 1) == 0, a <= 1 << 30 else { throw .badAlignment(a) }
            alignment = a
        }

        var tensors: [GGUFTensorInfo] = []
        tensors.reserveCapacity(min(tensorCount, remaining))
        var names = Set<String>()
        for index in 0..<tensorCount {
            let name = try readString("name of tensor #\(index)")
            let dimensionCount = try read(UInt32.self, "dimension count of '\(name)'")
            guard dimensionCount >= 1, dimensionCount <= UInt32(GGUFParser.maxDimensions) else {
                throw .badShape(name: name)
            }
            var shape: [Int] = []
            for _ in 0..<Int(dimensionCount) {
                let raw = try read(UInt64.self, "shape of '\(name)'")
                guard let dim = Int(exactly: raw) else { throw .badShape(name: name) }
                shape.append(dim)
            }
            let rawType = try read(UInt32.self, "type of '\(name)'")
            let rawOffset = try read(UInt64.self, "data offset of '\(name)'")
            guard let type = GGMLType(rawValue: rawType) else {
                throw .unknownTensorType(rawType, tensor: name)
            }
            guard let offset = Int(exactly: rawOffset) else { throw .tensorOutOfBounds(name: name) }
            let info = try GGUFTensorInfo(name: name, shape: shape, type: type, offset: offset)
            guard names.insert(name).inserted else { throw .duplicateTensor(name) }
            tensors.append(info)
        }

        // The data section starts at the next multiple of `alignment` after the header.
        let headerEnd = position
        let padding = (alignment - headerEnd % alignment) % alignment
        let dataOffset = headerEnd + padding
        let dataSize = max(0, bytes.count - dataOffset)
        let needsData = tensors.contains { $0.byteCount > 0 }
        if needsData && dataOffset > bytes.count {
            throw .truncated(what: "padding before the tensor data", at: headerEnd)
        }
        for info in tensors {
            guard info.offset % alignment == 0 else { throw .misaligned(name: info.name) }
            let (end, overflow) = info.offset.addingReportingOverflow(info.byteCount)
            guard !overflow, end <= dataSize else { throw .tensorOutOfBounds(name: info.name) }
        }

        return GGUFHeader(
            version: version, metadata: metadata, metadataKeys: keys, tensors: tensors,
            alignment: alignment, dataOffset: dataOffset, dataSize: dataSize)
    }
}
