// SameFact's two tests on hand-made facets: the subject by the rarest token and the numbers, the
// question by the centred last-token cosine.

import Testing
import Core

@Suite struct SameFactTests {
    /// Token ids 0…9; 7, 8 and 9 are rare (names), the rest common (template and relation words).
    let weights = TokenWeights(values: [0, 1, 1, 1, 1, 1, 1, 50, 60, 70])

    func facets(_ tokens: [Int32], _ text: String = "", last: [Float] = []) -> SameFact.Facets {
        SameFact.Facets(tokens: [2] + tokens, numbers: SameFact.numbers(in: text), lastRow: last)
    }

    @Test func numbersAreTheDigitRunsInOrder() {
        #expect(SameFact.numbers(in: "HD 180902 and NGC 80?") == ["180902", "80"])
        #expect(SameFact.numbers(in: "no digits") == [])
        #expect(SameFact.numbers(in: "Flight 447") == ["447"])
    }

    @Test func sameSubjectNeedsEachRarestTokenInTheOtherAndTheSameNumbers() {
        // Two wordings around the rare token 8.
        #expect(SameFact.sameSubject(facets([3, 8, 4]), facets([5, 6, 8, 1]), weights: weights))
        // Another name (9 instead of 8) in the same wording.
        #expect(!SameFact.sameSubject(facets([3, 8, 4]), facets([3, 9, 4]), weights: weights))
        // The other prompt's rarest token (9) is missing from the first.
        #expect(!SameFact.sameSubject(facets([3, 8, 4]), facets([3, 8, 9]), weights: weights))
        // Same tokens, different numbers: two stars of one catalogue.
        #expect(!SameFact.sameSubject(facets([3, 8, 4], "HD 180902"), facets([3, 8, 4], "HD 177808"), weights: weights))
        #expect(SameFact.sameSubject(facets([3, 8, 4], "Flight 447"), facets([8, 4, 3], "flight 447?"), weights: weights))
    }

    @Test func questionCosineIsCentred() {
        let center: [Float] = [1, 1, 1]
        let a = facets([8], last: [2, 1, 1]), b = facets([8], last: [3, 1, 1]), c = facets([8], last: [1, 2, 1])
        // Raw rows are close (cosine 0.94 for a, c), centred they are orthogonal.
        #expect(abs(SameFact.questionCosine(a, b, center: center) - 1) < 1e-6)
        #expect(abs(SameFact.questionCosine(a, c, center: center)) < 1e-6)
    }
}
