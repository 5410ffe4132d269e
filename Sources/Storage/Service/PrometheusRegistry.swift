// A small Prometheus registry: counters, gauges and histograms (counters may carry labels),
// rendered in the text exposition format 0.0.4. Thread-safe (the /metrics listener reads from its own thread).
import Foundation

public final class PrometheusRegistry: @unchecked Sendable {
    private let lock = NSLock()
    private var families: [(name: String, help: String, type: String)] = []
    private var values: [String: Double] = [:]
    /// Labelled counter series: family name → (rendered label set → value), in first-seen order.
    private var series: [String: [(labels: String, value: Double)]] = [:]
    private var histograms: [String: HistogramState] = [:]

    private struct HistogramState {
        let bounds: [Double]
        var counts: [UInt64]
        var sum = 0.0
        var count: UInt64 = 0
    }

    public init() {}

    public func counter(_ name: String, help: String) -> Counter {
        register(name, help, "counter")
        return Counter(registry: self, name: name)
    }

    /// A counter family whose series are told apart by labels (e.g. path and status).
    public func labeledCounter(_ name: String, help: String) -> LabeledCounter {
        register(name, help, "counter")
        lock.withLock {
            values[name] = nil
            if series[name] == nil { series[name] = [] }
        }
        return LabeledCounter(registry: self, name: name)
    }

    public func gauge(_ name: String, help: String) -> Gauge {
        register(name, help, "gauge")
        return Gauge(registry: self, name: name)
    }

    public func histogram(_ name: String, help: String, buckets: [Double]) -> Histogram {
        register(name, help, "histogram")
        let bounds = buckets.sorted()
        lock.withLock { histograms[name] = HistogramState(bounds: bounds, counts: Array(repeating: 0, count: bounds.count)) }
        return Histogram(registry: self, name: name)
    }

    private func register(_ name: String, _ help: String, _ type: String) {
        lock.withLock {
            if !families.contains(where: { $0.name == name }) { families.append((name, help, type)) }
            if type != "histogram" && values[name] == nil { values[name] = 0 }
        }
    }

    public struct Counter: Sendable {
        let registry: PrometheusRegistry
        let name: String
        public func increment(by amount: Double = 1) {
            precondition(amount >= 0, "a counter only goes up")
            registry.lock.withLock { registry.values[name, default: 0] += amount }
        }
        public var value: Double { registry.lock.withLock { registry.values[name] ?? 0 } }
    }

    public struct LabeledCounter: Sendable {
        let registry: PrometheusRegistry
        let name: String
        /// Adds `amount` to the series with these labels (label order is kept as given).
        public func increment(_ labels: [(String, String)], by amount: Double = 1) {
            precondition(amount >= 0, "a counter only goes up")
            let key = labels.map { "\($0.0)=\"\(PrometheusRegistry.escape($0.1))\"" }.joined(separator: ",")
            registry.lock.withLock {
                var list = registry.series[name] ?? []
                if let i = list.firstIndex(where: { $0.labels == key }) { list[i].value += amount } else { list.append((key, amount)) }
                registry.series[name] = list
            }
        }
    }

    public struct Gauge: Sendable {
        let registry: PrometheusRegistry
        let name: String
        public func set(_ value: Double) { registry.lock.withLock { registry.values[name] = value } }
        /// Adds `delta` (may be negative) in one step under the registry's lock.
        public func add(_ delta: Double) { registry.lock.withLock { registry.values[name, default: 0] += delta } }
        public var value: Double { registry.lock.withLock { registry.values[name] ?? 0 } }
    }

    public struct Histogram: Sendable {
        let registry: PrometheusRegistry
        let name: String
        public func observe(_ value: Double) {
            registry.lock.withLock {
                guard var h = registry.histograms[name] else { return }
                for (i, bound) in h.bounds.enumerated() where value <= bound { h.counts[i] += 1 }
                h.sum += value
                h.count += 1
                registry.histograms[name] = h
            }
        }
    }

    /// The text exposition of every metric.
    public func render() -> String {
        lock.withLock {
            var out = ""
            for f in families {
                out += "# HELP \(f.name) \(f.help.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n"))\n"
                out += "# TYPE \(f.name) \(f.type)\n"
                if let h = histograms[f.name] {
                    for (i, bound) in h.bounds.enumerated() { out += "\(f.name)_bucket{le=\"\(format(bound))\"} \(h.counts[i])\n" }
                    out += "\(f.name)_bucket{le=\"+Inf\"} \(h.count)\n"
                    out += "\(f.name)_sum \(format(h.sum))\n"
                    out += "\(f.name)_count \(h.count)\n"
                } else if let list = series[f.name] {
                    for (labels, value) in list.sorted(by: { $0.labels < $1.labels }) {
                        out += "\(f.name){\(labels)} \(format(value))\n"
                    }
                } else {
                    out += "\(f.name) \(format(values[f.name] ?? 0))\n"
                }
            }
            return out
        }
    }

    static func escape(_ labelValue: String) -> String {
        labelValue.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    private func format(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        return v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
    }
}
