// scen-router: answers queries over HTTP with the base model plus the activated expert.
import ArgumentParser
import Core
import Foundation
import Hummingbird
import Logging
import Metrics
import Storage

@main
struct RouterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scen-router",
        abstract: "Serve the base model plus SCEN edits over HTTP; follows new and reverted edits live.")

    @Option(help: "Address to listen on.")
    var hostname = "127.0.0.1"

    @Option(help: "Port to listen on (env SCEN_ROUTER_PORT).")
    var port: Int?

    @Option(help: "The GGUF model file (env SCEN_MODEL).")
    var model: String?

    @Option(help: "Threads per forward pass.")
    var threads = 2

    @Option(help: "Sequences generated at once in one continuous batch (each holds a KV cache of --context tokens).")
    var maxSequences = 16

    @Option(help: "Requests that may wait for a sequence slot; more are refused with 429.")
    var queueLimit = 64

    @Option(help: "KV cache tokens per sequence: prompt plus answer.")
    var context = 2048

    @Option(help: "Prompt tokens read per engine step (a long prompt is read in chunks between decode steps).")
    var prefillChunk = 64

    @Option(help: "Upper bound on max_tokens per request.")
    var maxTokensCap = 256

    @Option(help: "PostgreSQL URL (env SCEN_ROUTER_POSTGRES_URL, else SCEN_POSTGRES_URL, else .stack/env).")
    var postgresURL: String?

    @Option(help: "SCEN hyperparameters as a JSON file (layer, θ, key gate; must match the trainer's).")
    var hyperparameters: String?

    @Option(help: ArgumentHelp("Routing keys of served prompts kept for the trainer (env SCEN_TRAFFIC_RESERVOIR; 0: off).",
                               discussion: "A uniform sample of the prompts' routing keys (never their text), stored in PostgreSQL (traffic_keys) every 5 s; the trainer trains new indexing neurons against them and holds an edit that would answer too much of them."))
    var trafficReservoir: Int?

    func validate() throws {
        // Every correction ingest accepts must fit a sequence, with room to answer.
        guard context >= CorrectionLimits.editTokens + maxTokensCap else {
            throw ValidationError("--context \(context) cannot hold a correction's \(CorrectionLimits.editTokens) tokens "
                                  + "plus --max-tokens-cap \(maxTokensCap)")
        }
        guard maxSequences >= 1, prefillChunk >= 1, queueLimit >= 0 else {
            throw ValidationError("--max-sequences and --prefill-chunk must be at least 1, --queue-limit at least 0")
        }
    }

    func run() async throws {
        var logger = Logger(label: "scen-router")
        logger.logLevel = .info
        let env = ProcessInfo.processInfo.environment
        let port = self.port ?? env["SCEN_ROUTER_PORT"].flatMap(Int.init) ?? 8080
        let modelPath = SettingsResolver.modelPath(flag: model)

        let postgresURL = SettingsResolver.postgresURL(flag: self.postgresURL, service: "router")
        let hp = try SCENHyperparameters.load(hyperparameters)

        let state = RouterState(modelName: URL(fileURLWithPath: modelPath).deletingPathExtension().lastPathComponent,
                                defaultMaxTokens: 32)
        let metrics = RouterMetrics()
        MetricsSystem.bootstrap(metrics.factory)
        let database = Database(url: postgresURL)
        let app = Application(
            router: buildRouter(state: state, metrics: metrics, database: database,
                                adminToken: env["SCEN_ADMIN_TOKEN"]),
            configuration: .init(address: .hostname(hostname, port: port), serverName: "scen-router"),
            logger: logger)

        // Load the model, the negative pool's key statistics and the active edits off the
        // event loops; /readyz turns 200 when all are in.
        let (threads, slots, queueLimit, cap) = (self.threads, self.maxSequences, self.queueLimit, self.maxTokensCap)
        let (context, prefillChunk) = (self.context, self.prefillChunk)
        let reservoir = max(0, trafficReservoir ?? env["SCEN_TRAFFIC_RESERVOIR"].flatMap(Int.init) ?? 1000)
        Thread.detachNewThread { [logger] in
            do {
                let start = Date()
                let file = try GGUFFile(path: modelPath)
                let tokenizer = try GemmaTokenizer(gguf: file)
                let gemma = try GemmaModel(file: file, threads: threads)
                state.inference = InferenceService(model: gemma, tokenizer: tokenizer, maxSequences: slots, queueLimit: queueLimit,
                                                   maxTokensCap: cap, context: context, prefillChunk: prefillChunk, metrics: metrics)
                logger.info("model loaded", metadata: ["path": "\(modelPath)", "seconds": "\(Date().timeIntervalSince(start))"])
                let table = try LiveEdits(model: gemma, tokenizer: tokenizer, hyperparameters: hp, reservoir: reservoir, logger: logger)
                // PostgreSQL may be away (restarting, failing over, not up yet): wait for it,
                // not ready meanwhile, instead of exiting into a crash loop.
                var delay = 1.0
                while true {
                    do {
                        try table.reload(from: PostgresEditStore(try PostgresConnection(url: postgresURL)))
                        break
                    } catch {
                        logger.error("cannot load the active edits; retrying",
                                     metadata: ["error": "\(error)", "retry_in_s": "\(delay)"])
                        Thread.sleep(forTimeInterval: delay)
                        delay = min(delay * 2, 10)
                    }
                }
                state.edits = table
                logger.info("ready", metadata: ["active_edits": "\(table.activeCount)"])
                table.follow(url: postgresURL)
            } catch {
                logger.critical("cannot start", metadata: ["error": "\(error)"])
                Foundation.exit(1)
            }
        }
        try await app.runService()
    }
}

