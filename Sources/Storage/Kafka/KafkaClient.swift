// The one owner of librdkafka: an idempotent producer that waits for delivery reports, and a
// group consumer with manual offset commits. Every unsafe librdkafka call lives in this file.
import CRdKafka
import Foundation

public enum KafkaError: Error, Sendable, CustomStringConvertible {
    case configuration(key: String, message: String)
    case createFailed(String)
    case produceFailed(topic: String, message: String)
    case deliveryFailed(topic: String, message: String)
    case deliveryTimedOut(topic: String, pending: Int)
    /// The message is over the client's or the broker's size limit: retrying cannot help.
    case messageTooLarge(topic: String, bytes: Int)
    case subscribeFailed(String)
    /// A consumer error the client recovers from by itself (evicted from the group after a
    /// long handler, broker connection lost, …): poll again.
    case consumeFailed(String)
    /// librdkafka's fatal error state: the client is unusable.
    case consumeFatal(String)
    case commitFailed(String)
    case adminFailed(String)

    public var description: String {
        switch self {
        case .configuration(let k, let m): "Kafka setting \(k): \(m)"
        case .createFailed(let m): "cannot create Kafka client: \(m)"
        case .produceFailed(let t, let m): "cannot produce to \(t): \(m)"
        case .deliveryFailed(let t, let m): "delivery to \(t) failed: \(m)"
        case .messageTooLarge(let t, let b): "a \(b)-byte message is over the size limit of \(t)"
        case .deliveryTimedOut(let t, let n): "\(n) message(s) to \(t) not acknowledged in time"
        case .subscribeFailed(let m): "cannot subscribe: \(m)"
        case .consumeFailed(let m): "consume failed: \(m)"
        case .consumeFatal(let m): "consumer in a fatal state: \(m)"
        case .commitFailed(let m): "offset commit failed: \(m)"
        case .adminFailed(let m): "Kafka admin request failed: \(m)"
        }
    }
}

/// A message read from a topic.
public struct KafkaMessage: Sendable {
    public let topic: String
    public let partition: Int32
    public let offset: Int64
    public let key: [UInt8]?
    public let value: [UInt8]
    public let headers: [String: [UInt8]]

    public init(topic: String, partition: Int32, offset: Int64, key: [UInt8]?, value: [UInt8], headers: [String: [UInt8]] = [:]) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers
    }
}

/// A message to send. Header values are raw bytes (UTF-8 for text).
public struct KafkaOutgoing: Sendable {
    public var topic: String
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [(String, [UInt8])]

    public init(topic: String, key: [UInt8]? = nil, value: [UInt8], headers: [(String, [UInt8])] = []) {
        self.topic = topic
        self.key = key
        self.value = value
        self.headers = headers
    }
}

/// The librdkafka version linked at run time, e.g. "2.8.0".
public var kafkaLibraryVersion: String { String(cString: rd_kafka_version_str()) }

private func makeConfiguration(_ settings: [String: String]) throws(KafkaError) -> OpaquePointer {
    guard let conf = rd_kafka_conf_new() else { throw .createFailed("rd_kafka_conf_new") }
    var errbuf = [CChar](repeating: 0, count: 512)
    for (key, value) in settings.sorted(by: { $0.key < $1.key }) {
        if rd_kafka_conf_set(conf, key, value, &errbuf, errbuf.count) != RD_KAFKA_CONF_OK {
            rd_kafka_conf_destroy(conf)
            throw .configuration(key: key, message: cString(errbuf))
        }
    }
    return conf
}

