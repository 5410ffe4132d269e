// Connection settings shared by subcommands: flags > environment > .stack/env > defaults
// (resolved by Storage's SettingsResolver, as the services do).
import ArgumentParser
import Storage

struct StackOptions: ParsableArguments {
    @Option(help: "PostgreSQL connection URL (env SCEN_POSTGRES_URL).")
    var postgresURL: String?

    @Option(help: "Kafka bootstrap servers, host:port[,host:port] (env SCEN_KAFKA_BROKERS).")
    var kafkaBrokers: String?

    var resolvedPostgresURL: String { SettingsResolver.postgresURL(flag: postgresURL) }
    var resolvedKafkaBrokers: String { SettingsResolver.kafkaBrokers(flag: kafkaBrokers) }
}
