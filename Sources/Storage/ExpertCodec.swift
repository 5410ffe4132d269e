// The versioned binary format of a stored SCEN expert: a change to one layer's FFN down
// projection W_down [D, F], either low-rank (ΔW = B·A, A [r, F], B [D, r]) or a full
// replacement W' [D, F] (stored as B, with A of shape [0, F]). Little-endian throughout:
//
//   offset  size  field
//   0       4     magic "SCEX"
//   4       2     format version (1)
//   6       1     value type: 0 = float32, 1 = float16
//   7       1     form: 0 = low-rank, 1 = full
//   8       4     layer (block index)
//   12      4     rows of A   (r; 0 for full)
//   16      4     cols of A   (F)
//   20      4     rows of B   (D)
//   24      4     cols of B   (r; F for full)
//   28      …     A row-major, then B row-major
//   end-32  32    SHA-256 of every byte before it
//
// Decoding validates every field and throws `ExpertCodecError`; it never traps on input.
import Core

/// One trained expert: how it changes layer `layer`'s down projection W_down [D, F].
public struct StoredExpert: Sendable, Equatable {
    public enum Form: UInt8, Sendable {
        /// y = x·W_downᵀ + (x·Aᵀ)·Bᵀ with A [r, F], B [D, r].
        case lowRank = 0
        /// y = x·W'ᵀ with W' = B [D, F]; A is [0, F].
        case full = 1
    }

    public var form: Form
    /// Block index whose W_down the expert changes.
    public var layer: Int
    /// A: [r, F] (low-rank) or [0, F] (full).
    public var a: Matrix
    /// B: [D, r] (low-rank) or W' [D, F] (full).
    public var b: Matrix

    /// r for low-rank; 0 for full.
    public var rank: Int { a.rows }

    public init(form: Form = .lowRank, layer: Int, a: Matrix, b: Matrix) {
        self.form = form
        self.layer = layer
        self.a = a
        self.b = b
    }

    /// Whether A and B have the shapes `form` requires (F = A's columns, D = B's rows > 0).
    var shapeProblem: String? {
        let (ra, f, d, cb) = (a.rows, a.cols, b.rows, b.cols)
        guard f > 0, d > 0, layer >= 0 else { return "layer \(layer), A \(ra)×\(f), B \(d)×\(cb)" }
        switch form {
        case .lowRank: return ra > 0 && cb == ra ? nil : "low-rank expert needs A [r, F], B [D, r] with r > 0; got A \(ra)×\(f), B \(d)×\(cb)"
        case .full: return ra == 0 && cb == f ? nil : "full expert needs A [0, F], B [D, F]; got A \(ra)×\(f), B \(d)×\(cb)"
        }
    }
}

public enum ExpertCodecError: Error, Sendable, Equatable, CustomStringConvertible {
    case truncated(length: Int, expected: Int)
    case badMagic([UInt8])
    case unsupportedVersion(UInt16)
    case unknownValueType(UInt8)
    case unknownForm(UInt8)
    case badShape(String)
    case checksumMismatch
    case nonFiniteValue(index: Int)

    public var description: String {
        switch self {
        case .truncated(let l, let e): "expert blob is \(l) bytes, expected \(e)"
        case .badMagic(let m): "expert blob does not start with SCEX (got \(m))"
        case .unsupportedVersion(let v): "expert format version \(v) is not supported (this build reads 1)"
        case .unknownValueType(let t): "unknown expert value type \(t)"
        case .unknownForm(let f): "unknown expert form \(f)"
        case .badShape(let s): "bad expert shape: \(s)"
        case .checksumMismatch: "expert checksum does not match its contents"
        case .nonFiniteValue(let i): "expert value \(i) is not finite"
        }
    }
}

public enum ExpertCodec {
    public static let magic: [UInt8] = Array("SCEX".utf8)
    public static let formatVersion: UInt16 = 1
    static let headerSize = 28
    static let checksumSize = 32
    /// Upper bound on any dimension (guards allocations against corrupt headers).
    static let maxDimension = 1 << 20
    static let maxValues = 1 << 28

    public enum ValueType: UInt8, Sendable {
        case float32 = 0
        case float16 = 1
        var size: Int { self == .float32 ? 4 : 2 }
    }

