// A minimal HTTP/1.1 responder for Prometheus scrapes: GET /metrics → the registry's text,
// GET /healthz → "ok", anything else → 404. One thread, one request per connection.
// Why not Hummingbird, as the router: its server runs on Swift's cooperative thread pool, and
// waiting for it to bind from a thread of that pool (tests run there, beside tests that block
// their threads for minutes) timed out under `make test` on 2 cores. This one binds synchronously.
import Foundation
import Storage
import Prometheus
#if canImport(Glibc)
import Glibc
#endif

public enum MetricsServerError: Error, CustomStringConvertible {
    case socket(String)
    public var description: String {
        switch self { case .socket(let m): "metrics listener: \(m)" }
    }
}

public final class MetricsServer: @unchecked Sendable {
    public let port: Int
    private let fd: Int32
    private let registry: PrometheusCollectorRegistry

    /// Binds `host:port` (port 0: any free port; see `port`) and serves on a background thread.
    public init(registry: PrometheusCollectorRegistry, host: String = "127.0.0.1", port: Int) throws {
        self.registry = registry
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard s >= 0 else { throw MetricsServerError.socket("socket(): errno \(errno)") }
        var yes: Int32 = 1
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else { close(s); throw MetricsServerError.socket("bad IPv4 address \(host)") }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(s, 16) == 0 else {
            let e = errno
            close(s)
            throw MetricsServerError.socket("cannot listen on \(host):\(port): \(String(cString: strerror(e)))")
        }
        var actual = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
        self.port = Int(UInt16(bigEndian: actual.sin_port))
        self.fd = s
        let thread = Thread { [self] in self.serve() }
        thread.name = "metrics-http"
        thread.start()
    }

    private func serve() {
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            handle(client)
            close(client)
        }
    }

    private func handle(_ client: Int32) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var request = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        // Read until the end of the headers (we ignore any body).
        while request.count < 16384 {
            let n = read(client, &buffer, buffer.count)
            if n <= 0 { break }
            request += buffer[0..<n]
            if request.count >= 4, request.suffix(4) == [13, 10, 13, 10] { break }
            if let text = String(validating: request, as: UTF8.self), text.contains("\r\n\r\n") { break }
        }
        let line = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self).split(separator: " ")
        let (status, type, body): (String, String, String)
        if line.count >= 2, line[0] == "GET" || line[0] == "HEAD" {
            switch line[1].split(separator: "?").first.map(String.init) ?? "" {
            case "/metrics": (status, type, body) = ("200 OK", "text/plain; version=0.0.4; charset=utf-8", registry.emitToString())
            case "/healthz": (status, type, body) = ("200 OK", "text/plain; charset=utf-8", "ok\n")
            default: (status, type, body) = ("404 Not Found", "text/plain; charset=utf-8", "not found\n")
            }
        } else {
            (status, type, body) = ("405 Method Not Allowed", "text/plain; charset=utf-8", "method not allowed\n")
        }
        let bytes = Array(body.utf8)
        let head = "HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(bytes.count)\r\nConnection: close\r\n\r\n"
        var out = Array(head.utf8)
        if line.first != "HEAD" { out += bytes }
        var sent = 0
        while sent < out.count {
            // send with MSG_NOSIGNAL: a scraper that hung up must not SIGPIPE the service.
            let n = out[sent...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }
            sent += n
        }
    }
}
