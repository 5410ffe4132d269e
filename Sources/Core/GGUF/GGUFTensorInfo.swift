// Description of one tensor of a GGUF file: name, ggml shape (ne0 first), element type and
// data offset; sizes are computed once, overflow-checked, when the info is created.

/// One tensor of a GGUF file. `shape[0]` (ne0) is the contiguous row length.
public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    /// ggml order: `shape[0]` = ne0, the number of contiguous elements in a row.
    public let shape: [Int]
    public let type: GGMLType
    /// Byte offset from the start of the file's tensor data section.
    public let offset: Int
    /// Product of `shape`.
    public let elementCount: Int
    /// Bytes of tensor data (`elementCount / blockSize * bytesPerBlock`).
    public let byteCount: Int

    /// Validates the shape against the type and computes sizes; `badShape` on zero or negative
    /// dimensions, more than 4 dimensions, a row not made of whole blocks, or size overflow.
    public init(name: String, shape: [Int], type: GGMLType, offset: Int) throws(GGUFError) {
        guard (1...4).contains(shape.count), offset >= 0 else { throw .badShape(name: name) }
        var count = 1
        for dim in shape {
            guard dim > 0 else { throw .badShape(name: name) }
            let (product, overflow) = count.multipliedReportingOverflow(by: dim)
            guard !overflow else { throw .badShape(name: name) }
            count = product
        }
        guard shape[0] % type.blockSize == 0 else { throw .badShape(name: name) }
        let (bytes, overflow) = (count / type.blockSize).multipliedReportingOverflow(by: type.bytesPerBlock)
        guard !overflow else { throw .badShape(name: name) }
        self.name = name
        self.shape = shape
        self.type = type
        self.offset = offset
        self.elementCount = count
        self.byteCount = bytes
    }

    /// ne0: the number of values in one row.
    public var rowLength: Int { shape[0] }
    /// Number of rows (`elementCount / rowLength`).
    public var rowCount: Int { elementCount / shape[0] }
    /// Bytes of one row of data.
    public var rowByteCount: Int { shape[0] / type.blockSize * type.bytesPerBlock }
}
