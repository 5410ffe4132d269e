import ArgumentParser
import Core
import Foundation

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks (see bench/ for the scripts that compare against llama.cpp).",
        subcommands: [GenerateBench.self])
}

/// Prefill and decode throughput, measured the way bench/llama_cpp_bench.py measures llama.cpp.
struct GenerateBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate", abstract: "Prefill and decode tokens/s of the base model; prints one JSON line.")

    @Option(help: "A file whose text is the prompt (default: a fixed paragraph cut to --prompt-tokens).")
    var promptFile: String?

    @Option(help: "Prompt length in tokens when no --prompt-file is given.")
    var promptTokens: Int = 250

    @Option(help: "Greedy tokens decoded after the prompt.")
    var decodeTokens: Int = 128

    @Option(help: "Timed runs (the median is reported), after one warm-up.")
    var runs: Int = 3

    @OptionGroup var model: ModelOptions

    static let paragraph = """
        The history of science is the study of the development of science and scientific knowledge, \
        including both the natural and social sciences. Science is a body of empirical, theoretical, \
        and practical knowledge about the natural world, produced by scientists who emphasize the \
        observation, explanation, and prediction of real-world phenomena.
        """

    func run() throws {
        let (gemma, tokenizer) = try model.load()
        var ids: [Int32]
        if let promptFile {
            ids = tokenizer.encode(try String(contentsOfFile: promptFile, encoding: .utf8), addBOS: true)
        } else {
            ids = [tokenizer.bosID]
            while ids.count < promptTokens { ids += tokenizer.encode(" " + Self.paragraph, addBOS: false) }
            ids = Array(ids.prefix(promptTokens))
        }
        let result = try GenerationBenchmark.run(model: gemma, promptIDs: ids, decodeTokens: decodeTokens, runs: runs)
        FileHandle.standardError.write(Data("\(result)\n".utf8))
        let line: [String: Any] = [
            "engine": "scen", "threads": result.threads, "prompt_tokens": result.promptTokens,
            "prefill_tok_s": (result.prefillTokensPerSecond * 10).rounded() / 10,
            "decode_tok_s": (result.decodeTokensPerSecond * 10).rounded() / 10,
            "decode_tokens": result.decodeTokens,
            "peak_rss_mb": peakResidentMegabytes(),
        ]
        print(String(decoding: try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]), as: UTF8.self))
    }
}

/// Peak resident set size of this process (VmHWM), in MB.
func peakResidentMegabytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
          let kb = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else { return -1 }
    return kb / 1024
}
