// Command-line settings of a pipeline service (scen-ingest, scen-trainer):
// flag > environment > .stack/env > default.
import ArgumentParser
import Foundation
import Storage
import Logging

public struct ServiceOptions: ParsableArguments {
    public init() {}

    @Option(help: "PostgreSQL connection URL (env SCEN_<SERVICE>_POSTGRES_URL, else SCEN_POSTGRES_URL).")
    public var postgresURL: String?

    @Option(help: "Kafka bootstrap servers, host:port[,host:port] (env SCEN_KAFKA_BROKERS).")
    public var kafkaBrokers: String?

    @Option(name: .customLong("kafka-setting"),
            help: "Extra librdkafka setting key=value, repeatable (env SCEN_KAFKA_SETTINGS=k=v,k=v), e.g. session.timeout.ms=6000.")
    public var kafkaSettings: [String] = []

    @Option(help: "Address of the Prometheus /metrics listener (env SCEN_METRICS_HOST; default all interfaces).")
    public var metricsHost: String?

    @Option(help: "Port of the /metrics listener; 0 picks a free one (env SCEN_METRICS_PORT).")
    public var metricsPort: Int?

    @Flag(help: "Apply the SQL migrations before starting (like `scen migrate`).")
    public var migrate = false

    @Option(help: "The migrations directory (default: $SCEN_MIGRATIONS, ./migrations, or the package's).")
    public var migrations: String?

    @Option(help: "Exit after this many seconds without a message (for batch runs and tests).")
    public var exitWhenIdle: Double?

    /// Flags over the environment over the stack's env file; `defaultMetricsPort` is the
    /// service's own (ingest 9401, trainer 9402), `service` its name (`ingest`, `trainer`).
    public func resolved(service: String, defaultMetricsPort: Int) -> ServiceSettings {
        let kafka = SettingsResolver.kafkaSettings(overriddenBy: kafkaSettings)
        return ServiceSettings(
            postgresURL: SettingsResolver.postgresURL(flag: postgresURL, service: service),
            kafkaBrokers: SettingsResolver.kafkaBrokers(flag: kafkaBrokers),
            kafkaSettings: kafka,
            metricsHost: SettingsResolver.value("SCEN_METRICS_HOST", flag: metricsHost) ?? "0.0.0.0",
            metricsPort: metricsPort ?? SettingsResolver.value("SCEN_METRICS_PORT").flatMap(Int.init) ?? defaultMetricsPort,
            migrate: migrate, migrationsDirectory: migrations, exitWhenIdle: exitWhenIdle)
    }
}
