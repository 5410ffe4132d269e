import ArgumentParser
import Core
import Foundation

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate", abstract: "Print the base model's greedy continuation of a prompt.")

    @Option(help: "The prompt, sent as it is (BOS is added).")
    var prompt: String

    @Option(help: "Stop after this many new tokens (also stops at <eos> and <end_of_turn>).")
    var maxTokens: Int = 32

    @Flag(help: "Print {\"ids\": [...], \"text\": \"...\"} instead of the text.")
    var json = false

    @OptionGroup var model: ModelOptions

    func validate() throws {
        guard maxTokens > 0 else { throw ValidationError("--max-tokens must be positive") }
    }

    func run() throws {
        let (gemma, tokenizer) = try model.load()
        let promptIDs = tokenizer.encode(prompt, addBOS: true)
        let capacity = promptIDs.count + maxTokens + 1
        guard capacity <= gemma.config.contextLength else {
            throw ValidationError("prompt (\(promptIDs.count) tokens) + --max-tokens exceed the context of \(gemma.config.contextLength)")
        }
        var stops: Set<Int32> = [tokenizer.eosID]
        if let endOfTurn = tokenizer.endOfTurnID { stops.insert(endOfTurn) }
        var ids = try gemma.makeSession(capacity: capacity).generate(prompt: promptIDs, maxTokens: maxTokens, stopIDs: stops)
        if let last = ids.last, stops.contains(last) { ids.removeLast() }
        let text = tokenizer.decode(ids)
        if json {
            struct Output: Encodable { let ids: [Int32]; let text: String }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(Output(ids: ids, text: text)), as: UTF8.self))
        } else {
            print(text)
        }
    }
}
