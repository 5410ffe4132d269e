// A GGUF metadata value and its on-disk type code (`enum gguf_type` in ggml's gguf.h),
// with lenient numeric accessors for reading model hyper-parameters.

/// A metadata value of a GGUF file.
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8)
    case int8(Int8)
    case uint16(UInt16)
    case int16(Int16)
    case uint32(UInt32)
    case int32(Int32)
    case float32(Float)
    case bool(Bool)
    case string(String)
    /// Elements must all have the same type (the GGUF array element type).
    case array([GGUFValue])
    case uint64(UInt64)
    case int64(Int64)
    case float64(Double)

    /// The value as an `Int`, for every integer case whose value fits; nil otherwise.
    public var int: Int? {
        switch self {
        case let .uint8(v): return Int(v)
        case let .int8(v): return Int(v)
        case let .uint16(v): return Int(v)
        case let .int16(v): return Int(v)
        case let .uint32(v): return Int(v)
        case let .int32(v): return Int(v)
        case let .uint64(v): return Int(exactly: v)
        case let .int64(v): return Int(exactly: v)
        default: return nil
        }
    }

    /// The value as a `Double`, for every numeric case (integers converted); nil otherwise.
    public var double: Double? {
        switch self {
        case let .float32(v): return Double(v)
        case let .float64(v): return v
        case let .uint64(v): return Double(v)
        case let .int64(v): return Double(v)
        default: return int.map(Double.init)
        }
    }

    /// The value as a `Float`, for every numeric case (integers and doubles converted); nil otherwise.
    public var float: Float? {
        if case let .float32(v) = self { return v }
        return double.map(Float.init)
    }

    public var string: String? {
        if case let .string(v) = self { return v }
        return nil
    }

    public var bool: Bool? {
        if case let .bool(v) = self { return v }
        return nil
    }

    public var array: [GGUFValue]? {
        if case let .array(v) = self { return v }
        return nil
    }

    /// An array of strings; nil unless every element is a string.
    public var strings: [String]? {
        guard case let .array(elements) = self else { return nil }
        var out: [String] = []
        out.reserveCapacity(elements.count)
        for element in elements {
            guard case let .string(s) = element else { return nil }
            out.append(s)
        }
        return out
    }

    /// An array of integers; nil unless every element is an integer that fits in `Int`.
    public var ints: [Int]? {
        guard case let .array(elements) = self else { return nil }
        var out: [Int] = []
        out.reserveCapacity(elements.count)
        for element in elements {
            guard let v = element.int else { return nil }
            out.append(v)
        }
        return out
    }

    /// An array of numbers as `Float`; nil unless every element is numeric.
    public var floats: [Float]? {
        guard case let .array(elements) = self else { return nil }
        var out: [Float] = []
        out.reserveCapacity(elements.count)
        for element in elements {
            guard let v = element.float else { return nil }
            out.append(v)
        }
        return out
    }

    /// The on-disk type code of this value.
    public var valueType: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .float32: return .float32
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        case .uint64: return .uint64
        case .int64: return .int64
        case .float64: return .float64
        }
    }
}

/// The on-disk type code of a GGUF metadata value.
public enum GGUFValueType: UInt32, Sendable, CaseIterable {
    case uint8 = 0
    case int8 = 1
    case uint16 = 2
    case int16 = 3
    case uint32 = 4
    case int32 = 5
    case float32 = 6
    case bool = 7
    case string = 8
    case array = 9
    case uint64 = 10
    case int64 = 11
    case float64 = 12

    /// Encoded size of a scalar of this type; nil for strings and arrays (variable size).
    var fixedSize: Int? {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64: return 8
        case .string, .array: return nil
        }
    }
}
