// One PostgreSQL connection used from a serial queue: libpq connections are not thread-safe,
// and their calls block, so they stay off the event loops. Reconnects after a lost connection.
import Foundation
import Storage

public final class Database: @unchecked Sendable {
    private let url: String
    private let queue = DispatchQueue(label: "scen.router.database")
    private var store: PostgresEditStore?

    public init(url: String) { self.url = url }

    /// Runs `body` with the catalog on the database queue.
    func run<T: Sendable>(_ body: @escaping @Sendable (any EditCatalog) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result {
                    do {
                        return try body(try self.connected())
                    } catch let error as PostgresError {
                        if case .connectionLost = error { self.store = nil }
                        throw error
                    }
                })
            }
        }
    }

    private func connected() throws -> PostgresEditStore {
        if let store { return store }
        let s = PostgresEditStore(try PostgresConnection(url: url))
        store = s
        return s
    }
}
