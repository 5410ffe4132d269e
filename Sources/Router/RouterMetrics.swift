// The router's Prometheus metrics, kept in Storage's PrometheusRegistry like the pipeline
// services': requests by path and status, latency histogram, tokens, expert hit rate,
// rejections, queued requests and edits loaded.
import Foundation
import Hummingbird
import Storage

public final class RouterMetrics: Sendable {
    private let registry = PrometheusRegistry()
    private let requests: PrometheusRegistry.LabeledCounter
    private let latency: PrometheusRegistry.Histogram
    private let generations: PrometheusRegistry.Counter
    private let expertHits: PrometheusRegistry.Counter
    private let hitRatio: PrometheusRegistry.Gauge
    private let tokens: PrometheusRegistry.Counter
    private let rejections: PrometheusRegistry.Counter
    private let queued: PrometheusRegistry.Gauge
    private let editsLoaded: PrometheusRegistry.Gauge

    public init() {
        requests = registry.labeledCounter("scen_router_requests_total", help: "HTTP requests by path and status.")
        latency = registry.histogram("scen_router_request_seconds", help: "HTTP request latency.",
                                     buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30])
        generations = registry.counter("scen_router_generations_total", help: "Completed generations.")
        expertHits = registry.counter("scen_router_expert_hits_total", help: "Generations in which an edit's expert was applied.")
        hitRatio = registry.gauge("scen_router_expert_hit_ratio", help: "Share of generations in which an expert was applied.")
        tokens = registry.counter("scen_router_generated_tokens_total", help: "Tokens generated.")
        rejections = registry.counter("scen_router_rejected_total", help: "Requests refused with 429 because the queue was full.")
        queued = registry.gauge("scen_router_queued_requests", help: "Requests waiting for a worker.")
        editsLoaded = registry.gauge("scen_router_edits_loaded", help: "Active edits in the routing table.")
    }

    func middleware<Context: RequestContext>() -> some RouterMiddleware<Context> { Middleware(metrics: self) }

    func recordRequest(path: String, status: Int, seconds: Double) {
        requests.increment([("path", path), ("status", String(status))])
        latency.observe(seconds)
    }

    func recordGeneration(_ result: GenerationResult) {
        generations.increment()
        tokens.increment(by: Double(result.ids.count))
        if result.edit != nil { expertHits.increment() }
        hitRatio.set(expertHits.value / generations.value)
    }

    func recordRejection() { rejections.increment() }

    func render(state: RouterState) -> String {
        editsLoaded.set(Double(state.edits?.activeCount ?? 0))
        queued.set(Double(state.inference?.queued ?? 0))
        return registry.render()
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
