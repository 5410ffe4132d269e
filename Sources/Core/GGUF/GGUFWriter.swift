// Builds GGUF version 3 files (header, metadata, tensor infos, aligned tensor data) in memory,
// laid out as ggml's gguf.cpp writes them; used for synthetic test models and tools.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Accumulates metadata and tensors, then serialises a GGUF v3 image.
public struct GGUFWriter: Sendable {
    /// Alignment of the data section and of every tensor's data. A value other than 32 is
    /// recorded as `general.alignment` unless that key is set explicitly.
    public var alignment: Int
    private var entries: [(key: String, value: GGUFValue)] = []
    private var tensors: [(info: GGUFTensorInfo, bytes: [UInt8])] = []

    public init(alignment: Int = 32) {
        self.alignment = alignment
    }

    /// Sets `key` to `value`, replacing an earlier value in place (keys keep first-set order).
    public mutating func set(_ key: String, _ value: GGUFValue) {
        if let index = entries.firstIndex(where: { $0.key == key }) {
            entries[index].value = value
        } else {
            entries.append((key, value))
        }
    }

    /// Adds a tensor from row-major values (a row is `shape[0]` values), encoded as `type`
    /// (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, Q8_K; see `Quantizer`).
    public mutating func addTensor(name: String, shape: [Int], type: GGMLType, values: [Float]) throws(GGUFError) {
        let info = try GGUFTensorInfo(name: name, shape: shape, type: type, offset: 0)
        guard values.count == info.elementCount else { throw .badShape(name: name) }
        try addTensor(name: name, shape: shape, type: type, rawData: Quantizer.quantize(values, as: type))
    }

    /// Adds a tensor whose stored bytes are given directly (any type; e.g. hand-built blocks).
    public mutating func addTensor(name: String, shape: [Int], type: GGMLType, rawData: [UInt8]) throws(GGUFError) {
        let info = try GGUFTensorInfo(name: name, shape: shape, type: type, offset: 0)
        guard rawData.count == info.byteCount else { throw .badShape(name: name) }
        guard !tensors.contains(where: { $0.info.name == name }) else { throw .duplicateTensor(name) }
        tensors.append((info, rawData))
    }

    /// The serialised file.
    public func data() throws(GGUFError) -> [UInt8] {
        var kv = entries
        var align = alignment
        if let explicit = kv.first(where: { $0.key == GGUFKeys.General.alignment })?.value {
            guard let a = explicit.int else {
                throw .typeMismatch(key: GGUFKeys.General.alignment, expected: "an integer")
            }
            align = a
        } else if alignment != GGUFParser.defaultAlignment, let a = UInt32(exactly: alignment) {
            kv.append((GGUFKeys.General.alignment, .uint32(a)))
        }
        guard align > 0, align & (align - 1) == 0, align <= 1 << 30 else { throw .badAlignment(align) }

        var out = ByteSink()
        out.u32(GGUFParser.magic)
        out.u32(3)
        out.u64(UInt64(tensors.count))
        out.u64(UInt64(kv.count))
        for (key, value) in kv {
            out.string(key)
            out.u32(value.valueType.rawValue)
            try out.value(value, key: key)
        }
        var offset = 0
        for (info, bytes) in tensors {
            out.string(info.name)
            out.u32(UInt32(info.shape.count))
            for dim in info.shape { out.u64(UInt64(dim)) }
            out.u32(info.type.rawValue)
            out.u64(UInt64(offset))
            offset += padded(bytes.count, align)
        }
        out.pad(to: align)
        for (_, bytes) in tensors {
            out.bytes.append(contentsOf: bytes)
            out.pad(to: align)
        }
        return out.bytes
    }

    /// Writes the serialised file to `path` (created or truncated).
    public func write(to path: String) throws(GGUFError) {
        let image = try data()
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .cannotWrite(path: path, errno: errno) }
        var failure: Int32 = 0
        image.withUnsafeBytes { buffer in
            var done = 0
            while done < buffer.count, let base = buffer.baseAddress {
                let n = systemWrite(fd, base + done, buffer.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    return
                }
                done += n
            }
        }
        if close(fd) != 0 && failure == 0 { failure = errno }
        if failure != 0 { throw .cannotWrite(path: path, errno: failure) }
    }

    private func padded(_ n: Int, _ align: Int) -> Int { (n + align - 1) / align * align }
}

private func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(fd, buffer, count)
    #else
    return Darwin.write(fd, buffer, count)
    #endif
}

/// Little-endian serialisation of GGUF primitives.
private struct ByteSink {
    var bytes: [UInt8] = []

    mutating func integer<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func u32(_ v: UInt32) { integer(v) }
    mutating func u64(_ v: UInt64) { integer(v) }

    mutating func string(_ s: String) {
        let utf8 = Array(s.utf8)
        u64(UInt64(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    mutating func pad(to align: Int) {
        let extra = (align - bytes.count % align) % align
        bytes.append(contentsOf: repeatElement(0, count: extra))
    }

    mutating func value(_ value: GGUFValue, key: String) throws(GGUFError) {
        switch value {
        case let .uint8(v): integer(v)
        case let .int8(v): integer(v)
        case let .uint16(v): integer(v)
        case let .int16(v): integer(v)
        case let .uint32(v): integer(v)
        case let .int32(v): integer(v)
        case let .uint64(v): integer(v)
        case let .int64(v): integer(v)
        case let .float32(v): integer(v.bitPattern)
        case let .float64(v): integer(v.bitPattern)
        case let .bool(v): integer(UInt8(v ? 1 : 0))
        case let .string(v): string(v)
        case let .array(elements):
            // An empty array is written with element type UINT8.
            let elementType = elements.first?.valueType ?? .uint8
            guard elements.allSatisfy({ $0.valueType == elementType }) else {
                throw .typeMismatch(key: key, expected: "an array of elements of one type")
            }
            u32(elementType.rawValue)
            u64(UInt64(elements.count))
            for element in elements { try self.value(element, key: key) }
        }
    }
}
