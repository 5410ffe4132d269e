import ArgumentParser
import Foundation
import Storage

struct PingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ping", abstract: "Check that PostgreSQL and the Kafka broker answer.")

    @OptionGroup var stack: StackOptions

    func run() throws {
        let db = try PostgresConnection(url: stack.resolvedPostgresURL)
        let version = try db.query("SELECT version() AS v").first?.string("v") ?? "?"
        print("postgres ok: \(version.prefix(while: { $0 != "," }))")
        let producer = try KafkaProducer(brokers: stack.resolvedKafkaBrokers)
        try producer.send(KafkaOutgoing(topic: "scen.ping", value: Array("ping".utf8)), timeout: 10)
        print("kafka ok: \(stack.resolvedKafkaBrokers) acknowledged a message on scen.ping")
    }
}