/// Text of a NUL-terminated error buffer.
private func cString(_ buffer: [CChar]) -> String {
    buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

private func errorString(_ err: rd_kafka_resp_err_t) -> String { String(cString: rd_kafka_err2str(err)) }

/// Holds the outcome of one message's delivery report.
private final class DeliveryReport {
    var done = false
    var error: rd_kafka_resp_err_t = RD_KAFKA_RESP_ERR_NO_ERROR
}

/// An idempotent producer: `send` returns once the broker acknowledged every message (acks=all).
public final class KafkaProducer {
    private let rk: OpaquePointer

    public init(brokers: String, settings: [String: String] = [:]) throws(KafkaError) {
        var all = ["bootstrap.servers": brokers, "enable.idempotence": "true", "linger.ms": "5"]
        all.merge(settings) { _, new in new }
        let conf = try makeConfiguration(all)
        rd_kafka_conf_set_dr_msg_cb(conf) { _, message, _ in
            guard let message, let opaque = message.pointee._private else { return }
            let report = Unmanaged<DeliveryReport>.fromOpaque(opaque).takeUnretainedValue()
            report.error = message.pointee.err
            report.done = true
        }
        var errbuf = [CChar](repeating: 0, count: 512)
        guard let rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errbuf, errbuf.count) else {
            rd_kafka_conf_destroy(conf)
            throw .createFailed(cString(errbuf))
        }
        self.rk = rk
    }

    deinit {
        rd_kafka_flush(rk, 5000)
        rd_kafka_destroy(rk)
    }

    /// Sends one message and waits for its acknowledgement.
    public func send(_ message: KafkaOutgoing, timeout: Double = 30) throws(KafkaError) {
        try send([message], timeout: timeout)
    }

    /// Sends messages (in order per partition) and waits until all are acknowledged.
    public func send(_ messages: [KafkaOutgoing], timeout: Double = 30) throws(KafkaError) {
        var reports: [(DeliveryReport, String)] = []
        for message in messages {
            let report = DeliveryReport()
            let opaque = Unmanaged.passRetained(report)
            let err = produce(message, opaque: opaque.toOpaque())
            if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                opaque.release()
                // Release the reports already in flight only after they are delivered.
                drain(reports, deadline: Date().addingTimeInterval(timeout))
                if err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE { throw .messageTooLarge(topic: message.topic, bytes: message.value.count) }
                throw .produceFailed(topic: message.topic, message: errorString(err))
            }
            reports.append((report, message.topic))
        }
        let pending = drain(reports, deadline: Date().addingTimeInterval(timeout))
        if let i = reports.firstIndex(where: { $0.0.done && $0.0.error != RD_KAFKA_RESP_ERR_NO_ERROR }) {
            let failed = reports[i]
            if failed.0.error == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE {
                throw .messageTooLarge(topic: failed.1, bytes: messages[i].value.count)
            }
            throw .deliveryFailed(topic: failed.1, message: errorString(failed.0.error))
        }
        if pending > 0 { throw .deliveryTimedOut(topic: reports.first?.1 ?? "", pending: pending) }
    }

    /// Polls for delivery reports until all are done or the deadline passes; releases the done
    /// ones. Returns how many are still pending (those stay retained: librdkafka owns them).
    @discardableResult
    private func drain(_ reports: [(DeliveryReport, String)], deadline: Date) -> Int {
        while reports.contains(where: { !$0.0.done }) && Date() < deadline {
            rd_kafka_poll(rk, 50)
        }
        var pending = 0
        for (report, _) in reports {
            if report.done { Unmanaged.passUnretained(report).release() } else { pending += 1 }
        }
        return pending
    }

    private func produce(_ message: KafkaOutgoing, opaque: UnsafeMutableRawPointer) -> rd_kafka_resp_err_t {
        // Copy everything into memory that outlives the call (librdkafka copies with MSG_F_COPY).
        var cstrings: [UnsafeMutablePointer<CChar>] = []
        defer { cstrings.forEach { free($0) } }
        func cstr(_ s: String) -> UnsafeMutablePointer<CChar> {
            let p = strdup(s)!
            cstrings.append(p)
            return p
        }
        var buffers: [UnsafeMutableRawPointer] = []
        defer { buffers.forEach { $0.deallocate() } }
        func mem(_ bytes: [UInt8]) -> UnsafeMutableRawPointer {
            let p = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 1)
            bytes.withUnsafeBytes { if let b = $0.baseAddress { p.copyMemory(from: b, byteCount: bytes.count) } }
            buffers.append(p)
            return p
        }

        var vus: [rd_kafka_vu_t] = []
        var vu = rd_kafka_vu_t()
        vu.vtype = RD_KAFKA_VTYPE_TOPIC; vu.u.cstr = UnsafePointer(cstr(message.topic)); vus.append(vu)
        vu = rd_kafka_vu_t()
        vu.vtype = RD_KAFKA_VTYPE_VALUE; vu.u.mem.ptr = mem(message.value); vu.u.mem.size = message.value.count; vus.append(vu)
        if let key = message.key {
            vu = rd_kafka_vu_t()
            vu.vtype = RD_KAFKA_VTYPE_KEY; vu.u.mem.ptr = mem(key); vu.u.mem.size = key.count; vus.append(vu)
        }
        for (name, value) in message.headers {
            vu = rd_kafka_vu_t()
            vu.vtype = RD_KAFKA_VTYPE_HEADER
            vu.u.header.name = UnsafePointer(cstr(name))
            vu.u.header.val = UnsafeRawPointer(mem(value))
            vu.u.header.size = value.count
            vus.append(vu)
        }
        vu = rd_kafka_vu_t()
        vu.vtype = RD_KAFKA_VTYPE_MSGFLAGS; vu.u.i = RD_KAFKA_MSG_F_COPY; vus.append(vu)
        vu = rd_kafka_vu_t()
        vu.vtype = RD_KAFKA_VTYPE_OPAQUE; vu.u.ptr = opaque; vus.append(vu)

        guard let error = rd_kafka_produceva(rk, &vus, vus.count) else { return RD_KAFKA_RESP_ERR_NO_ERROR }
        let code = rd_kafka_error_code(error)
        rd_kafka_error_destroy(error)
        return code
    }
}

