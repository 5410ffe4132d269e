import Testing
import Core

/// A hand-built SentencePiece vocabulary: control tokens, user-defined tokens, the 256 byte tokens and a
/// few scored pieces, small enough to reason about every merge.
private enum TinyVocab {
    static let control = ["<pad>", "<eos>", "<bos>", "<unk>", "<end_of_turn>"]  // ids 0...4
    static let userDefined = ["\n", "  ", "<b>", "</s>"]  // ids 5...8
    static let byteBase = 9  // <0x00> ... <0xFF> are 9 ... 264
    static let normal: [(String, Float)] = [
        ("▁", -5), ("a", -3), ("b", -3), ("c", -3), ("h", -3), ("e", -3), ("l", -3), ("o", -3),
        ("ab", -2), ("bc", -1), ("he", -1.5), ("ll", -1.5), ("llo", -1), ("hello", -0.5), ("▁hello", -0.25),
        ("▁a", -2.5), ("x", -3), ("y", -3), ("xy", -2), ("yx", -2),
        ("é", -3), ("e\u{301}", -3),
    ]

    static func vocabulary(addSpacePrefix: Bool = false) -> TokenizerVocabulary {
        var tokens = control + userDefined
        var types = Array(repeating: 3, count: control.count) + Array(repeating: 4, count: userDefined.count)
        var scores = Array(repeating: Float(-1000), count: tokens.count)
        for byte in 0..<256 {
            tokens.append("<0x" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true) + ">")
            types.append(6)
            scores.append(0)
        }
        for (text, score) in normal {
            tokens.append(text)
            types.append(1)
            scores.append(score)
        }
        return TokenizerVocabulary(tokens: tokens, scores: scores, tokenTypes: types,
                                   bosID: 2, eosID: 1, unknownID: 3, paddingID: 0,
                                   addBOS: true, addEOS: false, addSpacePrefix: addSpacePrefix)
    }

    static func tokenizer(addSpacePrefix: Bool = false) throws -> GemmaTokenizer {
        try GemmaTokenizer(vocabulary: vocabulary(addSpacePrefix: addSpacePrefix))
    }

    static func byte(_ value: UInt8) -> Int32 { Int32(byteBase + Int(value)) }
}

@Suite("Tokenizer (hand-built vocabulary)")
struct TokenizerTests {
    let tok: GemmaTokenizer
    init() throws { tok = try TinyVocab.tokenizer() }

    private func ids(_ texts: String...) -> [Int32] {
        texts.map { text in
            guard let id = tok.id(of: text) else { Issue.record("no token \(text)"); return -1 }
            return id
        }
    }

    @Test func specialIDsAndSize() {
        #expect(tok.bosID == 2)
        #expect(tok.eosID == 1)
        #expect(tok.unknownID == 3)
        #expect(tok.paddingID == 0)
        #expect(tok.endOfTurnID == 4)
        #expect(tok.vocabularySize == 9 + 256 + TinyVocab.normal.count)
        #expect(tok.id(of: "no such token") == nil)
    }

    @Test func emptyStringIsJustBOS() {
        #expect(tok.encode("") == [2])
        #expect(tok.encode("", addBOS: false) == [])
    }

    @Test func mergesFollowScores() {
        // "bc" (-1) outscores "ab" (-2), so "abc" → a + bc.
        #expect(tok.encode("abc", addBOS: false) == ids("a", "bc"))
        // Multi-step merges: he + llo → hello, and ▁ + hello → ▁hello.
        #expect(tok.encode("hello", addBOS: false) == ids("hello"))
        #expect(tok.encode(" hello", addBOS: false) == ids("▁hello"))
    }

    @Test func equalScoresMergeLeftmostFirst() {
        // "xy" and "yx" both score -2: the leftmost pair wins, "xyx" → xy + x.
        #expect(tok.encode("xyx", addBOS: false) == ids("xy", "x"))
        #expect(tok.encode("yxy", addBOS: false) == ids("yx", "y"))
    }

    @Test func spacesBecomeMetaSymbolWithoutPrefix() {
        #expect(tok.encode("a b", addBOS: false) == ids("a", "▁", "b"))
        let prefixed = try? TinyVocab.tokenizer(addSpacePrefix: true)
        #expect(prefixed?.encode("hello") == [2] + ids("▁hello"))
        #expect(prefixed?.decode([2] + ids("▁hello")) == " hello")
        #expect(prefixed?.decode(ids("▁hello")) == "hello")
    }

    @Test func byteFallbackForUnknownCharacters() {
        // "😀" is not in the vocabulary: its four UTF-8 bytes come out as <0xXX> tokens.
        let expected = ids("a") + [0xF0, 0x9F, 0x98, 0x80].map(TinyVocab.byte)
        #expect(tok.encode("a😀", addBOS: false) == expected)
        #expect(tok.decode(expected) == "a😀")
        #expect(tok.encode("<", addBOS: false) == [TinyVocab.byte(0x3C)])
    }

    @Test func userDefinedTokensAreSplitVerbatim() {
        #expect(tok.encode("a\nb", addBOS: false) == ids("a", "\n", "b"))
        #expect(tok.encode("a  b", addBOS: false) == ids("a", "  ", "b"))
        #expect(tok.encode("x<b>y", addBOS: false) == ids("x", "<b>", "y"))
        // Longest candidates are matched first; a lone third space is ordinary text.
        #expect(tok.encode("a   b", addBOS: false) == ids("a", "  ", "▁", "b"))
        // User-defined tokens decode verbatim.
        #expect(tok.decode(ids("a", "\n", "  ", "<b>")) == "a\n  <b>")
    }

