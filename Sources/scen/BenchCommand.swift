import ArgumentParser
import Core
import Foundation

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks (see bench/ for the scripts that compare against llama.cpp).",
        subcommands: [GenerateBench.self, RoutingBench.self])
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

    @Option(help: "Also decode this many sequences together (batched) and report their total decode tokens/s.")
    var batch: [Int] = []

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
        var line: [String: Any] = [
            "engine": "scen", "threads": result.threads, "prompt_tokens": result.promptTokens,
            "prefill_tok_s": (result.prefillTokensPerSecond * 10).rounded() / 10,
            "decode_tok_s": (result.decodeTokensPerSecond * 10).rounded() / 10,
            "decode_tokens": result.decodeTokens,
            "peak_rss_mb": peakResidentMegabytes(),
            "kernels": QuantizedKernels.current.description,
        ]
        for n in batch {
            let rate = try GenerationBenchmark.batchedDecode(model: gemma, promptIDs: ids, sequences: n, decodeTokens: min(decodeTokens, 64), runs: runs)
            FileHandle.standardError.write(Data(String(format: "batch of %d: %.1f decode tok/s in total\n", n, rate).utf8))
            line["batch_\(n)_decode_tok_s"] = (rate * 10).rounded() / 10
        }
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

/// Routing overhead: the same greedy generation with no active edit and with N active edits
/// whose neurons do not fire (so the answer is the base model's and only routing costs).
struct RoutingBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "routing", abstract: "Cost of routing with N active edits versus none; prints one JSON line.")

    @Option(help: "Active edits in the routing table.")
    var edits: Int = 1000

    @Option(help: "Generated tokens per request.")
    var tokens: Int = 16

    @Option(help: "Timed requests per table (the median is reported).")
    var requests: Int = 15

    @OptionGroup var model: ModelOptions

    func run() throws {
        let (gemma, tokenizer) = try model.load()
        let hp = SCENHyperparameters()
        let pool = try NegativePool.shared(model: gemma, tokenizer: tokenizer, layer: hp.layer, pooling: hp.keyPooling)
        let empty = EditIndex(hyperparameters: hp, pool: pool, ffnSize: gemma.config.ffnSize)
        var rng = SystemRandomNumberGenerator()
        let f = gemma.config.ffnSize, d = gemma.config.hiddenSize
        func noise(_ n: Int, _ scale: Float) -> [Float] { (0..<n).map { _ in Float.random(in: -scale...scale, using: &rng) } }
        // Silent neurons (bias −20: sigmoid ≈ 0), random keys and rank-4 experts of the real shapes.
        let entries = (0..<edits).map { i in
            EditEntry(editID: String(i), prompt: "synthetic edit \(i)", target: " x",
                      expert: Expert(form: .lowRank, layer: hp.layer, a: Matrix(rows: hp.rank, cols: f, values: noise(hp.rank * f, 0.01)),
                                     b: Matrix(rows: d, cols: hp.rank, values: noise(d * hp.rank, 0.01)), hyperparameters: hp),
                      neuron: IndexingNeuron(weight: noise(f, 0.01), bias: -20, key: noise(f, 1)))
        }
        let buildStart = Date()
        let full = try empty.adding(contentsOf: entries)
        let buildSeconds = Date().timeIntervalSince(buildStart)
        let text = "Question: Who wrote the novel Pride and Prejudice?\nAnswer:"
        let prompt = tokenizer.encode(text, addBOS: true)
        let session = gemma.makeSession(capacity: prompt.count + tokens + 1)

        func median(_ index: EditIndex) throws -> (Double, [Int32]) {
            var times: [Double] = []
            var out: [Int32] = []
            for _ in 0..<(requests + 1) {
                let start = DispatchTime.now().uptimeNanoseconds
                out = try session.generate(prompt: prompt, maxTokens: tokens, editor: index.isEmpty ? nil : index.makeRouter(request: text))
                times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            return (times.dropFirst().sorted()[requests / 2], out)
        }
        let (base, baseOut) = try median(empty)
        let (routed, routedOut) = try median(full)
        let key = noise(f, 1)
        let scoreStart = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<100 { _ = full.route(key: key) }
        let scoreSeconds = Double(DispatchTime.now().uptimeNanoseconds - scoreStart) / 1e9 / 100
        let line: [String: Any] = [
            "edits": edits, "tokens": tokens, "same_answer": baseOut == routedOut,
            "request_ms_no_edits": (base * 10000).rounded() / 10, "request_ms_with_edits": (routed * 10000).rounded() / 10,
            "overhead_ratio": ((routed / base) * 1000).rounded() / 1000,
            "route_ms": (scoreSeconds * 100000).rounded() / 100, "table_build_ms": (buildSeconds * 1000).rounded(),
        ]
        print(String(decoding: try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]), as: UTF8.self))
    }
}
