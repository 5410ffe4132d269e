// The router's Prometheus metrics, recorded through swift-metrics into Storage's
// PrometheusMetricsFactory like the pipeline services': requests by path and status, latency
// histogram, time to first token and between tokens, tokens, expert hit rate, rejections, queued requests, active sequences, decode batch sizes and edits loaded. Each
// router owns its factory (tests run several routers in one process).
import Foundation
import Hummingbird
import Metrics
import Pipeline
import Storage

public final class RouterMetrics: Sendable {
    /// The backend; its registry is what `/metrics` renders.
    public let factory = PrometheusMetricsFactory()
    private let latency: Metrics.Timer
    private let firstToken: Metrics.Timer
    private let interToken: Metrics.Timer
    private let generations: Counter
    private let expertHits: Counter
    private let hitRatio: Gauge
    private let tokens: Counter
    private let rejections: Counter
    private let queued: Gauge
    private let activeSequences: Gauge
    private let batchSize: Recorder
    private let editsLoaded: Gauge
    private let editsUnroutable: Gauge

    /// The one family with dimensions (path, status): a counter per series, made on use.
    private static let requestsLabel = "scen_router_requests_total"

    public init() {
        let f = factory
        f.describe(Self.requestsLabel, help: "HTTP requests by path and status.")
        latency = f.timer("scen_router_request_seconds", help: "HTTP request latency.", buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30])
        firstToken = f.timer("scen_router_time_to_first_token_seconds", help: "From a generation request's arrival (queueing included) to its first token.",
                             buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30])
        interToken = f.timer("scen_router_inter_token_seconds", help: "Mean time between a generation's tokens after the first.",
                             buckets: [0.005, 0.01, 0.02, 0.035, 0.05, 0.1, 0.25, 0.5, 1])
        generations = f.counter("scen_router_generations_total", help: "Completed generations.")
        expertHits = f.counter("scen_router_expert_hits_total", help: "Generations in which an edit's expert was applied.")
        hitRatio = f.gauge("scen_router_expert_hit_ratio", help: "Share of generations in which an expert was applied.")
        tokens = f.counter("scen_router_generated_tokens_total", help: "Tokens generated.")
        rejections = f.counter("scen_router_rejected_total", help: "Requests refused with 429 because the queue was full.")
        queued = f.gauge("scen_router_queued_requests", help: "Requests waiting for a sequence slot.")
        activeSequences = f.gauge("scen_router_active_sequences", help: "Sequences being read or generated (at most --max-sequences).")
        f.describe("scen_router_batch_size", help: "Sequences in each batched decode step.", buckets: [1, 2, 4, 8, 12, 16, 24, 32, 48, 64])
        batchSize = Recorder(label: "scen_router_batch_size", factory: f)
        editsLoaded = f.gauge("scen_router_edits_loaded", help: "Active edits in the routing table.")
        editsUnroutable = f.gauge("scen_router_edits_unroutable",
                                  help: "Active edits left out of the routing table: unreadable expert or neuron, wrong shape, other routing key.")
    }

    func middleware<Context: RequestContext>() -> some RouterMiddleware<Context> { Middleware(metrics: self) }

    func recordRequest(path: String, status: Int, seconds: Double) {
        Counter(label: Self.requestsLabel, dimensions: [("path", path), ("status", String(status))], factory: factory).increment()
        latency.recordSeconds(seconds)
    }

    func recordGeneration(_ result: GenerationResult) {
        generations.increment()
        tokens.increment(by: result.ids.count)
        firstToken.recordSeconds(result.firstTokenSeconds)
        if let t = result.interTokenSeconds { interToken.recordSeconds(t) }
        if result.edit != nil { expertHits.increment() }
    }

    func recordRejection() { rejections.increment() }

    func recordBatch(size: Int) { batchSize.record(size) }

    func render(state: RouterState) -> String {
        editsLoaded.record(state.edits?.activeCount ?? 0)
        editsUnroutable.record(state.edits?.unroutableCount ?? 0)
        let done = factory.value(generations.label)
        hitRatio.record(done > 0 ? factory.value(expertHits.label) / done : 0)
        queued.record(state.inference?.queued ?? 0)
        activeSequences.record(state.inference?.active ?? 0)
        return factory.render()
    }

    private struct Middleware<Context: RequestContext>: RouterMiddleware {
        let metrics: RouterMetrics

        func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
            let start = DispatchTime.now().uptimeNanoseconds
            let path = context.endpointPath ?? "unmatched"
            func seconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
            do {
                let response = try await next(request, context)
                metrics.recordRequest(path: path, status: Int(response.status.code), seconds: seconds())
                return response
            } catch let error as HTTPResponseError {
                metrics.recordRequest(path: path, status: Int(error.status.code), seconds: seconds())
                throw error
            } catch {
                metrics.recordRequest(path: path, status: 500, seconds: seconds())
                throw error
            }
        }
    }
}