    @Test func literalControlTokensAreText() {
        // "<bos>" typed by a user is plain text: never id 2 unless special parsing is requested.
        let plain = tok.encode("<bos>", addBOS: false)
        #expect(!plain.contains(2))
        #expect(plain == [TinyVocab.byte(0x3C)] + ids("b", "o") + [TinyVocab.byte(0x73), TinyVocab.byte(0x3E)])
        #expect(tok.decode(plain) == "<bos>")
        #expect(tok.encode("<bos>a<end_of_turn>", parseSpecial: true) == [2, 2] + ids("a") + [4])
    }

    @Test func endOfGenerationLookalikesBecomeControl() {
        // llama.cpp turns the user-defined "</s>" into a control token: not split from plain text, and
        // rendered empty when decoding.
        let id = tok.id(of: "</s>")!
        #expect(tok.attributes(of: id).contains(.control))
        #expect(!tok.encode("a</s>", addBOS: false).contains(id))
        #expect(tok.piece(id).isEmpty)
        #expect(tok.piece(id, renderSpecial: true) == Array("</s>".utf8))
    }

    @Test func decodeOmitsControlTokens() {
        let sequence: [Int32] = [2] + ids("hello") + [4, 1]
        #expect(tok.decode(sequence) == "hello")
        #expect(tok.decode(sequence, renderSpecial: true) == "<bos>hello<end_of_turn><eos>")
        #expect(tok.piece(2).isEmpty)
    }

    @Test func decodeReassemblesUTF8AcrossTokens() {
        let bytes = [0xC3, 0xA9, 0xE2, 0x82, 0xAC].map(TinyVocab.byte)  // "é€" as five byte tokens
        #expect(tok.decode(bytes) == "é€")
        #expect(tok.piece(bytes[0]) == [0xC3])
        // A truncated sequence decodes to U+FFFD rather than failing.
        #expect(tok.decode(Array(bytes.prefix(3))) == "é\u{FFFD}")
        #expect(tok.decodeBytes(Array(bytes.prefix(3))) == [0xC3, 0xA9, 0xE2])
    }

    @Test func canonicallyEquivalentTokensStayDistinct() {
        // "é" (U+00E9) and "e" + U+0301 are equal as Swift Strings but distinct tokens.
        let composed = tok.id(of: "é"), decomposed = tok.id(of: "e\u{301}")
        #expect(composed != nil && decomposed != nil && composed != decomposed)
        #expect(tok.encode("é", addBOS: false) == [composed!])
        #expect(tok.encode("e\u{301}", addBOS: false) == [decomposed!])
    }

    @Test func hostileInputNeverTraps() {
        #expect(tok.decode([-1, 999_999, Int32.max, Int32.min]) == "")
        #expect(tok.piece(-7).isEmpty)
        #expect(tok.tokenText(-1) == nil)
        let weird = "\u{0}\u{FFFD}\u{10FFFF}\r\n\t" + String(repeating: "ab", count: 500)
        let encoded = tok.encode(weird)
        #expect(tok.decode(encoded) == weird)
    }

    @Test func roundTrips() {
        for text in ["hello world", "abc\n\nxyx", "  spaced  out  ", "mixé😀\t<b>", "tab\tand\r\n"] {
            #expect(tok.decode(tok.encode(text)) == text, "\(text.debugDescription)")
        }
    }
}

@Suite("Tokenizer construction errors")
struct TokenizerConstructionTests {
    @Test func rejectsDuplicates() {
        let v = TokenizerVocabulary(tokens: ["<bos>", "<eos>", "a", "a"], bosID: 0, eosID: 1)
        #expect(throws: TokenizerError.duplicateToken(text: "a", firstID: 2, secondID: 3)) {
            try GemmaTokenizer(vocabulary: v)
        }
    }

    @Test func rejectsEmptyAndShortArrays() {
        #expect(throws: TokenizerError.emptyVocabulary) { try GemmaTokenizer(vocabulary: .init(tokens: [])) }
        let short = TokenizerVocabulary(tokens: ["<bos>", "<eos>", "a"], scores: [0], bosID: 0, eosID: 1)
        #expect(throws: TokenizerError.arrayTooShort(field: "scores", expected: 3, actual: 1)) {
            try GemmaTokenizer(vocabulary: short)
        }
    }

    @Test func requiresBOSAndEOS() {
        #expect(throws: TokenizerError.missingSpecialToken("BOS")) {
            try GemmaTokenizer(vocabulary: .init(tokens: ["a", "b"], bosID: 5, eosID: 1))
        }
        #expect(throws: TokenizerError.missingSpecialToken("EOS")) {
            try GemmaTokenizer(vocabulary: .init(tokens: ["a", "b"], bosID: 0))
        }
    }

    @Test func emptyTokenTextsAreRenamed() throws {
        let tok = try GemmaTokenizer(vocabulary: .init(tokens: ["<bos>", "<eos>", "", ""], bosID: 0, eosID: 1))
        #expect(tok.tokenText(2) == "[EMPTY_2]")
        #expect(tok.tokenText(3) == "[EMPTY_3]")
    }
}
