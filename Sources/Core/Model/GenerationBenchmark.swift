// Prefill and decode throughput of a GemmaModel, measured like bench/llama_cpp_bench.py:
// one discarded warm-up, then per run: cache cleared, the whole prompt in one forward call
// (prefill tokens/s), then `decodeTokens` greedy tokens one at a time with EOS ignored
// (decode tokens/s); the median of the runs is reported.

import Foundation

public enum GenerationBenchmark {
    public struct Result: Codable, Sendable, CustomStringConvertible {
        public var promptTokens: Int
        public var decodeTokens: Int
        public var threads: Int
        public var prefillSeconds: Double
        public var decodeSeconds: Double
        public var prefillTokensPerSecond: Double { Double(promptTokens) / prefillSeconds }
        public var decodeTokensPerSecond: Double { Double(decodeTokens) / decodeSeconds }

        public var description: String {
            String(format: "prefill %d tokens: %.1f tok/s; decode %d tokens: %.1f tok/s (%d threads)",
                   promptTokens, prefillTokensPerSecond, decodeTokens, decodeTokensPerSecond, threads)
        }
    }

    /// Medians over `runs` runs (after one warm-up) of prefilling `promptIDs` and decoding
    /// `decodeTokens` greedy tokens.
    public static func run(model: GemmaModel, promptIDs: [Int32], decodeTokens: Int = 128, runs: Int = 3) throws -> Result {
        precondition(!promptIDs.isEmpty && runs > 0)
        let session = model.makeSession(capacity: promptIDs.count + decodeTokens + 1)
        func once(decode n: Int) throws -> (Double, Double) {
            session.reset()
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = try session.prefill(promptIDs)
            let t1 = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<n {
                let next = session.withLastLogits { Int32(Kernels.argmax($0.baseAddress!, count: $0.count)) }
                try session.decodeInPlace(next)
            }
            let t2 = DispatchTime.now().uptimeNanoseconds
            return (Double(t1 - t0) / 1e9, Double(t2 - t1) / 1e9)
        }
        _ = try once(decode: min(decodeTokens, 8))
        var prefill: [Double] = [], decode: [Double] = []
        for _ in 0..<runs {
            let (p, d) = try once(decode: decodeTokens)
            prefill.append(p)
            decode.append(d)
        }
        func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
        return Result(promptTokens: promptIDs.count, decodeTokens: decodeTokens, threads: model.threads,
                      prefillSeconds: median(prefill), decodeSeconds: median(decode))
    }

    /// Decode tokens/s of `sequences` sequences decoded together (`GemmaSession.decode`), each
    /// after its own prefill of `promptIDs`: total generated tokens / seconds of the decode
    /// loop, the median of `runs` runs after a warm-up.
    public static func batchedDecode(model: GemmaModel, promptIDs: [Int32], sequences n: Int, decodeTokens: Int = 64,
                                     runs: Int = 3) throws -> Double {
        precondition(!promptIDs.isEmpty && n > 0 && runs > 0)
        let sessions = (0..<n).map { _ in model.makeSession(capacity: promptIDs.count + decodeTokens + 1) }
        func once(decode steps: Int) throws -> Double {
            var next: [Int32] = []
            for s in sessions {
                s.reset()
                let logits = try s.prefill(promptIDs)
                next.append(Int32(Kernels.argmax(logits, count: logits.count)))
            }
            let t0 = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<steps {
                try GemmaSession.decode(sessions, tokens: next)
                for (i, s) in sessions.enumerated() {
                    next[i] = s.withLastLogits { Int32(Kernels.argmax($0.baseAddress!, count: $0.count)) }
                }
            }
            return Double(n * steps) / (Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        _ = try once(decode: min(decodeTokens, 4))
        let rates = try (0..<runs).map { _ in try once(decode: decodeTokens) }
        return rates.sorted()[runs / 2]
    }
}
