import ArgumentParser
import Foundation
import Storage

struct PublishCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Send correction events to scen.corrections and print each event id.",
        discussion: "Either one event from --prompt/--target (an id is generated unless --id), or --file with one JSON event per line, sent as is.")

    @Option(help: "The prompt to correct.")
    var prompt: String?

    @Option(help: "What the model should answer.")
    var target: String?

    @Option(help: "The event id (idempotency key; default: a new UUID).")
    var id: String?

    @Option(help: "Who reports the correction (default: $USER).")
    var reporter: String?

    @Option(help: "Where the correction comes from.")
    var source: String = "scen-cli"

    @Option(name: .customLong("rephrase"), help: "Another phrasing of the prompt (repeatable).")
    var rephrases: [String] = []

    @Option(help: "A JSON Lines file of events (one object per line, sent unchanged).")
    var file: String?

    @Flag(help: "Each line of --file is the base64 of one message's bytes (any bytes: invalid UTF-8, binary, empty; for fault runs).")
    var base64 = false

    @Option(name: .customLong("kafka-setting"),
            help: "A librdkafka producer setting key=value, repeatable (over env SCEN_KAFKA_SETTINGS), e.g. message.max.bytes=4000000.")
    var kafkaSettings: [String] = []

    @OptionGroup var stack: StackOptions

    func validate() throws {
        if file != nil {
            guard prompt == nil, target == nil, id == nil, rephrases.isEmpty else {
                throw ValidationError("--file cannot be combined with --prompt, --target, --id or --rephrase")
            }
        } else if base64 {
            throw ValidationError("--base64 needs --file")
        } else {
            guard let prompt, !prompt.isEmpty, let target, !target.isEmpty else {
                throw ValidationError("give --prompt and --target, or --file")
            }
        }
    }

    func run() throws {
        var messages: [(id: String, message: KafkaOutgoing)] = []
        if let file {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw ValidationError("cannot read \(file) as UTF-8") }
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            if lines.last?.isEmpty == true { lines.removeLast() }  // the file's final newline
            for (n, line) in lines.enumerated() {
                let raw = line.trimmingCharacters(in: .whitespaces)
                guard !raw.isEmpty || base64 else { continue }  // in base64, an empty line is an empty message
                let bytes: [UInt8]
                if base64 {
                    guard let decoded = Data(base64Encoded: raw) else { throw ValidationError("line \(n + 1) of \(file) is not base64") }
                    bytes = Array(decoded)
                } else {
                    bytes = Array(raw.utf8)
                }
                let eventID = ((try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any])?["id"] as? String
                messages.append((eventID ?? "line \(n + 1): no id",
                                 KafkaOutgoing(topic: PipelineTopics.corrections, key: eventID.map { Array($0.utf8) }, value: bytes)))
            }
        } else if let prompt, let target {
            let eventID = id ?? UUID().uuidString.lowercased()
            let value = CorrectionEvent.json(
                id: eventID, prompt: prompt, target: target, rephrases: rephrases,
                reporter: reporter ?? ProcessInfo.processInfo.environment["USER"] ?? "operator", source: source, createdAt: Date())
            messages.append((eventID, KafkaOutgoing(topic: PipelineTopics.corrections, key: Array(eventID.utf8), value: value)))
        }
        try KafkaAdmin(brokers: stack.resolvedKafkaBrokers).createTopics([PipelineTopics.corrections])
        let producer = try KafkaProducer(brokers: stack.resolvedKafkaBrokers,
                                         settings: SettingsResolver.kafkaSettings(overriddenBy: kafkaSettings))
        for batch in stride(from: 0, to: messages.count, by: 500) {
            let slice = messages[batch..<min(batch + 500, messages.count)]
            try producer.send(slice.map(\.message), timeout: 60)
            for m in slice { print(m.id) }
        }
    }
}
