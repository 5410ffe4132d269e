// Resolved settings of a pipeline service (flags > environment > .stack/env > defaults), and the
// start-up chores both services share: optional migrations, topic creation.
import Foundation
import Storage
import Logging

public struct ServiceSettings: Sendable {
    public var postgresURL: String
    public var kafkaBrokers: String
    public var kafkaSettings: [String: String]
    public var metricsHost: String
    public var metricsPort: Int
    public var migrate: Bool
    public var migrationsDirectory: String?
    public var exitWhenIdle: Double?

    public init(postgresURL: String, kafkaBrokers: String, kafkaSettings: [String: String], metricsHost: String, metricsPort: Int,
                migrate: Bool, migrationsDirectory: String?, exitWhenIdle: Double?) {
        self.postgresURL = postgresURL
        self.kafkaBrokers = kafkaBrokers
        self.kafkaSettings = kafkaSettings
        self.metricsHost = metricsHost
        self.metricsPort = metricsPort
        self.migrate = migrate
        self.migrationsDirectory = migrationsDirectory
        self.exitWhenIdle = exitWhenIdle
    }

    /// librdkafka settings for consumers: the `--kafka-setting`s (group timeouts etc.).
    public var consumerSettings: [String: String] { kafkaSettings.filter { !$0.key.hasPrefix("producer.") } }
    /// librdkafka settings for producers: only the client-wide ones make sense there. The
    /// services send one message at a time and wait for its ack, so batching (linger) only adds latency.
    public var producerSettings: [String: String] {
        ["linger.ms": "0"].merging(kafkaSettings.filter {
            !["session.timeout.ms", "heartbeat.interval.ms", "max.poll.interval.ms", "auto.offset.reset"].contains($0.key)
        }) { _, new in new }
    }

    /// Applies migrations when asked, and creates the pipeline's topics (1 partition each).
    public func prepare(logger: Logger, topics: [String]) throws {
        if migrate {
            let db = try PostgresConnection(url: postgresURL)
            let directory = MigrationRunner.locate(migrationsDirectory)
            let report = try MigrationRunner.migrate(db, migrations: try MigrationRunner.load(directory: directory)) {
                logger.info("\($0)")
            }
            logger.info("migrations up to date", metadata: ["applied": "\(report.applied)", "already": "\(report.alreadyApplied.count)"])
        }
        let created = try KafkaAdmin(brokers: kafkaBrokers).createTopics(topics, partitions: 1)
        if !created.isEmpty { logger.info("topics created", metadata: ["topics": "\(created)"]) }
    }
}
