// `scen tiny-model`: a Gemma-3-shaped GGUF with tiny random weights (D = 16, six blocks) and the
// tokenizer of a real model file, so every service runs unchanged on it and trains an edit in
// milliseconds. For load and fault runs (bench/fault_soak.py), never for answers.
import ArgumentParser
import Core
import Foundation

struct TinyModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tiny-model",
        abstract: "Write a tiny random Gemma-3-shaped GGUF with the tokenizer of --model (for soak and load runs).")

    @OptionGroup var model: ModelOptions

    @Option(help: "Where to write the GGUF file.")
    var out: String

    @Option(help: "Seed of the random weights.")
    var seed: UInt64 = 42

    func run() throws {
        let tiny = try SyntheticGemma(seed: seed, tokenizerOf: model.openFile())
        try tiny.writer().write(to: out)
        print("\(out): \(tiny.blocks) blocks, D = \(tiny.d), F = \(tiny.f), vocabulary \(tiny.vocab)")
    }
}
