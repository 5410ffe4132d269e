// `--model PATH` for every subcommand that runs Gemma: flag > $SCEN_MODEL > models/… default.
import ArgumentParser
import Core
import Foundation
import Storage

struct ModelOptions: ParsableArguments {
    @Option(help: "The GGUF model file (default: $SCEN_MODEL or models/gemma-3-270m-q4_k_m.gguf).")
    var model: String?

    @Option(help: "Threads for the forward pass.")
    var threads: Int = 2

    @Option(help: "Arithmetic: float32 (Float32 on the exactly decoded weights) or llamaCppCompatible (llama.cpp's CPU kernels, bit for bit).")
    var numerics: GemmaNumerics = .float32

    var path: String { SettingsResolver.modelPath(flag: model) }

    func openFile() throws -> GGUFFile {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ValidationError("model file \(path) not found: run scripts/bootstrap, or pass --model")
        }
        return try GGUFFile(path: path)
    }

    func loadTokenizer() throws -> GemmaTokenizer { try GemmaTokenizer(gguf: openFile()) }

    /// Loads the model and its tokenizer, reporting progress on stderr.
    func load(quiet: Bool = false) throws -> (GemmaModel, GemmaTokenizer) {
        let file = try openFile()
        let tokenizer = try GemmaTokenizer(gguf: file)
        let progress = quiet ? nil : ProgressLine(label: "loading \(URL(fileURLWithPath: path).lastPathComponent)")
        let model = try GemmaModel(file: file, threads: threads, numerics: numerics) { _, fraction in progress?.update(fraction) }
        progress?.finish()
        return (model, tokenizer)
    }
}

/// A one-line progress indicator on stderr (only when stderr is a terminal).
final class ProgressLine {
    private let label: String
    private let start = Date()
    private let isTerminal = isatty(STDERR_FILENO) == 1
    private var lastPercent = -1

    init(label: String) { self.label = label }

    func update(_ fraction: Double) {
        let percent = Int((fraction * 100).rounded(.down))
        guard isTerminal, percent != lastPercent else { return }
        lastPercent = percent
        FileHandle.standardError.write(Data("\r\(label): \(percent)%".utf8))
    }

    func finish() {
        let seconds = String(format: "%.1f", Date().timeIntervalSince(start))
        FileHandle.standardError.write(Data("\(isTerminal ? "\r" : "")\(label): done in \(seconds) s\n".utf8))
    }
}

extension GemmaNumerics: ExpressibleByArgument {}
