// Where the local stack is: SCEN_POSTGRES_URL / SCEN_KAFKA_BROKERS from the environment, else
// the env file `scripts/stack up` writes to .stack/env. `make test` sets SCEN_REQUIRE_STACK=1,
// which turns a missing stack into a failure instead of a skipped suite.
import Foundation
import Storage
import TestSupport

enum StackEnvironment {
    static let packageRoot = ModelTestEnvironment.packageRoot ?? URL(fileURLWithPath: FileManager.default.currentDirectoryPath)

    static var postgresURL: String? { SettingsResolver.value("SCEN_POSTGRES_URL") }
    static var kafkaBrokers: String? { SettingsResolver.value("SCEN_KAFKA_BROKERS") }

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
