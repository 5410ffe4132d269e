// Where the real model and the oracle fixtures are, for every test target (one model load per
// test process, which links all test targets together). The suites
// run when the model file exists, or when `make test` requires it (SCEN_REQUIRE_MODEL=1), in
// which case a missing model fails them with a message saying how to get it.
import Core
import Foundation

public enum ModelTestEnvironment {
    /// The folder holding Package.swift, found by walking up from this file.
    public static let packageRoot: URL? = {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while dir.path != "/" {
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) { return dir }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }()

    /// `SCEN_MODEL`, else models/gemma-3-270m-q4_k_m.gguf under the package root.
    public static let modelPath: String? = {
        if let path = ProcessInfo.processInfo.environment["SCEN_MODEL"], !path.isEmpty { return path }
        return packageRoot?.appendingPathComponent("models/gemma-3-270m-q4_k_m.gguf").path
    }()

    public static let modelExists = modelPath.map { FileManager.default.fileExists(atPath: $0) } ?? false
    public static let requireModel = ProcessInfo.processInfo.environment["SCEN_REQUIRE_MODEL"] == "1"
    /// Run when the model is present, or when its absence must fail the run.
    public static let enabled = modelExists || requireModel

    public struct MissingModel: Error, CustomStringConvertible {
        public let path: String
        public var description: String { "model file \(path) is missing: run scripts/bootstrap" }
    }

    /// The real model file, opened (memory-mapped) once for every suite.
    public static let file: Result<GGUFFile, any Error> = {
        guard modelExists, let modelPath else { return .failure(MissingModel(path: modelPath ?? "models/gemma-3-270m-q4_k_m.gguf")) }
        return Result { try GGUFFile(path: modelPath) }
    }()

    /// The real model and its tokenizer, each loaded once for every suite.
    public static let model: Result<GemmaModel, any Error> = file.flatMap { f in Result { try GemmaModel(file: f) } }
    public static let tokenizer: Result<GemmaTokenizer, any Error> = file.flatMap { f in Result { try GemmaTokenizer(gguf: f) } }

    /// The bytes of Tests/Fixtures/`name`.
    public static func fixture(_ name: String) throws -> Data {
        guard let root = packageRoot else { throw MissingModel(path: "Package.swift not found") }
        return try Data(contentsOf: root.appendingPathComponent("Tests/Fixtures/\(name)"))
    }
}
