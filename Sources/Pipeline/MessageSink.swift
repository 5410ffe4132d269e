// Where the pipeline steps send Kafka messages: the idempotent producer, or a recording twin
// in tests. `send` returns only once every message is acknowledged.

import Storage

public protocol MessageSink: AnyObject {
    func send(_ messages: [KafkaOutgoing]) throws
}

extension KafkaProducer: MessageSink {
    public func send(_ messages: [KafkaOutgoing]) throws {
        try send(messages, timeout: 30)
    }
}

/// Records what was sent (for hermetic tests); `failNext` makes the next sends throw.
public final class RecordingMessageSink: MessageSink {
    public private(set) var sent: [KafkaOutgoing] = []
    public var failNext = 0
    /// Messages with a value over this many bytes are refused as `KafkaError.messageTooLarge`
    /// (librdkafka's `message.max.bytes`).
    public var maxMessageBytes = Int.max

    public struct Failure: Error {}

    public init() {}

    public func send(_ messages: [KafkaOutgoing]) throws {
        if failNext > 0 {
            failNext -= 1
            throw Failure()
        }
        if let big = messages.first(where: { $0.value.count > maxMessageBytes }) {
            throw KafkaError.messageTooLarge(topic: big.topic, bytes: big.value.count)
        }
        sent += messages
    }
}
