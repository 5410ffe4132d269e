// Connection settings shared by subcommands: flags > environment > .stack/env > defaults.
import ArgumentParser
import Foundation

struct StackOptions: ParsableArguments {
    @Option(help: "PostgreSQL connection URL (env SCEN_POSTGRES_URL).")
    var postgresURL: String?

    @Option(help: "Kafka bootstrap servers, host:port[,host:port] (env SCEN_KAFKA_BROKERS).")
    var kafkaBrokers: String?

    var resolvedPostgresURL: String { postgresURL ?? StackSettings.value("SCEN_POSTGRES_URL") ?? "postgresql://postgres@127.0.0.1:55432/scen" }
    var resolvedKafkaBrokers: String { kafkaBrokers ?? StackSettings.value("SCEN_KAFKA_BROKERS") ?? "127.0.0.1:59092" }
}

enum StackSettings {
    /// The environment first, then the env file of the local stack (`SCEN_STACK_ENV` or `.stack/env`).
    static func value(_ key: String) -> String? {
        let env = ProcessInfo.processInfo.environment
        if let v = env[key], !v.isEmpty { return v }
        let file = env["SCEN_STACK_ENV"] ?? ".stack/env"
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 && parts[0] == key { return String(parts[1]) }
        }
        return nil
    }
}
