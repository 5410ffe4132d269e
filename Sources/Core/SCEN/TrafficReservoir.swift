// The router's traffic reservoir: a uniform sample (Vitter's algorithm R) of the routing keys of
// the prompts it serves, bounded to `capacity` keys. Keys only, never the text. The router stores
// changed slots in Postgres (`traffic_keys`); the trainer reads them back as `TrafficKeys`, trains
// new neurons against them and measures each new edit's blast radius on them.

import Foundation

public final class TrafficReservoir: @unchecked Sendable {
    public struct Slot: Sendable, Equatable {
        public var slot: Int
        public var key: [Float]
        /// Requests seen when the slot was written (with `slot`, the key's version).
        public var seen: Int64

        public init(slot: Int, key: [Float], seen: Int64) {
            self.slot = slot; self.key = key; self.seen = seen
        }
    }

    public let capacity: Int
    private let lock = NSLock()
    private var keys: [[Float]] = []
    private var written: [Int64] = []
    private var dirty = Set<Int>()
    private var rng: SplitMix64
    /// Requests offered so far.
    public private(set) var seen: Int64 = 0

    public init(capacity: Int, seed: UInt64 = UInt64(UInt32.random(in: 0 ... .max))) {
        precondition(capacity > 0, "a reservoir needs capacity > 0")
        self.capacity = capacity
        rng = SplitMix64(seed: seed)
    }

    /// Offers one served prompt's key: kept with probability capacity / requests seen.
    public func offer(_ key: [Float]) {
        lock.lock(); defer { lock.unlock() }
        seen += 1
        if keys.count < capacity {
            keys.append(key); written.append(seen); dirty.insert(keys.count - 1)
            return
        }
        let j = Int(rng.next() % UInt64(seen))
        if j < capacity { keys[j] = key; written[j] = seen; dirty.insert(j) }
    }

    /// The slots written since the last call (what to store).
    public func takeChanged() -> [Slot] {
        lock.lock(); defer { lock.unlock() }
        let out = dirty.sorted().map { Slot(slot: $0, key: keys[$0], seen: written[$0]) }
        dirty.removeAll()
        return out
    }

    /// Puts slots back as changed (their store failed; the next flush retries them).
    public func markChanged(_ slots: [Slot]) {
        lock.lock(); defer { lock.unlock() }
        for s in slots where s.slot < keys.count { dirty.insert(s.slot) }
    }

    public var count: Int { lock.lock(); defer { lock.unlock() }; return keys.count }
}

extension TrafficKeys {
    /// Keys read back from a reservoir's stored slots; each id names one version of one slot.
    public init(slots: [TrafficReservoir.Slot]) {
        self.init(keys: slots.map(\.key), ids: slots.map { Int64($0.slot) << 40 ^ $0.seen })
    }
}
