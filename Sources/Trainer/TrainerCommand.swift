// scen-trainer: consumes edit jobs (scen.edit-jobs) in order and trains each edit with SCEN
// (stage 1 expert + stage 2 indexing neuron); stores the result, activates the edit and
// supersedes the older edit of the same prompt in one transaction, then NOTIFYs scen_edits.
import ArgumentParser
import Core
import Foundation
import Logging
import Metrics
import Pipeline
import Storage

@main
struct TrainerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scen-trainer", abstract: "Train SCEN experts and indexing neurons for queued edits.")

    @OptionGroup var service: ServiceOptions

    @Option(help: "The GGUF model (default: $SCEN_MODEL or models/gemma-3-270m-q4_k_m.gguf).")
    var model: String?

    @Option(help: "Threads for the forward and backward passes.")
    var threads: Int = 2

    @Option(help: "A JSON file of SCENHyperparameters (default: the built-in defaults).")
    var hyperparameters: String?

    @Option(help: "Training attempts per edit before it stays failed.")
    var maxAttempts: Int = 3

    @Option(help: "Consumer group.")
    var group: String = PipelineGroups.trainer

    func validate() throws {
        guard maxAttempts >= 1 else { throw ValidationError("--max-attempts must be at least 1") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        LogfmtLogHandler.bootstrap()
        let logger = Logger(label: "scen-trainer")
        let settings = service.resolved(service: "trainer", defaultMetricsPort: 9402)

        let metrics = PrometheusMetricsFactory()
        MetricsSystem.bootstrap(metrics)
        let consumed = metrics.counter("scen_trainer_jobs_consumed_total", help: "Edit jobs read from Kafka.")
        let trained = metrics.counter("scen_trainer_edits_trained_total", help: "Edits trained and stored (active or superseded).")
        let failed = metrics.counter("scen_trainer_edits_failed_total", help: "Edits that failed on their last allowed attempt.")
        let skipped = metrics.counter("scen_trainer_jobs_skipped_total", help: "Jobs of edits already settled, unknown, or malformed.")
        let seconds = metrics.timer("scen_trainer_training_seconds", help: "Wall-clock seconds to train one edit (stage 1 + 2).",
                                    buckets: [0.25, 0.5, 1, 2, 3, 5, 10, 20, 60])
        let lag = metrics.gauge("scen_trainer_consumer_lag", help: "Jobs on scen.edit-jobs not yet committed by the group.")
        let server = try MetricsServer(registry: metrics.registry, host: settings.metricsHost, port: settings.metricsPort)
        logger.info("metrics listening", metadata: ["url": "http://\(settings.metricsHost):\(server.port)/metrics"])

        try settings.prepare(logger: logger, topics: [PipelineTopics.editJobs])

        // The model, once, with progress in the log.
        let modelPath = SettingsResolver.modelPath(flag: model)
        guard FileManager.default.fileExists(atPath: modelPath) else {
            throw ValidationError("model file \(modelPath) not found: run scripts/bootstrap, or pass --model")
        }
        let hp = try SCENHyperparameters.load(hyperparameters)
        let loadStart = Date()
        let file = try GGUFFile(path: modelPath)
        let tokenizer = try GemmaTokenizer(gguf: file)
        var lastDecile = -1
        let gemma = try GemmaModel(file: file, threads: threads) { _, fraction in
            let decile = Int(fraction * 10)
            if decile != lastDecile {
                lastDecile = decile
                logger.info("loading model", metadata: ["percent": "\(decile * 10)"])
            }
        }
        logger.info("model loaded", metadata: ["model": "\(modelPath)", "seconds": "\(String(format: "%.1f", Date().timeIntervalSince(loadStart)))"])
        var lastPoolReport = Date.distantPast
        let editor = try SCENEditor(model: gemma, tokenizer: tokenizer, hyperparameters: hp) { done, total in
            if Date().timeIntervalSince(lastPoolReport) > 2 || done == total {
                lastPoolReport = Date()
                logger.info("computing negative pool", metadata: ["done": "\(done)", "total": "\(total)"])
            }
        }
        var store = try PostgresEditStore(url: settings.postgresURL)
        let dims = gemma.config.ffnSize
        let engine = SCENEditTrainer(editor: editor) {
            TrafficKeys(slots: try store.trafficKeys(layer: hp.layer, pooling: hp.keyPooling.rawValue, dims: dims))
        }
        logger.info("SCEN ready", metadata: ["layer": "\(hp.layer)", "form": "\(hp.expertForm.rawValue)", "rank": "\(hp.rank)",
                                             "seconds": "\(String(format: "%.1f", Date().timeIntervalSince(loadStart)))"])

        func makeStep() -> TrainerStep {
            TrainerStep(repository: store, trainer: engine, maxAttempts: maxAttempts, logger: logger)
        }
        var step = makeStep()
        let consumer = try KafkaConsumer(brokers: settings.kafkaBrokers, group: group, topics: [PipelineTopics.editJobs],
                                         settings: settings.consumerSettings.merging(["max.poll.interval.ms": "900000"]) { old, _ in old })
        logger.info("consuming", metadata: ["topic": "\(PipelineTopics.editJobs)", "group": "\(group)"])

        let shutdown = ShutdownSignal()
        let loop = ConsumerLoop(consumer: consumer, shutdown: shutdown, logger: logger, lag: lag, exitWhenIdle: settings.exitWhenIdle)
        try loop.run(handle: { message in
            let outcome = try step.handle(message, shouldStop: { shutdown.isRequested })
            consumed.increment()
            switch outcome {
            case .trained(_, let s):
                trained.increment()
                seconds.recordSeconds(s)
            case .failed: failed.increment()
            case .skipped, .notFound, .malformedJob: skipped.increment()
            }
        }, recover: { error in
            // A new connection when the old one is gone or its server cannot do the work any more
            // (read-only after a failover); other errors retry on the same one.
            guard !store.db.isConnected || (error as? PostgresError)?.needsNewConnection == true else { return }
            do {
                store = try PostgresEditStore(url: settings.postgresURL)
                let unstored = step.unstoredResult
                step = makeStep()
                step.unstoredResult = unstored  // a good training outlives the connection
                logger.info("reconnected to PostgreSQL")
            } catch {
                logger.error("PostgreSQL still unreachable", metadata: ["error": "\(error)"])
            }
        })
        func count(_ counter: Counter) -> Logger.MetadataValue { "\(Int(metrics.value(counter.label)))" }
        logger.info("stopped", metadata: ["consumed": count(consumed), "trained": count(trained),
                                          "failed": count(failed), "skipped": count(skipped)])
    }
}
