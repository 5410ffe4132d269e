// A fresh, migrated PostgreSQL database per test on the local stack, so tests never share rows.
import Foundation
import Storage

enum TestDatabase {
    static var migrationsDirectory: String { StackEnvironment.packageRoot.appendingPathComponent("migrations").path }

    /// Creates `scen_t_<random>` next to the stack's database and returns its URL.
    static func create(migrated: Bool = true) throws -> String {
        let base = try StackEnvironment.requirePostgres()
        let name = "scen_t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        // CREATE DATABASE takes no parameters; the name is generated here (hex), never input.
        try PostgresConnection(url: base).query("CREATE DATABASE \(name)")
        let url = replacingDatabase(in: base, with: name)
        if migrated {
            try MigrationRunner.migrate(try PostgresConnection(url: url), migrations: try MigrationRunner.load(directory: migrationsDirectory))
        }
        return url
    }

    /// `url` with its user replaced by `user` (a service role of migration 0004).
    static func url(_ url: String, user: String) -> String {
        guard let scheme = url.range(of: "://"), let at = url[scheme.upperBound...].firstIndex(of: "@") else { return url }
        return url.replacingCharacters(in: scheme.upperBound..<at, with: user)
    }

    static func replacingDatabase(in url: String, with name: String) -> String {
        var rest = Substring(url), query = ""
        if let q = rest.firstIndex(of: "?") {
            query = String(rest[q...])
            rest = rest[..<q]
        }
        guard let slash = rest.lastIndex(of: "/"), rest[rest.startIndex..<slash].hasSuffix("/") == false else { return url + "/" + name }
        return rest[...slash] + name + query
    }
}
