// The same fact, corrected again in other words ("Which fictional universe is Chlorophyll Kid part
// of?" → X, later "In which fictional universe is Chlorophyll Kid a character?" → Y): the later
// correction supersedes the earlier one and answers its wordings too.
//
// The routing key alone cannot decide it. The weighted key is dominated by the subject, so two
// questions about one subject (its author, its year) are as close as two wordings of one question,
// and the same relation about two look-alike subjects ("… of George Courtney" / "… of John Bryan
// Taylor") comes close too. So "same fact" is two tests, each on what it can see:
// - the same subject, read from the words: both prompts hold the same names and numbers (words
//   that start with a capital letter or a digit; a sentence's first word may differ: "What" /
//   "Volvo B12M's manufacturer…"), so "HD 180902" and "HD 177808" are two stars and "the twin
//   city of Houston" / "… of Athens" two cities; and the rarest token of each prompt (highest
//   `TokenWeights` weight) occurs in the other, for subjects that are not names;
// - the same question, read from the model: the cosine of the two prompts' last-token rows of
//   layer L's down-projection input, centred by the negative pool's mean last-token row, is at
//   least `sameFactQuestionCosine`. The last token carries the question's shape and relation
//   much more than its subject (README, "Routing").
// Offline on zsre-dev's first 1,000 cases (`tools/same_fact_probe.py`: 829 pairs of prompts
// that correct one fact, 1,638 pairs of one of its subjects in another zsre-scale question shape,
// the 10 real one-subject-two-facts pairs of zsre-scale, 1,158 pairs of different subjects with
// key cosine ≥ 0.5): at 0.7 it links 81 % of the same-fact pairs, 5.9 % of the constructed ones
// (some shapes really ask the same question: "What company published X?" / "What was the record
// label of X?"), 0 of the 10 real ones and none of the different subjects.

import Foundation

public enum SameFact {
    /// What the test reads of one prompt: its tokens (<bos> first), its names and numbers, and
    /// the last token's row of layer L's down-projection input.
    public struct Facets: Sendable {
        public var tokens: [Int32]
        public var words: Words
        public var lastRow: [Float]

        public init(tokens: [Int32], words: Words, lastRow: [Float]) {
            self.tokens = tokens; self.words = words; self.lastRow = lastRow
        }

        /// The facets of `prompt` without its last-token row (no model forward).
        public init(tokenizer: GemmaTokenizer, prompt: String) {
            self.init(tokens: tokenizer.encode(prompt, addBOS: true), words: Words(prompt), lastRow: [])
        }

        /// One frozen prefix forward over `prompt` up to layer `layer`.
        public init(model: GemmaModel, tokenizer: GemmaTokenizer, layer: Int, prompt: String) throws {
            self.init(tokenizer: tokenizer, prompt: prompt)
            let stack = try DownProjectionTrainingStack(model: model, layer: layer, tokens: tokens, targets: [])
            let f = model.config.ffnSize, t = tokens.count
            lastRow = Array(stack.ffnInput[(t - 1) * f ..< t * f])
        }
    }

    /// The words of a text that start with a capital letter or a digit (names and numbers), and
    /// those of them that open a sentence or line (after the start, ".", "?", "!", ":" or a line
    /// break), whose capital says nothing. Words are runs of letters and digits.
    public struct Words: Sendable, Equatable {
        public var proper: Set<String> = []
        public var initial: Set<String> = []
        /// Every word, lowercased (what `RequestWords` matches names against).
        public var all: Set<String> = []

        public init(_ text: String) {
            var word = "", opensSentence = true, wordOpens = true
            func end() {
                if let c = word.first, c.isUppercase || c.isNumber {
                    proper.insert(word)
                    if wordOpens { initial.insert(word) }
                }
                if !word.isEmpty { opensSentence = false; all.insert(word.lowercased()) }
                word = ""
            }
            for c in text {
                if c.isLetter || c.isNumber {
                    if word.isEmpty { wordOpens = opensSentence }
                    word.append(c)
                } else {
                    end()
                    if ".?!:\n".contains(c) { opensSentence = true }
                }
            }
            end()
        }
    }

    /// The same subject by the words: the same names and numbers (but sentence openers), and each
    /// prompt's rarest token occurs in the other.
    public static func sameSubject(_ a: Facets, _ b: Facets, weights: TokenWeights) -> Bool {
        guard a.words.proper.symmetricDifference(b.words.proper).isSubset(of: a.words.initial.union(b.words.initial)) else { return false }
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
