// Token sampling: greedy is the argmax; a seed fixes the draws; top-k, top-p and temperature
// shape the distribution the way their definitions say.

import Testing
import Foundation
import Core

@Suite struct SamplingTests {
    let logits: [Float] = [2.0, 1.0, 0.0, -1.0, 3.0]  // token 4 is the argmax

    func draws(_ p: SamplingParameters, _ n: Int = 20_000) -> [Int] {
        var sampler = TokenSampler(p)
        var counts = [Int](repeating: 0, count: logits.count)
        for _ in 0..<n { counts[Int(sampler.next(logits))] += 1 }
        return counts
    }

    @Test func greedyAndTopOneAreTheArgmax() {
        #expect(draws(.greedy, 100)[4] == 100)
        #expect(draws(SamplingParameters(temperature: 1, topK: 1, seed: 3), 100)[4] == 100)
    }

    @Test func aSeedFixesTheDraws() {
        let p = SamplingParameters(temperature: 1, seed: 42)
        var a = TokenSampler(p), b = TokenSampler(p)
        let x = (0..<50).map { _ in a.next(logits) }, y = (0..<50).map { _ in b.next(logits) }
        #expect(x == y)
        #expect(Set(x).count > 1, "temperature 1 draws more than one token")
    }

    @Test func temperatureOneFollowsTheSoftmax() {
        let n = 20_000
        let counts = draws(SamplingParameters(temperature: 1, seed: 7), n)
        let e = logits.map { exp(Double($0)) }, z = e.reduce(0, +)
        for (i, c) in counts.enumerated() {
            let want = e[i] / z, sd = (want * (1 - want) / Double(n)).squareRoot()
            #expect(abs(Double(c) / Double(n) - want) < 5 * sd + 1e-3, "token \(i): \(Double(c) / Double(n)) vs \(want)")
        }
    }

    @Test func topKAndTopPCutTheTail() {
        // top-k 2: only tokens 4 and 0.
        let k = draws(SamplingParameters(temperature: 1, topK: 2, seed: 1))
        #expect(k[1] == 0 && k[2] == 0 && k[3] == 0 && k[0] > 0 && k[4] > 0)
        // Softmax mass: 0.636 (token 4), 0.234 (0), 0.086 (1), …; top-p 0.8 keeps tokens 4 and 0.
        let p = draws(SamplingParameters(temperature: 1, topP: 0.8, seed: 1))
        #expect(p[1] == 0 && p[2] == 0 && p[3] == 0 && p[0] > 0)
        // A low temperature sharpens towards the argmax.
        #expect(draws(SamplingParameters(temperature: 0.1, seed: 1), 1000)[4] > 990)
    }

    @Test func outOfRangeValuesAreReported() {
        #expect(SamplingParameters(temperature: -1).problem != nil)
        #expect(SamplingParameters(topP: 0).problem != nil)
        #expect(SamplingParameters(topK: -2).problem != nil)
        #expect(SamplingParameters(temperature: 0.7, topK: 40, topP: 0.9, seed: 1).problem == nil)
    }
}
