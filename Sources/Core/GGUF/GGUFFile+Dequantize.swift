// Whole-tensor and row-range decoding of a GGUFFile's tensors to Float32 / Float16, split into
// row chunks run in parallel (DispatchQueue.concurrentPerform) for large tensors.

import Dispatch

extension GGUFFile {
    /// Tensors with fewer elements than this are decoded on the calling thread.
    static let parallelThreshold = 1 << 16
    /// Rows per parallel work item are chosen so an item decodes about this many elements.
    static let elementsPerChunk = 1 << 16

    /// Every element of `info`, row-major (a row is `shape[0]` consecutive values).
    public func dequantize(_ info: GGUFTensorInfo) throws(GGUFError) -> [Float] {
        try validate(info, rows: 0..<info.rowCount)
        return [Float](unsafeUninitializedCapacity: info.elementCount) { buffer, initialized in
            if let out = buffer.baseAddress {
                // Validated above, so this cannot fail.
                try? decodeRows(info, rows: 0..<info.rowCount, into: out)
            }
            initialized = info.elementCount
        }
    }

    /// Decodes rows `rows` of `info` into `out`, which must have room for
    /// `rows.count * info.rowLength` floats.
    public func dequantizeRows(
        _ info: GGUFTensorInfo, rows: Range<Int>, into out: UnsafeMutablePointer<Float>
    ) throws(GGUFError) {
        try validate(info, rows: rows)
        try decodeRows(info, rows: rows, into: out)
    }

    /// Every element of `info` rounded to Float16 (for large tensors kept in 16 bits, such as
    /// the token embedding). F16 data is copied as is.
    public func dequantizeF16(_ info: GGUFTensorInfo) throws(GGUFError) -> [Float16] {
        try validate(info, rows: 0..<info.rowCount)
        guard let src = checkedDataStart(of: info) else { throw .tensorOutOfBounds(name: info.name) }
        let count = info.elementCount
        if info.type == .f16 {
            return [Float16](unsafeUninitializedCapacity: count) { buffer, initialized in
                if let out = buffer.baseAddress {
                    UnsafeMutableRawPointer(out).copyMemory(from: src, byteCount: count * 2)
                }
                initialized = count
            }
        }
        guard let kernel = Dequantizer.kernel(for: info.type) else { throw .unsupportedQuantization(info.type) }
        let rowLength = info.rowLength
        let rowBytes = info.rowByteCount
        let blocksPerRow = rowLength / info.type.blockSize
        let rowsPerChunk = max(1, GGUFFile.elementsPerChunk / rowLength)
        let chunks = (info.rowCount + rowsPerChunk - 1) / rowsPerChunk
        let rowCount = info.rowCount
        return [Float16](unsafeUninitializedCapacity: count) { buffer, initialized in
            guard let out = buffer.baseAddress else { initialized = 0; return }
            let io = ChunkIO(src: src, dst: UnsafeMutableRawPointer(out))
            let work: @Sendable (Int) -> Void = { chunk in
                let first = chunk * rowsPerChunk
                let last = min(rowCount, first + rowsPerChunk)
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: rowLength)
                defer { scratch.deallocate() }
                let target = io.dst.assumingMemoryBound(to: Float16.self)
                for row in first..<last {
                    kernel(io.src + row * rowBytes, blocksPerRow, scratch)
                    let rowOut = target + row * rowLength
                    for i in 0..<rowLength { rowOut[i] = Float16(scratch[i]) }
                }
            }
            if count < GGUFFile.parallelThreshold || chunks == 1 {
                for chunk in 0..<chunks { work(chunk) }
            } else {
                DispatchQueue.concurrentPerform(iterations: chunks, execute: work)
            }
            initialized = count
        }
    }

    // MARK: Internals

    private func validate(_ info: GGUFTensorInfo, rows: Range<Int>) throws(GGUFError) {
        guard checkedDataStart(of: info) != nil else { throw .tensorOutOfBounds(name: info.name) }
        guard Dequantizer.kernel(for: info.type) != nil else { throw .unsupportedQuantization(info.type) }
        guard rows.lowerBound >= 0, rows.upperBound <= info.rowCount else {
            throw .rowsOutOfRange(name: info.name, rows: rows, rowCount: info.rowCount)
        }
    }

    /// Decodes validated rows, in parallel chunks when the range is large.
    private func decodeRows(
        _ info: GGUFTensorInfo, rows: Range<Int>, into out: UnsafeMutablePointer<Float>
    ) throws(GGUFError) {
        guard let start = checkedDataStart(of: info) else { throw .tensorOutOfBounds(name: info.name) }
        guard let kernel = Dequantizer.kernel(for: info.type) else { throw .unsupportedQuantization(info.type) }
        let rowLength = info.rowLength
        let rowBytes = info.rowByteCount
        let blocksPerRow = rowLength / info.type.blockSize
        let src = start + rows.lowerBound * rowBytes
        let rowCount = rows.count
        if rowCount * rowLength < GGUFFile.parallelThreshold {
            kernel(src, rowCount * blocksPerRow, out)
            return
        }
        let rowsPerChunk = max(1, GGUFFile.elementsPerChunk / rowLength)
        let chunks = (rowCount + rowsPerChunk - 1) / rowsPerChunk
        let io = ChunkIO(src: src, dst: UnsafeMutableRawPointer(out))
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            let first = chunk * rowsPerChunk
            let n = min(rowCount - first, rowsPerChunk)
            let target = io.dst.assumingMemoryBound(to: Float.self)
            kernel(io.src + first * rowBytes, n * blocksPerRow, target + first * rowLength)
        }
    }
}

/// Source and destination addresses shared by parallel workers that touch disjoint row chunks
/// of memory owned by the caller for the whole (synchronous) concurrentPerform.
private struct ChunkIO: @unchecked Sendable {
    let src: UnsafeRawPointer
    let dst: UnsafeMutableRawPointer
}
