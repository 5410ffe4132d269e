// Decodes ggml tensor data (float and block-quantised types) to Float32, block by block.
// Block layouts and arithmetic follow ggml's `ggml-common.h` / `ggml-quants.c`
// (dequantize_row_*) and gguf-py `gguf/quants.py`, so results are bit-identical to both.

/// Decoders from ggml storage types to `Float`.
public enum Dequantizer {
    /// Decodes `count` elements of `type` stored at `src` into `dst`.
    /// `count` must be a multiple of `type.blockSize`; `src` must hold
    /// `count / blockSize * bytesPerBlock` bytes (the caller's responsibility).
    public static func dequantize(
        _ type: GGMLType, from src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>
    ) throws(GGUFError) {
        guard count >= 0, count % type.blockSize == 0 else {
            throw .badCount(count: count, blockSize: type.blockSize)
        }
        guard let kernel = kernel(for: type) else { throw .unsupportedQuantization(type) }
        kernel(src, count / type.blockSize, dst)
    }

    /// Decodes `blocks` consecutive blocks from the source into the destination.
    typealias Kernel = @Sendable (UnsafeRawPointer, Int, UnsafeMutablePointer<Float>) -> Void

    /// The decoder for `type`, or nil when the type is not supported.
    static func kernel(for type: GGMLType) -> Kernel? {
        switch type {
        case .f32: return f32
        case .f16: return f16
        case .bf16: return bf16
        case .q4_0: return q4_0
        case .q4_1: return q4_1
        case .q5_0: return q5_0
        case .q5_1: return q5_1
        case .q8_0: return q8_0
        case .q8_1: return q8_1
        case .q2_K: return q2_K
        case .q3_K: return q3_K
        case .q4_K: return q4_K
        case .q5_K: return q5_K
        case .q6_K: return q6_K
        case .q8_K: return q8_K
        default: return nil
        }
    }

    // MARK: Plain float types

    static func f32(_ src: UnsafeRawPointer, _ count: Int, _ dst: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: count * 4)
    }

    static func f16(_ src: UnsafeRawPointer, _ count: Int, _ dst: UnsafeMutablePointer<Float>) {
        for i in 0..<count { dst[i] = half(src, 2 * i) }
    }

    /// bfloat16 is the upper half of a float32.
    static func bf16(_ src: UnsafeRawPointer, _ count: Int, _ dst: UnsafeMutablePointer<Float>) {
        for i in 0..<count {
            let bits = UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
            dst[i] = Float(bitPattern: UInt32(bits) << 16)
        }
    }

    // MARK: Field readers

    /// An IEEE half at `offset`, widened to Float.
    @inline(__always)
    static func half(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
        Float(Float16(bitPattern: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self))))
    }

    @inline(__always)
    static func byte(_ p: UnsafeRawPointer, _ offset: Int) -> UInt8 {
        p.load(fromByteOffset: offset, as: UInt8.self)
    }

    @inline(__always)
    static func signedByte(_ p: UnsafeRawPointer, _ offset: Int) -> Int8 {
        p.load(fromByteOffset: offset, as: Int8.self)
    }
}
