// Typed errors raised while reading, validating, dequantising or writing GGUF files.
// Every malformed-input path of the reader ends in one of these; none traps.

/// Why a GGUF file could not be read, decoded or written.
public enum GGUFError: Error, Sendable, Equatable, CustomStringConvertible {
    case cannotOpen(path: String, errno: Int32)
    case cannotWrite(path: String, errno: Int32)
    case badMagic(UInt32)
    case unsupportedVersion(UInt32)
    /// The input ended while reading `what`, which starts at byte offset `at`.
    case truncated(what: String, at: Int)
    /// A count (of KV pairs, tensors, array elements, string bytes) that cannot fit in the input.
    case absurdCount(what: String, count: UInt64)
    case unknownValueType(UInt32, key: String)
    case unknownTensorType(UInt32, tensor: String)
    case tensorOutOfBounds(name: String)
    case misaligned(name: String)
    case badAlignment(Int)
    case duplicateKey(String)
    case duplicateTensor(String)
    case invalidUTF8(at: Int)
    case missingKey(String)
    case missingTensor(String)
    case typeMismatch(key: String, expected: String)
    case unsupportedQuantization(GGMLType)
    case badShape(name: String)
    /// A dequantisation/quantisation request whose element count is not a whole number of blocks,
    /// or a row range outside the tensor.
    case badCount(count: Int, blockSize: Int)
    case rowsOutOfRange(name: String, rows: Range<Int>, rowCount: Int)
    /// Arrays nested deeper than the reader accepts.
    case nestingTooDeep(key: String)

    public var description: String {
        switch self {
        case let .cannotOpen(path, errno): return "GGUF: cannot open \(path) (errno \(errno))"
        case let .cannotWrite(path, errno): return "GGUF: cannot write \(path) (errno \(errno))"
        case let .badMagic(magic): return "GGUF: bad magic 0x\(String(magic, radix: 16)) (not a GGUF file)"
        case let .unsupportedVersion(version): return "GGUF: unsupported version \(version) (2 and 3 are read)"
        case let .truncated(what, at): return "GGUF: input ends inside \(what) starting at byte \(at)"
        case let .absurdCount(what, count): return "GGUF: absurd \(what) \(count)"
        case let .unknownValueType(type, key): return "GGUF: unknown value type \(type) for key '\(key)'"
        case let .unknownTensorType(type, tensor): return "GGUF: unknown ggml type \(type) for tensor '\(tensor)'"
        case let .tensorOutOfBounds(name): return "GGUF: data of tensor '\(name)' lies beyond the end of the file"
        case let .misaligned(name): return "GGUF: data offset of tensor '\(name)' is not a multiple of the alignment"
        case let .badAlignment(value): return "GGUF: general.alignment \(value) is not a positive power of two"
        case let .duplicateKey(key): return "GGUF: duplicate metadata key '\(key)'"
        case let .duplicateTensor(name): return "GGUF: duplicate tensor '\(name)'"
        case let .invalidUTF8(at): return "GGUF: string at byte \(at) is not valid UTF-8"
        case let .missingKey(key): return "GGUF: missing metadata key '\(key)'"
        case let .missingTensor(name): return "GGUF: missing tensor '\(name)'"
        case let .typeMismatch(key, expected): return "GGUF: '\(key)' is not \(expected)"
        case let .unsupportedQuantization(type): return "GGUF: no dequantiser for ggml type \(type.name)"
        case let .badShape(name): return "GGUF: bad shape for tensor '\(name)'"
        case let .badCount(count, blockSize): return "GGUF: \(count) elements is not a multiple of the block size \(blockSize)"
        case let .rowsOutOfRange(name, rows, rowCount):
            return "GGUF: rows \(rows) out of range for tensor '\(name)' with \(rowCount) rows"
        case let .nestingTooDeep(key): return "GGUF: arrays nested too deeply under key '\(key)'"
        }
    }
}
