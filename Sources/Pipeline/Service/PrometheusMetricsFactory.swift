// swift-metrics backend over swift-prometheus's `PrometheusCollectorRegistry`: the services record
// through the swift-metrics API (Counter, Gauge, Meter, Recorder, Timer) and `/metrics` renders the
// registry. Each service (and each in-process router in tests) owns one factory and passes it to
// its metrics explicitly, so several can live in one process.
//
// What this adds to swift-prometheus's own factory: help texts and histogram buckets declared
// with `describe` before a metric is first made (Prometheus has both, swift-metrics neither), and
// `value(_:)`, the current value of an unlabeled counter or gauge for log lines.
// Mapping: Counter / FloatingPointCounter → counter; Gauge (non-aggregating Recorder) and Meter →
// gauge; aggregating Recorder → histogram; Timer → histogram in seconds. Dimensions are labels.
import Foundation
import Storage
import Metrics
import Prometheus

public final class PrometheusMetricsFactory: MetricsFactory, @unchecked Sendable {
    public let registry: PrometheusCollectorRegistry
    private let lock = NSLock()
    private var descriptions: [String: (help: String, buckets: [Double]?)] = [:]
    private var values: [String: Double] = [:]

    /// Buckets of a histogram that was not given any (seconds: 1 ms … 60 s).
    public static let defaultBuckets: [Double] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
    }

    /// Declares the help text (and, for recorders and timers, the buckets) of `label`.
    public func describe(_ label: String, help: String, buckets: [Double]? = nil) {
        lock.withLock { descriptions[label] = (help, buckets) }
    }

    /// A swift-metrics counter of this factory, described in the same step.
    public func counter(_ label: String, help: String) -> Metrics.Counter {
        describe(label, help: help)
        return Metrics.Counter(label: label, factory: self)
    }

    /// A swift-metrics gauge of this factory, described in the same step.
    public func gauge(_ label: String, help: String) -> Metrics.Gauge {
        describe(label, help: help)
        return Metrics.Gauge(label: label, factory: self)
    }

    /// A swift-metrics timer (a histogram in seconds) of this factory, described in the same step.
    public func timer(_ label: String, help: String, buckets: [Double]) -> Metrics.Timer {
        describe(label, help: help, buckets: buckets)
        return Metrics.Timer(label: label, factory: self)
    }

    /// The current value of a counter or gauge without labels (for logs and tests).
    public func value(_ label: String) -> Double {
        lock.withLock { values[label] ?? 0 }
    }

    /// The registry in the Prometheus text format.
    public func render() -> String { registry.emitToString() }

    /// The family name with its help text (a label without a description is its own help).
    private func descriptor(_ label: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: label, unitName: "", helpText: lock.withLock { descriptions[label]?.help ?? label })
    }
    private func buckets(_ label: String) -> [Double] { lock.withLock { descriptions[label]?.buckets ?? Self.defaultBuckets } }

    /// Keeps `value(label)` current for unlabeled series.
    fileprivate func track(_ label: String, _ change: (inout Double) -> Void) {
        lock.withLock { change(&values[label, default: 0]) }
    }

    private func counter(_ label: String, _ dimensions: [(String, String)]) -> any FloatingPointCounterHandler & CounterHandler {
        let c = registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
        return dimensions.isEmpty ? TrackedCounter(counter: c, label: label, factory: self) : c
    }

    private func gauge(_ label: String, _ dimensions: [(String, String)]) -> any MeterHandler & RecorderHandler {
        let g = registry.makeGauge(descriptor: descriptor(label), labels: dimensions)
        return dimensions.isEmpty ? TrackedGauge(gauge: g, label: label, factory: self) : g
    }

    // MARK: MetricsFactory

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        counter(label, dimensions)
    }

    public func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        counter(label, dimensions)
    }

    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        gauge(label, dimensions)
    }

    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard aggregate else { return gauge(label, dimensions) }
        return registry.makeValueHistogram(descriptor: descriptor(label), labels: dimensions, buckets: buckets(label))
    }

    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        registry.makeDurationHistogram(descriptor: descriptor(label), labels: dimensions,
                                       buckets: buckets(label).map { .nanoseconds(Int64($0 * 1e9)) })
    }

    // Series stay in the registry for the life of the process (Prometheus keeps them too).
    public func destroyCounter(_ handler: any CounterHandler) {}
    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    public func destroyMeter(_ handler: any MeterHandler) {}
    public func destroyRecorder(_ handler: any RecorderHandler) {}
    public func destroyTimer(_ handler: any TimerHandler) {}
}

private final class TrackedCounter: CounterHandler, FloatingPointCounterHandler, @unchecked Sendable {
    let counter: Prometheus.Counter, label: String
    unowned let factory: PrometheusMetricsFactory
    init(counter: Prometheus.Counter, label: String, factory: PrometheusMetricsFactory) {
        self.counter = counter; self.label = label; self.factory = factory
    }
    func increment(by amount: Int64) { counter.increment(by: amount); factory.track(label) { $0 += Double(amount) } }
    func increment(by amount: Double) { counter.increment(by: amount); factory.track(label) { $0 += amount } }
    func reset() { counter.reset(); factory.track(label) { $0 = 0 } }
}

private final class TrackedGauge: MeterHandler, RecorderHandler, @unchecked Sendable {
    let gauge: Prometheus.Gauge, label: String
    unowned let factory: PrometheusMetricsFactory
    init(gauge: Prometheus.Gauge, label: String, factory: PrometheusMetricsFactory) {
        self.gauge = gauge; self.label = label; self.factory = factory
    }
    func set(_ value: Int64) { set(Double(value)) }
    func set(_ value: Double) { gauge.set(to: value); factory.track(label) { $0 = value } }
    func record(_ value: Int64) { set(Double(value)) }
    func record(_ value: Double) { set(value) }
    func increment(by amount: Double) { gauge.increment(by: amount); factory.track(label) { $0 += amount } }
    func decrement(by amount: Double) { gauge.decrement(by: amount); factory.track(label) { $0 -= amount } }
}