/// A consumer in a consumer group. Offsets are never committed automatically: call `commit`
/// after the work a message caused is durable.
public final class KafkaConsumer {
    private let rk: OpaquePointer

    public init(brokers: String, group: String, topics: [String], settings: [String: String] = [:]) throws(KafkaError) {
        var all = [
            "bootstrap.servers": brokers,
            "group.id": group,
            "enable.auto.commit": "false",
            "enable.auto.offset.store": "false",
            "auto.offset.reset": "earliest",
            "enable.partition.eof": "false",
        ]
        all.merge(settings) { _, new in new }
        let conf = try makeConfiguration(all)
        var errbuf = [CChar](repeating: 0, count: 512)
        guard let rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, &errbuf, errbuf.count) else {
            rd_kafka_conf_destroy(conf)
            throw .createFailed(cString(errbuf))
        }
        self.rk = rk
        rd_kafka_poll_set_consumer(rk)
        let list = rd_kafka_topic_partition_list_new(Int32(topics.count))
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for topic in topics { rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA) }
        let err = rd_kafka_subscribe(rk, list)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            rd_kafka_destroy(rk)
            throw .subscribeFailed(errorString(err))
        }
    }

    deinit {
        if assignedPartitionCount > 0 {
            rd_kafka_consumer_close(rk)
            rd_kafka_destroy(rk)
        } else {
            // Not (yet) a settled member: leave no LeaveGroup behind. tansu 0.6 wedges a group
            // for good when a member leaves in the middle of a join; a silent member simply
            // expires after session.timeout.ms, as after a crash.
            rd_kafka_destroy_flags(rk, Int32(RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE))
        }
    }

    /// Waits up to `timeout` seconds for the next message. Transient broker errors are not
    /// thrown (librdkafka retries them); fatal ones are.
    public func poll(timeout: Double) throws(KafkaError) -> KafkaMessage? {
        guard let m = rd_kafka_consumer_poll(rk, Int32(timeout * 1000)) else { return nil }
        defer { rd_kafka_message_destroy(m) }
        let msg = m.pointee
        if msg.err != RD_KAFKA_RESP_ERR_NO_ERROR {
            if msg.err == RD_KAFKA_RESP_ERR__PARTITION_EOF { return nil }
            var errbuf = [CChar](repeating: 0, count: 512)
            if rd_kafka_fatal_error(rk, &errbuf, errbuf.count) != RD_KAFKA_RESP_ERR_NO_ERROR {
                throw .consumeFatal(cString(errbuf))
            }
            if msg.err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC || msg.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART {
                return nil  // not created yet; keep waiting
            }
            throw .consumeFailed(errorString(msg.err))
        }
        let topic = String(cString: rd_kafka_topic_name(msg.rkt))
        let value = msg.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: msg.len)) } ?? []
        let key = msg.key.map { Array(UnsafeRawBufferPointer(start: $0, count: msg.key_len)) }
        var headers: [String: [UInt8]] = [:]
        var hdrs: OpaquePointer? = nil
        if rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs {
            var i = 0
            var name: UnsafePointer<CChar>? = nil
            var val: UnsafeRawPointer? = nil
            var size = 0
            while rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                if let name {
                    headers[String(cString: name)] = val.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
                }
                i += 1
            }
        }
        return KafkaMessage(topic: topic, partition: msg.partition, offset: msg.offset,
                            key: key, value: value, headers: headers)
    }

    /// How many partitions the group currently assigns to this consumer (0 until it joined).
    public var assignedPartitionCount: Int {
        var assigned: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>? = nil
        guard rd_kafka_assignment(rk, &assigned) == RD_KAFKA_RESP_ERR_NO_ERROR, let list = assigned else { return 0 }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        return Int(list.pointee.cnt)
    }

    /// Messages not yet consumed by the group: Σ over the assigned partitions of
    /// (high watermark − committed offset). Asks the broker (up to `timeout` per request);
    /// nil while nothing is assigned or the broker does not answer.
    public func lag(timeout: Double = 1) -> Int64? {
        var assigned: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>? = nil
        guard rd_kafka_assignment(rk, &assigned) == RD_KAFKA_RESP_ERR_NO_ERROR, let list = assigned else { return nil }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        guard list.pointee.cnt > 0 else { return nil }
        let ms = Int32(timeout * 1000)
        guard rd_kafka_committed(rk, list, ms) == RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        var total: Int64 = 0
        for i in 0..<Int(list.pointee.cnt) {
            let tp = list.pointee.elems[i]
            var low: Int64 = 0, high: Int64 = 0
            guard rd_kafka_query_watermark_offsets(rk, tp.topic, tp.partition, &low, &high, ms) == RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
            let committed = tp.offset >= 0 ? tp.offset : low
            total += max(0, high - committed)
        }
        return total
    }

    /// Commits `message`'s offset + 1 for its partition, synchronously.
    public func commit(_ message: KafkaMessage) throws(KafkaError) {
        let list = rd_kafka_topic_partition_list_new(1)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let tp = rd_kafka_topic_partition_list_add(list, message.topic, message.partition)
        tp?.pointee.offset = message.offset + 1
        let err = rd_kafka_commit(rk, list, 0)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw .commitFailed(errorString(err)) }
    }
}

