// SIGTERM / SIGINT → a flag the service loops check between messages; handlers registered with
// `whenSignalled` see every signal (ConsumerLoop exits at once on the second one, leaving the
// current message's offset uncommitted).
import Foundation
import Storage

public final class ShutdownSignal: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    private var sources: [DispatchSourceSignal] = []
    private var onSignal: [@Sendable (Int) -> Void] = []

    public init() {
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [weak self] in self?.received() }
            source.resume()
            sources.append(source)
        }
    }

    private func received() {
        let (n, handlers) = lock.withLock { count += 1; return (count, onSignal) }
        handlers.forEach { $0(n) }
    }

    /// Called on every signal with the number of signals so far.
    public func whenSignalled(_ handler: @escaping @Sendable (Int) -> Void) { lock.withLock { onSignal.append(handler) } }

    /// A stop was requested: finish the current message, then exit.
    public var isRequested: Bool { lock.withLock { count > 0 } }
}
