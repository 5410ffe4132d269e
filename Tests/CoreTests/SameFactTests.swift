// SameFact's two tests on hand-made facets: the subject by the names and numbers and the rarest
// token, the question by the centred last-token cosine.

import Testing
import Core

@Suite struct SameFactTests {
    /// Token ids 0…9; 7, 8 and 9 are rare (names), the rest common (template and relation words).
    let weights = TokenWeights(values: [0, 1, 1, 1, 1, 1, 1, 50, 60, 70])

    func facets(_ tokens: [Int32], _ text: String = "", last: [Float] = []) -> SameFact.Facets {
        SameFact.Facets(tokens: [2] + tokens, words: SameFact.Words(text), lastRow: last)
    }

    @Test func wordsAreNamesAndNumbersWithSentenceOpenersApart() {
        let w = SameFact.Words("Question: What is HD 180902's constellation?\nAnswer:")
        #expect(w.proper == ["Question", "What", "HD", "180902", "Answer"])
        #expect(w.initial == ["Question", "What", "Answer"])
        #expect(SameFact.Words("Volvo B12M's maker. Which one?").initial == ["Volvo", "Which"])
        #expect(SameFact.Words("the twin city of houston").proper.isEmpty)
    }

    @Test func sameSubjectNeedsTheSameNamesAndEachRarestTokenInTheOther() {
        // Two wordings around the rare token 8, the same name; the sentence openers differ.
        #expect(SameFact.sameSubject(facets([3, 8, 4], "Which company made Volvo B12M?"),
                                     facets([5, 6, 8, 1], "Volvo B12M's manufacturer was who?"), weights: weights))
        // Another name in the same wording, even when the rarest token is a shared word.
        #expect(!SameFact.sameSubject(facets([3, 8, 4], "What is the twin city of Houston?"),
                                      facets([3, 8, 4], "What is the twin city of Athens?"), weights: weights))
        // Two stars of one catalogue: only the number differs.
        #expect(!SameFact.sameSubject(facets([3, 8, 4], "Which constellation is HD 180902 in?"),
                                      facets([3, 8, 4], "Which constellation is HD 177808 in?"), weights: weights))
        // No names: the rarest token decides. 9 is missing from the first prompt.
        #expect(SameFact.sameSubject(facets([3, 8, 4]), facets([5, 6, 8, 1]), weights: weights))
        #expect(!SameFact.sameSubject(facets([3, 8, 4]), facets([3, 8, 9]), weights: weights))
        #expect(!SameFact.sameSubject(facets([3, 8, 4]), facets([3, 9, 4]), weights: weights))
    }

    @Test func questionCosineIsCentred() {
        let center: [Float] = [1, 1, 1]
        let a = facets([8], last: [2, 1, 1]), b = facets([8], last: [3, 1, 1]), c = facets([8], last: [1, 2, 1])
        // Raw rows are close (cosine 0.94 for a, c), centred they are orthogonal.
        #expect(abs(SameFact.questionCosine(a, b, center: center) - 1) < 1e-6)
        #expect(abs(SameFact.questionCosine(a, c, center: center)) < 1e-6)
    }
}
