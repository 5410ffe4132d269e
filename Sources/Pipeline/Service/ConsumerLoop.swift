// The consume loop both services share: poll → handle → commit the offset only after the
// handler returned (its database transaction committed and its messages were acknowledged).
// A handler error is an outage (input never throws): the same message is retried with
// backoff after `recover`, and nothing is committed meanwhile. SIGTERM/SIGINT end the loop
// between messages (the current one is finished); during a retry, or on a second signal, they
// end it at once, leaving the message uncommitted.
import Foundation
import Storage
import Logging
import Metrics

/// Thrown by a handler that stops in the middle of a message because shutdown was requested:
/// the loop ends without committing it, so the message is handled again after the restart.
public struct StopRequested: Error, CustomStringConvertible {
    public var detail: String
    public init(detail: String) { self.detail = detail }
    public var description: String { "stop requested: \(detail)" }
}

public final class ConsumerLoop {
    let consumer: KafkaConsumer
    let shutdown: ShutdownSignal
    let logger: Logger
    let lag: Gauge?
    /// Exit after this many seconds without a message once partitions are assigned (nil: run
    /// until signalled).
    let exitWhenIdle: Double?

    public init(consumer: KafkaConsumer, shutdown: ShutdownSignal, logger: Logger, lag: Gauge?, exitWhenIdle: Double?) {
        self.consumer = consumer
        self.shutdown = shutdown
        self.logger = logger
        self.lag = lag
        self.exitWhenIdle = exitWhenIdle
        // A second SIGTERM/SIGINT abandons the current message at once: exiting now is a crash
        // the pipeline is built to survive (nothing half-done is committed; the message replays).
        shutdown.whenSignalled { [logger] count in
            guard count >= 2 else { return }
            logger.warning("second stop signal: abandoning the current message, offset not committed")
            exit(143)
        }
    }

    public func run(handle: (KafkaMessage) throws -> Void, recover: (any Error) -> Void) throws {
        var lastMessage = Date()
        var lastLagCheck = Date.distantPast
        var joined = false
        while !shutdown.isRequested {
            if let lag, Date().timeIntervalSince(lastLagCheck) > 5 {
                if let value = consumer.lag(timeout: 1) { lag.record(Double(value)) }
                lastLagCheck = Date()
            }
            let polled: KafkaMessage?
            do {
                polled = try consumer.poll(timeout: 0.5)
            } catch {
                // Matched through `any Error`: a typed `catch .consumeFailed` crashes Swift 6.1's SIL verifier here.
                let failure: any Error = error
                guard case KafkaError.consumeFailed(let why) = failure else { throw failure }
                // Transient (evicted after a long handler while the database was down, a broker
                // connection lost): librdkafka rejoins and reconnects by itself; keep polling.
                logger.warning("consumer error; polling again", metadata: ["error": "\(why)"])
                Thread.sleep(forTimeInterval: 1)
                continue
            }
            guard let message = polled else {
                if exitWhenIdle != nil && !joined {
                    joined = consumer.assignedPartitionCount > 0
                    lastMessage = Date()
                }
                if let idle = exitWhenIdle, joined, Date().timeIntervalSince(lastMessage) > idle {
                    logger.info("idle; exiting", metadata: ["idle_seconds": "\(idle)"])
                    break
                }
                continue
            }
            joined = true
            var delay = 0.5
            while true {
                do {
                    try handle(message)
                    break
                } catch let stop as StopRequested {
                    logger.info("stopping; message left uncommitted", metadata: ["offset": "\(message.offset)", "detail": "\(stop.detail)"])
                    return
                } catch {
                    logger.error("cannot process message; will retry", metadata: [
                        "error": "\(error)", "topic": "\(message.topic)", "partition": "\(message.partition)", "offset": "\(message.offset)"])
                    if shutdown.isRequested {
                        logger.info("stopping; message left uncommitted", metadata: ["offset": "\(message.offset)"])
                        return
                    }
                    recover(error)
                    Thread.sleep(forTimeInterval: delay)
                    delay = min(delay * 2, 10)
                }
            }
            do {
                try consumer.commit(message)
            } catch {
                // Safe: the message will be delivered again and handled idempotently.
                logger.warning("offset commit failed", metadata: ["error": "\(error)", "offset": "\(message.offset)"])
            }
            lastMessage = Date()
        }
        if shutdown.isRequested { logger.info("shutdown requested; stopped between messages") }
    }
}
