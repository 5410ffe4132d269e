import Foundation
import Metrics
import Pipeline
import Storage
import Testing

@Suite("Prometheus metrics (swift-prometheus) and /metrics listener")
struct PrometheusRegistryTests {
    /// The services record through swift-metrics; the factory turns that into the registry's
    /// families with the declared help and buckets.
    @Test func swiftMetricsRecordIntoTheRegistry() {
        let f = PrometheusMetricsFactory()
        f.describe("scen_test_jobs_total", help: "Jobs.")
        f.describe("scen_test_requests_total", help: "Requests.")
        f.describe("scen_test_seconds", help: "Seconds.", buckets: [0.5, 1])
        f.describe("scen_test_lag", help: "Lag.")
        let jobs = Counter(label: "scen_test_jobs_total", factory: f)
        jobs.increment()
        jobs.increment(by: 4)
        Counter(label: "scen_test_requests_total", dimensions: [("path", "/a"), ("status", "200")], factory: f).increment()
        Counter(label: "scen_test_requests_total", dimensions: [("path", "/a"), ("status", "200")], factory: f).increment()
        Counter(label: "scen_test_requests_total", dimensions: [("path", "/b\""), ("status", "404")], factory: f).increment()
        let timer = Metrics.Timer(label: "scen_test_seconds", factory: f)
        timer.recordSeconds(0.25)
        timer.recordNanoseconds(2_000_000_000)
        let lag = Gauge(label: "scen_test_lag", factory: f)
        lag.record(3)
        lag.record(2)
        let undescribed = Meter(label: "scen_test_meter", factory: f)
        undescribed.set(5)
        undescribed.increment(by: 2)
        undescribed.decrement(by: 1)
        #expect(f.value("scen_test_jobs_total") == 5)
        #expect(f.value("scen_test_lag") == 2)
        let text = f.render()
        for family in ["""
            # HELP scen_test_jobs_total Jobs.
            # TYPE scen_test_jobs_total counter
            scen_test_jobs_total 5
            """, """
            # HELP scen_test_seconds Seconds.
            # TYPE scen_test_seconds histogram
            scen_test_seconds_bucket{le="0.5"} 1
            scen_test_seconds_bucket{le="1.0"} 1
            scen_test_seconds_bucket{le="+Inf"} 2
            scen_test_seconds_sum 2.25
            scen_test_seconds_count 2
            """, """
            # HELP scen_test_lag Lag.
            # TYPE scen_test_lag gauge
            scen_test_lag 2.0
            """, """
            # HELP scen_test_meter scen_test_meter
            # TYPE scen_test_meter gauge
            scen_test_meter 6.0
            """, """
            # HELP scen_test_requests_total Requests.
            # TYPE scen_test_requests_total counter
            """, #"scen_test_requests_total{path="/a",status="200"} 2"#, #"scen_test_requests_total{path="/b\"",status="404"} 1"#] {
            #expect(text.contains(family), "missing:\n\(family)\nin:\n\(text)")
        }
    }

    @Test func servesMetricsOverHTTP() throws {
        let f = PrometheusMetricsFactory()
        f.counter("scen_test_up_total", help: "Up.").increment()
        let server = try MetricsServer(registry: f.registry, port: 0)
        #expect(server.port > 0)
        func get(_ path: String) throws -> String {
            let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(s) }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(server.port).bigEndian)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            try #require(ok == 0)
            let request = Array("GET \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8)
            _ = request.withUnsafeBytes { write(s, $0.baseAddress, $0.count) }
            var out = [UInt8](), buf = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = read(s, &buf, buf.count)
                if n <= 0 { break }
                out += buf[0..<n]
            }
            return String(decoding: out, as: UTF8.self)
        }
        let metrics = try get("/metrics")
        #expect(metrics.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(metrics.lowercased().contains("content-type: text/plain; version=0.0.4"))
        #expect(metrics.hasSuffix("scen_test_up_total 1\n"))
        #expect(try get("/other").hasPrefix("HTTP/1.1 404"))
    }
}
