// `scen dump-activations`: layer L's down-projection input at every prompt token, for studying
// routing keys offline (README "Routing"). Not part of serving.
import ArgumentParser
import Core
import Foundation

struct DumpActivationsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump-activations",
        abstract: "Write layer L's down-projection input x [T, F] of each prompt (one per line of --prompts) to a binary file.",
        discussion: """
            Output, little-endian, per prompt in input order: Int32 T, Int32 tokens[T] (BOS first), \
            Float32 x[T·F] row-major. The prompts are used as given (apply any template beforehand).
            """)

    @Option(help: "Text file, one prompt per line (\\n inside a prompt written as the two characters \\n).")
    var prompts: String
    @Option(help: "Output file.") var out: String
    @Option(help: "The block L.") var layer: Int = 13
    @Option(help: "Also write the mean next-token distribution over every position of every prompt (Float32[vocab]) here.")
    var marginal: String?
    @Option(help: "Also write each prompt's next-token distribution after its last token here: per prompt, its --top most probable token ids (Int32) then their probabilities (Float32).")
    var nextToken: String?
    @Option(help: "Tokens per prompt in --next-token.") var top: Int = 32
    @OptionGroup var model: ModelOptions

    func run() throws {
        let (gemma, tokenizer) = try model.load()
        let lines = try String(contentsOfFile: prompts, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: true)
            .map { $0.replacingOccurrences(of: "\\n", with: "\n") }
        guard FileManager.default.createFile(atPath: out, contents: nil), let handle = FileHandle(forWritingAtPath: out) else {
            throw ValidationError("cannot write \(out)")
        }
        defer { try? handle.close() }
        let progress = ProgressLine(label: "activations")
        for (i, p) in lines.enumerated() {
            let tokens = tokenizer.encode(p, addBOS: true)
            let stack = try DownProjectionTrainingStack(model: gemma, layer: layer, tokens: tokens, targets: [])
            var data = Data()
            withUnsafeBytes(of: Int32(tokens.count).littleEndian) { data.append(contentsOf: $0) }
            tokens.withUnsafeBytes { data.append(contentsOf: $0) }
            stack.ffnInput.withUnsafeBytes { data.append(contentsOf: $0) }
            try handle.write(contentsOf: data)
            progress.update(Double(i + 1) / Double(lines.count))
        }
        progress.finish()
        if let nextToken { try writeNextToken(lines: lines, gemma: gemma, tokenizer: tokenizer, path: nextToken) }
        guard let marginal else { return }
        let q = try TokenWeights.meanNextTokenDistribution(model: gemma, sequences: lines.map { tokenizer.encode($0, addBOS: true) })
        try q.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: marginal)) }
    }

    private func writeNextToken(lines: [String], gemma: GemmaModel, tokenizer: GemmaTokenizer, path: String) throws {
        var data = Data()
        let sequences = lines.map { tokenizer.encode($0, addBOS: true) }
        let session = gemma.makeSession(capacity: max(16, sequences.map(\.count).max() ?? 0))
        for tokens in sequences {
            session.reset()
            guard var p = try session.prefill(tokens, logitRows: [tokens.count - 1]).first else { continue }
            let v = p.count
            p.withUnsafeMutableBufferPointer { Kernels.softmax($0.baseAddress!, count: v) }
            let ids = p.withUnsafeBufferPointer { Kernels.topIndices($0.baseAddress!, count: p.count, k: top) }
            ids.map { Int32($0).littleEndian }.withUnsafeBytes { data.append(contentsOf: $0) }
            ids.map { p[$0] }.withUnsafeBytes { data.append(contentsOf: $0) }
        }
        try data.write(to: URL(fileURLWithPath: path))
    }
}
