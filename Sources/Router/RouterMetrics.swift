// The router's Prometheus metrics: requests by path and status, latency histogram, tokens,
// expert hit rate, rejections, edits loaded. Rendered in the text exposition format.
import Foundation
import Hummingbird

public final class RouterMetrics: @unchecked Sendable {
    public init() {}
    static let latencyBuckets: [Double] = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

    private let lock = NSLock()
    private var requests: [String: Int] = [:]          // "path|status" → count
    private var latencyCounts = [Int](repeating: 0, count: RouterMetrics.latencyBuckets.count)
    private var latencySum = 0.0
    private var latencyCount = 0
    private var generations = 0
    private var generationsWithEdit = 0
    private var generatedTokens = 0
    private var rejections = 0

    func middleware<Context: RequestContext>() -> some RouterMiddleware<Context> { Middleware(metrics: self) }

    func recordRequest(path: String, status: Int, seconds: Double) {
        lock.withLock {
            requests["\(path)|\(status)", default: 0] += 1
            latencySum += seconds
            latencyCount += 1
            for (i, bound) in Self.latencyBuckets.enumerated() where seconds <= bound { latencyCounts[i] += 1 }
        }
    }

    func recordGeneration(_ result: GenerationResult) {
        lock.withLock {
            generations += 1
            generatedTokens += result.ids.count
            if result.edit != nil { generationsWithEdit += 1 }
        }
    }

    func recordRejection() { lock.withLock { rejections += 1 } }

    func render(state: RouterState) -> String {
        let edits = state.edits?.activeCount ?? 0
        let queued = state.inference?.queued ?? 0
        return lock.withLock {
            var out = ""
            out += "# HELP scen_router_requests_total HTTP requests by path and status.\n# TYPE scen_router_requests_total counter\n"
            for (key, n) in requests.sorted(by: { $0.key < $1.key }) {
                let parts = key.split(separator: "|", maxSplits: 1)
                out += "scen_router_requests_total{path=\"\(parts[0])\",status=\"\(parts[1])\"} \(n)\n"
            }
            out += "# HELP scen_router_request_seconds HTTP request latency.\n# TYPE scen_router_request_seconds histogram\n"
            for (i, bound) in Self.latencyBuckets.enumerated() {
                out += "scen_router_request_seconds_bucket{le=\"\(bound)\"} \(latencyCounts[i])\n"
            }
            out += "scen_router_request_seconds_bucket{le=\"+Inf\"} \(latencyCount)\n"
            out += "scen_router_request_seconds_sum \(latencySum)\nscen_router_request_seconds_count \(latencyCount)\n"
            out += "# HELP scen_router_generations_total Completed generations.\n# TYPE scen_router_generations_total counter\nscen_router_generations_total \(generations)\n"
            out += "# HELP scen_router_expert_hits_total Generations in which an edit's expert was applied.\n# TYPE scen_router_expert_hits_total counter\nscen_router_expert_hits_total \(generationsWithEdit)\n"
            let rate = generations == 0 ? 0 : Double(generationsWithEdit) / Double(generations)
            out += "# HELP scen_router_expert_hit_ratio Share of generations in which an expert was applied.\n# TYPE scen_router_expert_hit_ratio gauge\nscen_router_expert_hit_ratio \(rate)\n"
            out += "# HELP scen_router_generated_tokens_total Tokens generated.\n# TYPE scen_router_generated_tokens_total counter\nscen_router_generated_tokens_total \(generatedTokens)\n"
            out += "# HELP scen_router_rejected_total Requests refused with 429 because the queue was full.\n# TYPE scen_router_rejected_total counter\nscen_router_rejected_total \(rejections)\n"
            out += "# HELP scen_router_queued_requests Requests waiting for a worker.\n# TYPE scen_router_queued_requests gauge\nscen_router_queued_requests \(queued)\n"
            out += "# HELP scen_router_edits_loaded Active edits in the routing table.\n# TYPE scen_router_edits_loaded gauge\nscen_router_edits_loaded \(edits)\n"
            return out
        }
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