    /// Encodes `expert` (its shapes must fit its form).
    public static func encode(_ expert: StoredExpert, as type: ValueType = .float32) throws(ExpertCodecError) -> [UInt8] {
        if let problem = expert.shapeProblem { throw .badShape(problem) }
        let dims = [expert.layer, expert.a.rows, expert.a.cols, expert.b.rows, expert.b.cols]
        guard dims.allSatisfy({ $0 <= maxDimension }), expert.a.values.count + expert.b.values.count <= maxValues else {
            throw .badShape("dimensions \(dims) exceed the format's limits")
        }
        var out = [UInt8]()
        out.reserveCapacity(headerSize + (expert.a.values.count + expert.b.values.count) * type.size + checksumSize)
        out += magic
        append(UInt16(formatVersion), to: &out)
        out.append(type.rawValue)
        out.append(expert.form.rawValue)
        for v in dims { append(UInt32(v), to: &out) }
        var index = 0
        for values in [expert.a.values, expert.b.values] {
            for x in values {
                guard x.isFinite else { throw .nonFiniteValue(index: index) }
                switch type {
                case .float32: append(x.bitPattern, to: &out)
                case .float16:
                    let h = Float16(x)
                    guard h.isFinite else { throw .nonFiniteValue(index: index) }
                    append(h.bitPattern, to: &out)
                }
                index += 1
            }
        }
        out += Checksum.sha256(out)
        return out
    }

    /// The SHA-256 trailer of an encoded blob (what the `experts.checksum` column stores).
    public static func checksum(of blob: [UInt8]) -> [UInt8] {
        blob.count >= checksumSize ? Array(blob.suffix(checksumSize)) : []
    }

    public static func decode(_ blob: [UInt8]) throws(ExpertCodecError) -> StoredExpert {
        guard blob.count >= headerSize + checksumSize else { throw .truncated(length: blob.count, expected: headerSize + checksumSize) }
        guard Array(blob[0..<4]) == magic else { throw .badMagic(Array(blob[0..<4])) }
        let version = UInt16(readUInt(blob, 4, 2))
        guard version == formatVersion else { throw .unsupportedVersion(version) }
        guard let type = ValueType(rawValue: blob[6]) else { throw .unknownValueType(blob[6]) }
        guard let form = StoredExpert.Form(rawValue: blob[7]) else { throw .unknownForm(blob[7]) }
        let dims = (0..<5).map { Int(readUInt(blob, 8 + 4 * $0, 4)) }
        let (layer, ra, ca, rb, cb) = (dims[0], dims[1], dims[2], dims[3], dims[4])
        guard dims.allSatisfy({ $0 <= maxDimension }), ra * ca + rb * cb <= maxValues else {
            throw .badShape("dimensions \(dims) exceed the format's limits")
        }
        let countA = ra * ca, count = countA + rb * cb
        let expected = headerSize + count * type.size + checksumSize
        guard blob.count == expected else { throw .truncated(length: blob.count, expected: expected) }
        guard Checksum.sha256(blob[0..<(expected - checksumSize)]) == Array(blob[(expected - checksumSize)...]) else {
            throw .checksumMismatch
        }
        var values = [Float](repeating: 0, count: count)
        for i in 0..<count {
            let at = headerSize + i * type.size
            let x: Float = switch type {
            case .float32: Float(bitPattern: UInt32(readUInt(blob, at, 4)))
            case .float16: Float(Float16(bitPattern: UInt16(readUInt(blob, at, 2))))
            }
            guard x.isFinite else { throw .nonFiniteValue(index: i) }
            values[i] = x
        }
        let expert = StoredExpert(form: form, layer: layer, a: Matrix(rows: ra, cols: ca, values: Array(values[0..<countA])),
                                  b: Matrix(rows: rb, cols: cb, values: Array(values[countA...])))
        if let problem = expert.shapeProblem { throw .badShape(problem) }
        return expert
    }

    private static func append<T: FixedWidthInteger>(_ v: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { out += $0 }
    }

    private static func readUInt(_ b: [UInt8], _ at: Int, _ size: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in (0..<size).reversed() { v = v << 8 | UInt64(b[at + i]) }
        return v
    }
}

/// Little-endian float32 vectors as bytea (indexing-neuron weights and keys).
public enum FloatVectorCodec {
    public static func encode(_ v: [Float]) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(v.count * 4)
        for x in v { withUnsafeBytes(of: x.bitPattern.littleEndian) { out += $0 } }
        return out
    }

    public static func decode(_ b: [UInt8], count: Int) throws(ExpertCodecError) -> [Float] {
        guard b.count == count * 4 else { throw .truncated(length: b.count, expected: count * 4) }
        return (0..<count).map { i in
            Float(bitPattern: UInt32(b[4 * i]) | UInt32(b[4 * i + 1]) << 8 | UInt32(b[4 * i + 2]) << 16 | UInt32(b[4 * i + 3]) << 24)
        }
    }
}
