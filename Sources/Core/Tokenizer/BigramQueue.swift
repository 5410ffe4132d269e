// Max-priority queue of candidate merges for the SentencePiece merger, ordered as llama.cpp's
// `llm_bigram_spm::comparator`: higher token score first, and on equal scores the leftmost pair first.

/// A candidate merge of two adjacent symbols into the token `left.text + right.text`.
struct Bigram {
    var left: Int
    var right: Int
    var score: Float
    /// Byte length of the merged text, used to detect stale entries.
    var size: Int

    /// Whether `self` must be merged before `other`.
    @inline(__always)
    func precedes(_ other: Bigram) -> Bool {
        score > other.score || (score == other.score && left < other.left)
    }
}

/// A binary heap of bigrams; `pop` returns the one that precedes all others.
struct BigramQueue {
    private var heap: [Bigram] = []

    init(capacity: Int) { heap.reserveCapacity(capacity) }

    var isEmpty: Bool { heap.isEmpty }

    mutating func push(_ bigram: Bigram) {
        heap.append(bigram)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) >> 1
            guard heap[child].precedes(heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Bigram? {
        guard let last = heap.popLast() else { return nil }
        guard !heap.isEmpty else { return last }
        let top = heap[0]
        heap[0] = last
        var parent = 0
        let count = heap.count
        while true {
            let left = 2 * parent + 1
            if left >= count { break }
            var best = left
            let right = left + 1
            if right < count, heap[right].precedes(heap[left]) { best = right }
            guard heap[best].precedes(heap[parent]) else { break }
            heap.swapAt(best, parent)
            parent = best
        }
        return top
    }
}
