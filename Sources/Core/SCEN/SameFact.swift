// The same fact, corrected again in other words ("Which fictional universe is Chlorophyll Kid part
// of?" → X, later "In which fictional universe is Chlorophyll Kid a character?" → Y): the later
// correction supersedes the earlier one and answers its wordings too.
//
// The routing key alone cannot decide it. The weighted key is dominated by the subject, so two
// questions about one subject (its author, its year) are as close as two wordings of one question,
// and the same relation about two look-alike subjects ("… of George Courtney" / "… of John Bryan
// Taylor") comes close too. So "same fact" is two tests, each on what it can see:
// - the same subject, read from the words: the rarest token of each prompt (highest
//   `TokenWeights` weight: a name, rarely a template word) occurs in the other prompt, and both
//   prompts contain the same numbers ("HD 180902" and "HD 177808" are two stars);
// - the same question, read from the model: the cosine of the two prompts' last-token rows of
//   layer L's down-projection input, centred by the negative pool's mean last-token row, is at
//   least `sameFactQuestionCosine`. The last token carries the question's shape and relation
//   much more than its subject (README, "Routing").
// Offline on zsre-dev's first 1,000 cases (829 pairs of prompts that correct one fact), 1,648
// pairs of one subject with another question (zsre-scale question shapes filled with the subject)
// and the 10 real pairs of zsre-scale (one subject, two facts): at 0.7 it links 81 % of the
// same-fact pairs, 5.8 % of the constructed other-question pairs (some of which really are the
// same question: "What company published X?" / "What was the record label of X?"), 0 of the 10
// real ones, and 8 of ~500,000 pairs of different subjects.

import Foundation

public enum SameFact {
    /// What the test reads of one prompt: its tokens (<bos> first) and the last token's row of
    /// layer L's down-projection input.
    public struct Facets: Sendable {
        public var tokens: [Int32]
        public var numbers: [String]
        public var lastRow: [Float]

        public init(tokens: [Int32], numbers: [String], lastRow: [Float]) {
            self.tokens = tokens; self.numbers = numbers; self.lastRow = lastRow
        }

        /// One frozen prefix forward over `prompt` up to layer `layer`.
        public init(model: GemmaModel, tokenizer: GemmaTokenizer, layer: Int, prompt: String) throws {
            let tokens = tokenizer.encode(prompt, addBOS: true)
            let stack = try DownProjectionTrainingStack(model: model, layer: layer, tokens: tokens, targets: [])
            let f = model.config.ffnSize
            self.init(tokens: tokens, numbers: SameFact.numbers(in: prompt),
                      lastRow: Array(stack.ffnInput[(tokens.count - 1) * f ..< tokens.count * f]))
        }
    }

    /// The digit strings of `text`, in order.
    public static func numbers(in text: String) -> [String] {
        var out: [String] = [], run = ""
        for c in text {
            if c.isASCII && c.isNumber { run.append(c) } else if !run.isEmpty { out.append(run); run = "" }
        }
        if !run.isEmpty { out.append(run) }
        return out
    }

    /// The same subject by the words: each prompt's rarest token occurs in the other, and the
    /// numbers are the same.
    public static func sameSubject(_ a: Facets, _ b: Facets, weights: TokenWeights) -> Bool {
        guard a.numbers.sorted() == b.numbers.sorted() else { return false }
        func rarest(_ t: [Int32]) -> Int32? { t.dropFirst().max { weights.weight($0) < weights.weight($1) } }
        guard let ra = rarest(a.tokens), let rb = rarest(b.tokens) else { return false }
        return b.tokens.dropFirst().contains(ra) && a.tokens.dropFirst().contains(rb)
    }

    /// Cosine of the last-token rows after subtracting `center`.
    public static func questionCosine(_ a: Facets, _ b: Facets, center: [Float]) -> Float {
        var ab: Float = 0, aa: Float = 0, bb: Float = 0
        for i in center.indices {
            let x = a.lastRow[i] - center[i], y = b.lastRow[i] - center[i]
            ab += x * y; aa += x * x; bb += y * y
        }
        return ab / max((aa * bb).squareRoot(), 1e-12)
    }
}
