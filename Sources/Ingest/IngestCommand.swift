// scen-ingest: consumes correction events (scen.corrections), validates them, stores each valid
// one as a correction + queued edit (one transaction), hands the edit to the Trainer on
// scen.edit-jobs, and dead-letters the rest (scen.corrections.dlq + dead_letters).
import ArgumentParser
import Core
import Foundation
import Logging
import Metrics
import Pipeline
import Storage

@main
struct IngestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scen-ingest", abstract: "Consume correction events, validate them and queue edits for training.")

    @OptionGroup var service: ServiceOptions

    @Option(help: "The GGUF model whose tokenizer and context length bound events (default: $SCEN_MODEL or models/gemma-3-270m-q4_k_m.gguf).")
    var model: String?

    @Option(help: "Consumer group.")
    var group: String = PipelineGroups.ingest

    func run() throws {
        LogfmtLogHandler.bootstrap()
        let logger = Logger(label: "scen-ingest")
        let settings = service.resolved(service: "ingest", defaultMetricsPort: 9401)

        let metrics = PrometheusMetricsFactory()
        MetricsSystem.bootstrap(metrics)
        let consumed = metrics.counter("scen_ingest_events_consumed_total", help: "Correction events read from Kafka.")
        let queued = metrics.counter("scen_ingest_edits_queued_total", help: "Valid events stored as queued edits.")
        let duplicates = metrics.counter("scen_ingest_duplicates_total", help: "Events whose id was seen before.")
        let deadLettered = metrics.counter("scen_ingest_events_dead_lettered_total", help: "Events rejected to the dead-letter topic.")
        let handleSeconds = metrics.timer("scen_ingest_handle_seconds", help: "Time to validate, store and forward one event.",
                                          buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1])
        let lag = metrics.gauge("scen_ingest_consumer_lag", help: "Events on scen.corrections not yet committed by the group.")
        let server = try MetricsServer(registry: metrics.registry, host: settings.metricsHost, port: settings.metricsPort)
        logger.info("metrics listening", metadata: ["url": "http://\(settings.metricsHost):\(server.port)/metrics"])

        let modelPath = SettingsResolver.modelPath(flag: model)
        guard FileManager.default.fileExists(atPath: modelPath) else {
            throw ValidationError("model file \(modelPath) not found: run scripts/bootstrap, or pass --model")
        }
        let file = try GGUFFile(path: modelPath)
        let config = try GemmaConfig(file: file)
        let tokenizer = try GemmaTokenizer(gguf: file)
        let limits = CorrectionLimits.forModel(contextLength: config.contextLength)
        logger.info("tokenizer loaded", metadata: ["model": "\(modelPath)", "edit_tokens": "\(limits.contextTokens)"])
        let validator = CorrectionValidator(limits: limits) {
            tokenizer.encode($0, addBOS: false).count
        }

        try settings.prepare(logger: logger, topics: PipelineTopics.all)
        let producer = try KafkaProducer(brokers: settings.kafkaBrokers, settings: settings.producerSettings)
        var store = try PostgresEditStore(url: settings.postgresURL)
        var step = IngestStep(validator: validator, corrections: store, deadLetters: store, sink: producer, logger: logger)
        let consumer = try KafkaConsumer(brokers: settings.kafkaBrokers, group: group, topics: [PipelineTopics.corrections],
                                         settings: settings.consumerSettings)
        logger.info("consuming", metadata: ["topic": "\(PipelineTopics.corrections)", "group": "\(group)"])

        let loop = ConsumerLoop(consumer: consumer, shutdown: ShutdownSignal(), logger: logger, lag: lag, exitWhenIdle: settings.exitWhenIdle)
        try loop.run(handle: { message in
            let start = Date()
            let outcome = try step.handle(message)
            consumed.increment()
            switch outcome {
            case .queued: queued.increment()
            case .duplicate: duplicates.increment()
            case .deadLettered: deadLettered.increment()
            }
            handleSeconds.recordSeconds(Date().timeIntervalSince(start))
        }, recover: { error in
            // A new connection when the old one is gone or its server cannot do the work any more
            // (read-only after a failover); other errors retry on the same one.
            guard !store.db.isConnected || (error as? PostgresError)?.needsNewConnection == true else { return }
            do {
                store = try PostgresEditStore(url: settings.postgresURL)
                step = IngestStep(validator: validator, corrections: store, deadLetters: store, sink: producer, logger: logger)
                logger.info("reconnected to PostgreSQL")
            } catch {
                logger.error("PostgreSQL still unreachable", metadata: ["error": "\(error)"])
            }
        })
        func count(_ counter: Counter) -> Logger.MetadataValue { "\(Int(metrics.value(counter.label)))" }
        logger.info("stopped", metadata: ["consumed": count(consumed), "queued": count(queued),
                                          "dead_lettered": count(deadLettered), "duplicates": count(duplicates)])
    }
}
