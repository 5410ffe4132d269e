// The active edits a new edit is trained against, kept in memory between jobs: each call reads
// only the ids and versions of the active edits and fetches (and decodes) just the new or
// changed ones, instead of every expert and neuron for every job.

public final class ActiveEditCache {
    private let repository: TrainingRepository
    private var cached: [Int64: (version: Double, edit: StoredEdit)] = [:]
    /// Edits fetched from the database so far (for tests and logs).
    public private(set) var fetched = 0

    public init(repository: TrainingRepository) { self.repository = repository }

    /// Same result as `repository.activeEdits(excluding:)`.
    public func activeEdits(excluding editID: Int64) throws -> [StoredEdit] {
        let versions = try repository.activeEditVersions()
        cached = cached.filter { versions[$0.key] == $0.value.version }
        let missing = versions.keys.filter { cached[$0] == nil }
        if !missing.isEmpty {
            for edit in try repository.storedEdits(ids: missing) {
                guard let version = versions[edit.record.id], edit.record.status == .active else { continue }
                cached[edit.record.id] = (version, edit)
                fetched += 1
            }
        }
        return cached.keys.sorted().filter { $0 != editID }.compactMap { cached[$0]?.edit }
    }
}
