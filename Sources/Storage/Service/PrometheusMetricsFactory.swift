// swift-metrics backend over `PrometheusRegistry`: the services record through the
// swift-metrics API (Counter, Gauge, Meter, Recorder, Timer) and `/metrics` renders the
// registry. Each service (and each in-process router in tests) owns one factory and passes it
// to its metrics explicitly, so several can live in one process; an executable may also
// bootstrap `MetricsSystem` with it so that libraries' metrics land on the same page.
//
// Mapping: Counter / FloatingPointCounter → counter (dimensions become labels); Gauge
// (non-aggregating Recorder) and Meter → gauge; aggregating Recorder → histogram; Timer →
// histogram in seconds. Gauges and histograms carry no labels: their dimensions are dropped
// (all series of a label share one family) rather than refused, so a library's metrics can
// never stop a service. Help texts and histogram buckets are declared with `describe` before
// the metric is first made (Prometheus has both, swift-metrics neither).
import Foundation
import Metrics

public final class PrometheusMetricsFactory: MetricsFactory, @unchecked Sendable {
    public let registry: PrometheusRegistry
    private let lock = NSLock()
    private var descriptions: [String: (help: String, buckets: [Double]?)] = [:]
    private var counters: [String: PrometheusRegistry.Counter] = [:]
    private var labeledCounters: [String: PrometheusRegistry.LabeledCounter] = [:]
    private var gauges: [String: PrometheusRegistry.Gauge] = [:]
    private var histograms: [String: PrometheusRegistry.Histogram] = [:]

    /// Buckets of a histogram that was not given any (seconds: 1 ms … 60 s).
    public static let defaultBuckets: [Double] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

    public init(registry: PrometheusRegistry = PrometheusRegistry()) {
        self.registry = registry
    }

    /// Declares the help text (and, for recorders and timers, the buckets) of `label`.
    public func describe(_ label: String, help: String, buckets: [Double]? = nil) {
        lock.withLock { descriptions[label] = (help, buckets) }
    }

    /// A swift-metrics counter of this factory, described in the same step.
    public func counter(_ label: String, help: String) -> Counter {
        describe(label, help: help)
        return Counter(label: label, factory: self)
    }

    /// A swift-metrics gauge of this factory, described in the same step.
    public func gauge(_ label: String, help: String) -> Gauge {
        describe(label, help: help)
        return Gauge(label: label, factory: self)
    }

    /// A swift-metrics timer (a histogram in seconds) of this factory, described in the same step.
    public func timer(_ label: String, help: String, buckets: [Double]) -> Metrics.Timer {
        describe(label, help: help, buckets: buckets)
        return Metrics.Timer(label: label, factory: self)
    }

    /// The current value of a counter or gauge without labels (for logs and tests).
    public func value(_ label: String) -> Double {
        lock.withLock { counters[label]?.value ?? gauges[label]?.value ?? 0 }
    }

    private func help(_ label: String) -> String { descriptions[label]?.help ?? label }

    private func counter(_ label: String, _ dimensions: [(String, String)]) -> any FloatingPointCounterHandler & CounterHandler {
        lock.withLock {
            if dimensions.isEmpty {
                let c = counters[label] ?? registry.counter(label, help: help(label))
                counters[label] = c
                return CounterSeries(add: { c.increment(by: $0) })
            }
            let c = labeledCounters[label] ?? registry.labeledCounter(label, help: help(label))
            labeledCounters[label] = c
            return CounterSeries(add: { c.increment(dimensions, by: $0) })
        }
    }

    private func gauge(_ label: String, _ dimensions: [(String, String)]) -> PrometheusRegistry.Gauge {
        lock.withLock {
            let g = gauges[label] ?? registry.gauge(label, help: help(label))
            gauges[label] = g
            return g
        }
    }

    private func histogram(_ label: String, _ dimensions: [(String, String)]) -> PrometheusRegistry.Histogram {
        lock.withLock {
            let h = histograms[label]
                ?? registry.histogram(label, help: help(label), buckets: descriptions[label]?.buckets ?? Self.defaultBuckets)
            histograms[label] = h
            return h
        }
    }

    // MARK: MetricsFactory

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        counter(label, dimensions)
    }

    public func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        counter(label, dimensions)
    }

    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        GaugeSeries(gauge: gauge(label, dimensions))
    }

    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        if aggregate { return HistogramSeries(histogram: histogram(label, dimensions)) }
        return GaugeSeries(gauge: gauge(label, dimensions))
    }

    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        HistogramSeries(histogram: histogram(label, dimensions))
    }

    // Series stay in the registry for the life of the process (Prometheus keeps them too).
    public func destroyCounter(_ handler: any CounterHandler) {}
    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    public func destroyMeter(_ handler: any MeterHandler) {}
    public func destroyRecorder(_ handler: any RecorderHandler) {}
    public func destroyTimer(_ handler: any TimerHandler) {}
}

private final class CounterSeries: CounterHandler, FloatingPointCounterHandler, Sendable {
    let add: @Sendable (Double) -> Void
    init(add: @escaping @Sendable (Double) -> Void) { self.add = add }
    func increment(by amount: Int64) { add(Double(amount)) }
    func increment(by amount: Double) { add(amount) }
    func reset() {}
}

private final class GaugeSeries: MeterHandler, RecorderHandler, Sendable {
    let gauge: PrometheusRegistry.Gauge
    init(gauge: PrometheusRegistry.Gauge) { self.gauge = gauge }
    func set(_ value: Int64) { gauge.set(Double(value)) }
    func set(_ value: Double) { gauge.set(value) }
    func record(_ value: Int64) { gauge.set(Double(value)) }
    func record(_ value: Double) { gauge.set(value) }
    func increment(by amount: Double) { gauge.add(amount) }
    func decrement(by amount: Double) { gauge.add(-amount) }
}

private final class HistogramSeries: RecorderHandler, TimerHandler, Sendable {
    let histogram: PrometheusRegistry.Histogram
    init(histogram: PrometheusRegistry.Histogram) { self.histogram = histogram }
    func record(_ value: Int64) { histogram.observe(Double(value)) }
    func record(_ value: Double) { histogram.observe(value) }
    func recordNanoseconds(_ duration: Int64) { histogram.observe(Double(duration) / 1e9) }
}
