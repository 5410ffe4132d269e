import Foundation
import Testing
import Core
import TestSupport

/// Locations of the real model and the llama.cpp oracle fixture, relative to the package root.
private extension ModelTestEnvironment {
    struct Case: Decodable {
        let text: String
        let ids: [Int32]
        let piece_hex: [String]
    }

    static func loadCases() throws -> [Case] {
        try JSONDecoder().decode([Case].self, from: fixture("tokenizer.json"))
    }

    static func bytes(hex: String) -> [UInt8] {
        let digits = Array(hex.utf8)
        return stride(from: 0, to: digits.count - 1, by: 2).compactMap {
            UInt8(String(decoding: digits[$0...$0 + 1], as: UTF8.self), radix: 16)
        }
    }
}

@Suite("Tokenizer vs llama.cpp (real model)", .enabled(if: ModelTestEnvironment.enabled))
struct TokenizerFixtureTests {
    private let tok: GemmaTokenizer

    init() throws {
        tok = try ModelTestEnvironment.tokenizer.get()
    }

    @Test func vocabularyFacts() {
        #expect(tok.vocabularySize == 262_144)
        #expect(tok.bosID == 2)
        #expect(tok.eosID == 1)
        #expect(tok.unknownID == 3)
        #expect(tok.paddingID == 0)
        #expect(tok.endOfTurnID == 106)
        #expect(tok.id(of: "<start_of_turn>") == 105)
        #expect(tok.id(of: "▁") == 236743)
        #expect(tok.encode("") == [2])
        // Gemma has no space prefix; user-defined tokens cover "\n" (107) and runs of spaces ("    " = 140).
        #expect(tok.encode("hello    world") == [2, 23391, 140, 12392])
        #expect(tok.encode("line1\nline2") == [2, 1257, 236770, 107, 1257, 236778])
        // Typed control tokens are plain text unless special parsing is requested.
        #expect(tok.encode("<start_of_turn>user\nHi<end_of_turn>", parseSpecial: true) == [2, 105, 2364, 107, 10979, 106])
        #expect(!tok.encode("<bos>").dropFirst().contains(2))
        #expect(tok.decode([2, 105, 2364, 107, 10979, 106]) == "user\nHi")
    }

    @Test func idsMatchLlamaCpp() throws {
        let cases = try ModelTestEnvironment.loadCases()
        #expect(!cases.isEmpty)
        var exact = 0
        for c in cases {
            let ids = tok.encode(c.text)
            if ids == c.ids { exact += 1 }
            #expect(ids == c.ids, "text \(c.text.debugDescription)")
        }
        print("tokenizer fixture: \(exact)/\(cases.count) exact")
    }

    @Test func piecesMatchLlamaCpp() throws {
        for c in try ModelTestEnvironment.loadCases() {
            let expected = c.piece_hex.map(ModelTestEnvironment.bytes(hex:))
            let actual = c.ids.map { tok.piece($0) }
            #expect(actual == expected, "text \(c.text.debugDescription)")
            #expect(tok.decodeBytes(c.ids) == expected.flatMap { $0 }, "text \(c.text.debugDescription)")
        }
    }

    @Test func decodeInvertsEncode() throws {
        for c in try ModelTestEnvironment.loadCases() {
            let decoded = tok.decode(Array(tok.encode(c.text).dropFirst()))
            if c.text.unicodeScalars.contains("\u{2581}") {
                // A literal U+2581 is SentencePiece's space: llama.cpp decodes it as " " too.
                #expect(decoded == c.text.replacingOccurrences(of: "▁", with: " "), "text \(c.text.debugDescription)")
            } else {
                #expect(decoded == c.text, "text \(c.text.debugDescription)")
            }
        }
    }

    /// Release-build budgets: building from parsed metadata < 0.5 s, encoding 1,000 characters < 5 ms.
    /// Best of several runs, so tests running in parallel on a small machine do not make it flaky.
    @Test func isFastEnough() throws {
        let gguf = try ModelTestEnvironment.file.get()
        let clock = ContinuousClock()
        var buildTime = Duration.seconds(1_000)
        var built: GemmaTokenizer?
        for _ in 0..<3 {
            buildTime = min(buildTime, try clock.measure { built = try GemmaTokenizer(gguf: gguf) })
        }
        let tokenizer = try #require(built)
        let text = String(String(repeating: "The quick brown fox, naïve café 😀 jumps\tover\n  the dog. ", count: 20).prefix(1000))
        var encodeTime = Duration.seconds(1_000)
        for _ in 0..<20 {
            encodeTime = min(encodeTime, clock.measure { _ = tokenizer.encode(text) })
        }
        print("tokenizer: build \(buildTime), encode 1,000 characters \(encodeTime)")
        #if !DEBUG
        #expect(buildTime < .milliseconds(500))
        #expect(encodeTime < .milliseconds(5))
        #endif
    }
}
