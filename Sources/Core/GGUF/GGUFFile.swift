// A parsed, immutable GGUF file: metadata, tensor infos and the tensor data, read from a
// read-only private memory map (or from an in-memory copy) and kept until deinit.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A GGUF model file. Immutable after init, so it may be shared across threads.
public final class GGUFFile: @unchecked Sendable {
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    /// Tensor infos in file order.
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    /// Byte offset of the tensor data section from the start of the file.
    public let dataOffset: Int
    /// Total size of the file (or buffer) in bytes.
    public let fileSize: Int

    private let base: UnsafeRawPointer?
    private let dataSize: Int
    private let storage: Storage
    private let tensorIndex: [String: Int]

    private enum Storage {
        case mapped(UnsafeMutableRawPointer, Int)
        case allocated(UnsafeMutableRawPointer)
        case empty
    }

    /// Memory-maps the file at `path` (read-only, private) and parses its header.
    public convenience init(path: String) throws(GGUFError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .cannotOpen(path: path, errno: errno) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .cannotOpen(path: path, errno: errno) }
        guard let size = Int(exactly: info.st_size), size > 0 else {
            try self.init(storage: .empty, base: nil, count: 0)
            return
        }
        guard let pointer = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0),
              pointer != UnsafeMutableRawPointer(bitPattern: -1)
        else { throw .cannotOpen(path: path, errno: errno) }
        try self.init(storage: .mapped(pointer, size), base: UnsafeRawPointer(pointer), count: size)
    }

    /// Parses a GGUF image held in memory (the bytes are copied).
    public convenience init(data: [UInt8]) throws(GGUFError) {
        guard !data.isEmpty else {
            try self.init(storage: .empty, base: nil, count: 0)
            return
        }
        let pointer = UnsafeMutableRawPointer.allocate(byteCount: data.count, alignment: 64)
        data.withUnsafeBytes { source in
            if let start = source.baseAddress { pointer.copyMemory(from: start, byteCount: source.count) }
        }
        try self.init(storage: .allocated(pointer), base: UnsafeRawPointer(pointer), count: data.count)
    }

    private init(storage: Storage, base: UnsafeRawPointer?, count: Int) throws(GGUFError) {
        let header: GGUFHeader
        do {
            var parser = GGUFParser(UnsafeRawBufferPointer(start: base, count: count))
            header = try parser.parseHeader()
        } catch {
            GGUFFile.release(storage)
            throw error
        }
        self.storage = storage
        self.base = base
        self.fileSize = count
        self.version = header.version
        self.metadata = header.metadata
        self.metadataKeys = header.metadataKeys
        self.tensors = header.tensors
        self.alignment = header.alignment
        self.dataOffset = header.dataOffset
        self.dataSize = header.dataSize
        var index: [String: Int] = [:]
        for (i, t) in header.tensors.enumerated() { index[t.name] = i }
        self.tensorIndex = index
    }

    deinit { GGUFFile.release(storage) }

    private static func release(_ storage: Storage) {
        switch storage {
        case let .mapped(pointer, size): munmap(pointer, size)
        case let .allocated(pointer): pointer.deallocate()
        case .empty: break
        }
    }

    // MARK: Tensors

    public func tensor(named name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// The tensor called `name`, or `GGUFError.missingTensor`.
    public func require(_ name: String) throws(GGUFError) -> GGUFTensorInfo {
        guard let info = tensor(named: name) else { throw .missingTensor(name) }
        return info
    }

    /// The stored bytes of `info`, valid as long as this file lives. Empty if `info` does not
    /// describe data inside this file (e.g. it came from another file).
    public func rawBytes(of info: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        guard let start = checkedDataStart(of: info) else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: start, count: info.byteCount)
    }

    /// Start of `info`'s data if it lies inside this file's data section.
    func checkedDataStart(of info: GGUFTensorInfo) -> UnsafeRawPointer? {
        guard let base, info.offset >= 0, info.byteCount >= 0 else { return nil }
        let (end, overflow) = info.offset.addingReportingOverflow(info.byteCount)
        guard !overflow, end <= dataSize else { return nil }
        return base + dataOffset + info.offset
    }

    // MARK: Typed metadata

    /// The value of `key`, or `GGUFError.missingKey`.
    public func value(_ key: String) throws(GGUFError) -> GGUFValue {
        guard let value = metadata[key] else { throw .missingKey(key) }
        return value
    }

    private func typed<T>(_ key: String, _ expected: String, _ get: (GGUFValue) -> T?) throws(GGUFError) -> T? {
        guard let value = metadata[key] else { return nil }
        guard let typed = get(value) else { throw .typeMismatch(key: key, expected: expected) }
        return typed
    }

    private func required<T>(_ key: String, _ expected: String, _ get: (GGUFValue) -> T?) throws(GGUFError) -> T {
        guard let typed = try typed(key, expected, get) else { throw .missingKey(key) }
        return typed
    }

    public func int(_ key: String) throws(GGUFError) -> Int { try required(key, "an integer") { $0.int } }
    public func float(_ key: String) throws(GGUFError) -> Float { try required(key, "a number") { $0.float } }
    public func double(_ key: String) throws(GGUFError) -> Double { try required(key, "a number") { $0.double } }
    public func string(_ key: String) throws(GGUFError) -> String { try required(key, "a string") { $0.string } }
    public func bool(_ key: String) throws(GGUFError) -> Bool { try required(key, "a bool") { $0.bool } }
    public func strings(_ key: String) throws(GGUFError) -> [String] {
        try required(key, "an array of strings") { $0.strings }
    }
    public func ints(_ key: String) throws(GGUFError) -> [Int] {
        try required(key, "an array of integers") { $0.ints }
    }
    public func floats(_ key: String) throws(GGUFError) -> [Float] {
        try required(key, "an array of numbers") { $0.floats }
    }

    /// nil when `key` is absent; `typeMismatch` when present with another type.
    public func optionalInt(_ key: String) throws(GGUFError) -> Int? { try typed(key, "an integer") { $0.int } }
    public func optionalFloat(_ key: String) throws(GGUFError) -> Float? { try typed(key, "a number") { $0.float } }
    public func optionalDouble(_ key: String) throws(GGUFError) -> Double? { try typed(key, "a number") { $0.double } }
    public func optionalString(_ key: String) throws(GGUFError) -> String? { try typed(key, "a string") { $0.string } }
    public func optionalBool(_ key: String) throws(GGUFError) -> Bool? { try typed(key, "a bool") { $0.bool } }
    public func optionalStrings(_ key: String) throws(GGUFError) -> [String]? {
        try typed(key, "an array of strings") { $0.strings }
    }
    public func optionalInts(_ key: String) throws(GGUFError) -> [Int]? {
        try typed(key, "an array of integers") { $0.ints }
    }
    public func optionalFloats(_ key: String) throws(GGUFError) -> [Float]? {
        try typed(key, "an array of numbers") { $0.floats }
    }
}