/// Topic administration through the Kafka admin API.
public final class KafkaAdmin {
    private let rk: OpaquePointer

    public init(brokers: String, settings: [String: String] = [:]) throws(KafkaError) {
        var all = ["bootstrap.servers": brokers]
        all.merge(settings) { _, new in new }
        let conf = try makeConfiguration(all)
        var errbuf = [CChar](repeating: 0, count: 512)
        guard let rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errbuf, errbuf.count) else {
            rd_kafka_conf_destroy(conf)
            throw .createFailed(cString(errbuf))
        }
        self.rk = rk
    }

    deinit { rd_kafka_destroy(rk) }

    /// Creates the topics that do not exist yet with `partitions` partitions each. Returns the
    /// names it created (existing topics are left as they are).
    @discardableResult
    public func createTopics(_ names: [String], partitions: Int32 = 1, replicationFactor: Int32 = 1,
                             timeout: Double = 15) throws(KafkaError) -> [String] {
        guard !names.isEmpty else { return [] }
        var errbuf = [CChar](repeating: 0, count: 512)
        var newTopics: [OpaquePointer?] = []
        defer { if !newTopics.isEmpty { rd_kafka_NewTopic_destroy_array(&newTopics, newTopics.count) } }
        for name in names {
            guard let topic = rd_kafka_NewTopic_new(name, partitions, replicationFactor, &errbuf, errbuf.count) else {
                throw .adminFailed("topic \(name): \(cString(errbuf))")
            }
            newTopics.append(topic)
        }
        let queue = rd_kafka_queue_new(rk)
        defer { rd_kafka_queue_destroy(queue) }
        let options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS)
        _ = rd_kafka_AdminOptions_set_request_timeout(options, Int32(timeout * 1000), &errbuf, errbuf.count)
        rd_kafka_CreateTopics(rk, &newTopics, newTopics.count, options, queue)
        rd_kafka_AdminOptions_destroy(options)

        guard let event = rd_kafka_queue_poll(queue, Int32(timeout * 1000) + 1000) else {
            throw .adminFailed("CreateTopics timed out after \(timeout) s")
        }
        defer { rd_kafka_event_destroy(event) }
        let err = rd_kafka_event_error(event)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw .adminFailed(rd_kafka_event_error_string(event).map { String(cString: $0) } ?? errorString(err))
        }
        guard let result = rd_kafka_event_CreateTopics_result(event) else { throw .adminFailed("no CreateTopics result") }
        var count = 0
        guard let topics = rd_kafka_CreateTopics_result_topics(result, &count) else { return [] }
        var created: [String] = []
        for i in 0..<count {
            guard let t = topics[i] else { continue }
            let name = String(cString: rd_kafka_topic_result_name(t))
            switch rd_kafka_topic_result_error(t) {
            case RD_KAFKA_RESP_ERR_NO_ERROR: created.append(name)
            case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS: break
            case let e: throw .adminFailed("topic \(name): \(rd_kafka_topic_result_error_string(t).map { String(cString: $0) } ?? errorString(e))")
            }
        }
        return created
    }
}
