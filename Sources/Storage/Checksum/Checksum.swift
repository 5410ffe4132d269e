// SHA-256 checksums of stored experts, migration files and dead-letter notes, by swift-crypto
// (BoringSSL's implementation on Linux). Checked against the FIPS 180-4 test vectors in StorageTests.
import Crypto

public enum Checksum {
    /// The 32-byte SHA-256 digest of `bytes`.
    public static func sha256<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        var hasher = SHA256()
        let contiguous: Void? = bytes.withContiguousStorageIfAvailable { hasher.update(bufferPointer: UnsafeRawBufferPointer($0)) }
        if contiguous == nil { hasher.update(data: Array(bytes)) }
        return Array(hasher.finalize())
    }

    /// The SHA-256 digest of `bytes` as 64 lowercase hex digits.
    public static func sha256Hex<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        sha256(bytes).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}
