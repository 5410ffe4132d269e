// SIGTERM / SIGINT → a flag the service loops check between messages; handlers registered with
// `whenSignalled` see every signal (ConsumerLoop exits at once on the second one, leaving the
// current message's offset uncommitted). The signals come from swift-service-lifecycle's
// UnixSignals; the loops themselves are blocking (librdkafka, libpq), so they poll this flag
// rather than run as ServiceGroup services.
import Foundation
import UnixSignals

public final class ShutdownSignal: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    private var onSignal: [@Sendable (Int) -> Void] = []
    private var listener: Task<Void, Never>?

    /// Returns once the signals are trapped.
    public init() {
        let trapped = DispatchSemaphore(value: 0)
        listener = Task.detached { [weak self] in
            let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
            trapped.signal()
            for await _ in signals { self?.received() }
        }
        trapped.wait()
    }

    deinit { listener?.cancel() }

    private func received() {
        let (n, handlers) = lock.withLock { count += 1; return (count, onSignal) }
        handlers.forEach { $0(n) }
    }

    /// Called on every signal with the number of signals so far.
    public func whenSignalled(_ handler: @escaping @Sendable (Int) -> Void) { lock.withLock { onSignal.append(handler) } }

    /// A stop was requested: finish the current message, then exit.
    public var isRequested: Bool { lock.withLock { count > 0 } }
}
