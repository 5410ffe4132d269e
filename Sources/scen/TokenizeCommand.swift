import ArgumentParser
import Core

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize", abstract: "Print the token ids of a text (BOS first) as a JSON array.")

    @Option(help: "The text to tokenize, as plain text (\"<bos>\" typed here is text, not a control token).")
    var text: String

    @OptionGroup var model: ModelOptions

    func run() throws {
        let ids = try model.loadTokenizer().encode(text, addBOS: true)
        print("[" + ids.map(String.init).joined(separator: ", ") + "]")
    }
}
