// Where the local stack is: SCEN_POSTGRES_URL / SCEN_KAFKA_BROKERS from the environment, else
// the env file `scripts/stack up` writes to .stack/env. `make test` sets SCEN_REQUIRE_STACK=1,
// which turns a missing stack into a failure instead of a skipped suite.
import Foundation

enum StackEnvironment {
    static let packageRoot: URL = {
        var url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while url.path != "/" && !FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
            url.deleteLastPathComponent()
        }
        return url
    }()

    static let settings: [String: String] = {
        var values: [String: String] = [:]
        let file = ProcessInfo.processInfo.environment["SCEN_STACK_ENV"]
            ?? packageRoot.appendingPathComponent(".stack/env").path
        if let text = try? String(contentsOfFile: file, encoding: .utf8) {
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { values[String(parts[0])] = String(parts[1]) }
            }
        }
        for key in ["SCEN_POSTGRES_URL", "SCEN_KAFKA_BROKERS"] {
            if let v = ProcessInfo.processInfo.environment[key] { values[key] = v }
        }
        return values
    }()

    static var postgresURL: String? { settings["SCEN_POSTGRES_URL"] }
    static var kafkaBrokers: String? { settings["SCEN_KAFKA_BROKERS"] }

    /// True when the suites should run: the stack is configured, or it is required (then a
    /// missing stack fails loudly inside the tests).
    static var enabled: Bool {
        ProcessInfo.processInfo.environment["SCEN_REQUIRE_STACK"] == "1" || (postgresURL != nil && kafkaBrokers != nil)
    }

    static func requirePostgres() throws -> String {
        guard let url = postgresURL else { throw Missing(what: "SCEN_POSTGRES_URL") }
        return url
    }

    static func requireKafka() throws -> String {
        guard let brokers = kafkaBrokers else { throw Missing(what: "SCEN_KAFKA_BROKERS") }
        return brokers
    }

    struct Missing: Error, CustomStringConvertible {
        let what: String
        var description: String { "\(what) is not set and .stack/env is missing: run `make stack-up` (scripts/stack up)" }
    }
}
