// The eval harness's bookkeeping, without a model: same-format locality prompts and the simulated
// traffic reservoir never include an edited case (nor another wording of an edited fact), the two
// sets are disjoint, and the same fact corrected twice is scored at its latest correction.

import Foundation
import Testing
import Core

@Suite struct EvalHarnessTests {
    func zsre(_ id: String, subject: String, prompt: String, original: String = "o") -> EditCase {
        EditCase(kind: .zsre, id: id, subject: subject, prompt: prompt, target: "t-\(id)", rephrases: ["r-\(id)?"],
                 localityPrompts: ["nq question: \(id)"], localityAnswer: "a", originalAnswer: original)
    }

    @Test func sameFormatTrafficDrawsNoEditedCase() {
        let all = (0..<200).map { zsre("c\($0)", subject: "s\($0 % 150)", prompt: "Question about s\($0 % 150) number \($0)?") }
        let edited = Array(all.prefix(60))
        let t = SameFormatTraffic.draw(edited: edited, candidates: all, localityCount: 40, reservoirCount: 1000)
        let editedSubjects = Set(edited.map(\.subject))
        let drawn = t.localityPrompts + t.reservoirPrompts
        #expect(t.localityPrompts.count == 40)
        // Cases 60…149 have subjects of their own; 150…199 share s0…s49 with edited cases.
        #expect(drawn.count == 90, "\(t.description)")
        for p in drawn {
            let c = all.first { $0.prompt == p }!
            #expect(!edited.contains { $0.id == c.id }, "edited case \(c.id) drawn")
            #expect(!editedSubjects.contains(c.subject), "another wording of an edited subject drawn: \(p)")
        }
        #expect(Set(t.localityPrompts).isDisjoint(with: t.reservoirPrompts), "reservoir and measured prompts overlap")
        // No benchmark locality format sneaks in as traffic.
        #expect(!drawn.contains { $0.hasPrefix("nq question:") })
        // Seeded: the same draw twice.
        #expect(SameFormatTraffic.draw(edited: edited, candidates: all, localityCount: 40, reservoirCount: 1000) == t)
    }

    @Test func counterFactTrafficUsesPromptsAndNeighbours() {
        let edited = [EditCase(kind: .counterfact, id: "e", subject: "Lyon", prompt: "The twin city of Lyon is", target: "X",
                               rephrases: [], localityPrompts: ["The twin city of Trieste is"], localityAnswer: "Y")]
        let other = EditCase(kind: .counterfact, id: "o", subject: "Paris", prompt: "Paris is the capital of", target: "Z",
                             rephrases: [], localityPrompts: ["The twin city of Trieste is", "Berlin is the capital of"], localityAnswer: "W")
        let t = SameFormatTraffic.draw(edited: edited, candidates: edited + [other], localityCount: 0, reservoirCount: 10)
        // The edited case's own neighbour is measured as its locality, so it is never a reservoir prompt.
        #expect(Set(t.reservoirPrompts) == ["Paris is the capital of", "Berlin is the capital of"])
    }

    @Test func latestCorrectionOfAFactIsTheOneScored() {
        let cases = [zsre("a", subject: "Kid", prompt: "Which universe is Kid in?", original: "DC"),
                     zsre("b", subject: "Kid", prompt: "Where was Kid born?", original: "Metropolis"),
                     zsre("c", subject: "Kid", prompt: "In which universe is Kid a character?", original: "DC"),
                     EditCase(kind: .zsre, id: "d", prompt: "No subject?", target: "t", rephrases: [], localityPrompts: [], localityAnswer: "")]
        #expect(EditEvaluation.latestOfFact(cases) == [2, 1, 2, 3])
    }
}
