// The Prometheus scrape endpoint of the pipeline services, on Hummingbird (as the router serves):
// GET /metrics → the registry's text, GET /healthz → "ok", anything else → 404. It runs on its
// own task beside the service's synchronous consumer loop; no signal handling of its own (the
// service's ShutdownSignal owns SIGTERM and SIGINT).
import Foundation
import Hummingbird
import Logging
import NIOCore
import Prometheus

public enum MetricsServerError: Error, CustomStringConvertible {
    case listen(host: String, port: Int, String)
    public var description: String {
        switch self { case let .listen(host, port, why): "metrics listener: cannot listen on \(host):\(port): \(why)" }
    }
}

public final class MetricsServer: Sendable {
    /// The bound port (the one asked for, or the one the system picked for 0).
    public let port: Int
    private let task: Task<Void, Never>

    /// Binds `host:port` (port 0: any free port; see `port`) and serves until the process ends.
    public init(registry: PrometheusCollectorRegistry, host: String = "127.0.0.1", port: Int) throws {
        let router = Router()
        router.get("metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: registry.emitToString())))
        }
        router.get("healthz") { _, _ in "ok\n" }
        let started = Started()
        // Start failures surface as the initialiser's error; the cancellation at exit is no news.
        var logger = Logger(label: "scen-metrics-http")
        logger.logLevel = .critical
        let app = Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: nil),
                              onServerRunning: { started.succeed($0.localAddress?.port ?? port) }, logger: logger)
        task = Task {
            do { try await app.run() } catch { started.fail(error) }
        }
        switch started.wait(timeout: 30) {
        case .success(let bound): self.port = bound
        case .failure(let error):
            task.cancel()
            throw MetricsServerError.listen(host: host, port: port, "\(error)")
        }
    }

    deinit { task.cancel() }
}

/// The server's start, handed from its task to the initialiser.
private final class Started: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var result: Result<Int, any Error>?

    func succeed(_ port: Int) { finish(.success(port)) }
    func fail(_ error: any Error) { finish(.failure(error)) }

    private func finish(_ r: Result<Int, any Error>) {
        let first = lock.withLock { () -> Bool in
            guard result == nil else { return false }
            result = r
            return true
        }
        if first { done.signal() }
    }

    func wait(timeout: Double) -> Result<Int, any Error> {
        guard done.wait(timeout: .now() + timeout) == .success else { return .failure(TimedOut()) }
        return lock.withLock { result! }
    }

    struct TimedOut: Error, CustomStringConvertible { var description: String { "did not start within 30 s" } }
}
