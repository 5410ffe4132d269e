import Foundation
import Storage
import Testing

/// Fast group joins on the local broker (the 45 s default session timeout makes a join ~23 s).
let testConsumerSettings = ["session.timeout.ms": "6000", "heartbeat.interval.ms": "1000"]

@Suite("librdkafka")
struct KafkaLibraryTests {
    @Test func linkedLibrdkafkaIsAtLeast2_2() {
        let version = kafkaLibraryVersion
        print("librdkafka at run time: \(version)")
        let parts = version.split(separator: ".").compactMap { Int($0.prefix(while: \.isNumber)) }
        #expect(parts.count >= 2)
        #expect(parts.lexicographicallyPrecedes([2, 2]) == false, "librdkafka \(version) is older than 2.2")
    }
}

@Suite("Kafka through librdkafka (local stack)", .enabled(if: StackEnvironment.enabled))
struct KafkaClientTests {
    @Test func produceConsumeRoundTrip() throws {
        let brokers = try StackEnvironment.requireKafka()
        let topic = "scen.test.\(UUID().uuidString.prefix(8))"
        let producer = try KafkaProducer(brokers: brokers)
        let sent = (0..<5).map { i in
            KafkaOutgoing(topic: topic, key: Array("k\(i)".utf8), value: Array("payload \(i) ✓".utf8),
                          headers: [("reason", Array("test \(i)".utf8))])
        }
        try producer.send(sent)

        let group = "scen-test-\(UUID().uuidString.prefix(8))"
        let consumer = try KafkaConsumer(brokers: brokers, group: group, topics: [topic], settings: testConsumerSettings)
        var received: [KafkaMessage] = []
        let deadline = Date().addingTimeInterval(60)
        while received.count < sent.count && Date() < deadline {
            if let m = try consumer.poll(timeout: 0.5) { received.append(m) }
        }
        // Auto-created topics have several partitions: compare as sets, order within a partition.
        func text(_ b: [UInt8]?) -> String? { b.map { String(decoding: $0, as: UTF8.self) } }
        let byKey = Dictionary(uniqueKeysWithValues: received.map { (text($0.key) ?? "", $0) })
        #expect(byKey.count == 5)
        for i in 0..<5 {
            let m = byKey["k\(i)"]
            #expect(text(m?.value) == "payload \(i) ✓")
            #expect(text(m?.headers["reason"]) == "test \(i)")
        }
        for partition in Set(received.map(\.partition)) {
            let offsets = received.filter { $0.partition == partition }.map(\.offset)
            #expect(offsets == Array(0..<Int64(offsets.count)))
        }
    }

    @Test func committedOffsetsAreNotRedelivered() throws {
        let brokers = try StackEnvironment.requireKafka()
        let topic = "scen.test.\(UUID().uuidString.prefix(8))"
        let group = "scen-test-\(UUID().uuidString.prefix(8))"
        let producer = try KafkaProducer(brokers: brokers)
        // One key: all four land on one partition, in order.
        try producer.send((0..<4).map { KafkaOutgoing(topic: topic, key: Array("same".utf8), value: [UInt8($0)]) })

        // First consumer reads two messages and commits only the first.
        do {
            let consumer = try KafkaConsumer(brokers: brokers, group: group, topics: [topic], settings: testConsumerSettings)
            var got: [KafkaMessage] = []
            let deadline = Date().addingTimeInterval(60)
            while got.count < 2 && Date() < deadline {
                if let m = try consumer.poll(timeout: 0.5) { got.append(m) }
            }
            try #require(got.count == 2)
            try consumer.commit(got[0])
        }
        // A new member of the group resumes after the committed offset: message 1 comes again.
        let consumer = try KafkaConsumer(brokers: brokers, group: group, topics: [topic], settings: testConsumerSettings)
        var next: KafkaMessage? = nil
        let deadline = Date().addingTimeInterval(60)
        while next == nil && Date() < deadline { next = try consumer.poll(timeout: 0.5) }
        #expect(next?.offset == 1)
        #expect(next?.value == [1])
    }
}
