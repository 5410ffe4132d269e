// A dense row-major Float32 matrix, the storage type of the dequantised model weights.

public struct Matrix: Sendable, Equatable {
    /// Number of rows and row length; `values[r * cols + c]` is element (r, c).
    public let rows: Int
    public let cols: Int
    public var values: [Float]

    public init(rows: Int, cols: Int, values: [Float]) {
        precondition(values.count == rows * cols, "Matrix: \(values.count) values for \(rows)×\(cols)")
        self.rows = rows
        self.cols = cols
        self.values = values
    }

    public init(rows: Int, cols: Int) {
        self.init(rows: rows, cols: cols, values: [Float](repeating: 0, count: rows * cols))
    }

    /// Stacks matrices of equal width vertically (their rows, in order).
    public init(stacking parts: [Matrix]) {
        precondition(!parts.isEmpty && parts.allSatisfy { $0.cols == parts[0].cols })
        var v = [Float]()
        v.reserveCapacity(parts.reduce(0) { $0 + $1.values.count })
        for p in parts { v += p.values }
        self.init(rows: parts.reduce(0) { $0 + $1.rows }, cols: parts[0].cols, values: v)
    }

    /// Rows `range` as a new matrix.
    public func rows(_ range: Range<Int>) -> Matrix {
        Matrix(rows: range.count, cols: cols, values: Array(values[range.lowerBound * cols ..< range.upperBound * cols]))
    }

    public subscript(row: Int, col: Int) -> Float {
        get { values[row * cols + col] }
        set { values[row * cols + col] = newValue }
    }
}
