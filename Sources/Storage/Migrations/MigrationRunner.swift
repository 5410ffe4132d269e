// Applies the numbered SQL files of migrations/ (0001_name.sql, …) in order, each in its own
// transaction, recorded in schema_migrations with a SHA-256 of the file. Runs under a
// session advisory lock so that services starting together apply each file once. An applied
// file whose contents changed is reported, never re-run.
import Foundation

public struct Migration: Sendable, Equatable {
    public let version: Int
    public let name: String
    public let sql: String
    public var checksum: String { Checksum.sha256Hex(Array(sql.utf8)) }

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }
}

public enum MigrationError: Error, Sendable, CustomStringConvertible {
    case directoryUnreadable(String)
    case badFileName(String)
    case duplicateVersion(Int)
    case checksumMismatch(version: Int, name: String, applied: String, file: String)
    case unknownAppliedVersion(Int)
    case failed(version: Int, name: String, error: PostgresError)

    public var description: String {
        switch self {
        case .directoryUnreadable(let d): "cannot read migrations directory \(d)"
        case .badFileName(let f): "migration file \(f) is not named NNNN_name.sql"
        case .duplicateVersion(let v): "two migration files have version \(v)"
        case .checksumMismatch(let v, let n, let a, let f):
            "migration \(v) (\(n)) was changed after it was applied (applied sha256 \(a.prefix(12))…, file \(f.prefix(12))…)"
        case .unknownAppliedVersion(let v): "the database has migration \(v) applied, which is not in the migrations directory (newer code?)"
        case .failed(let v, let n, let e): "migration \(v) (\(n)) failed: \(e)"
        }
    }
}

public struct MigrationReport: Sendable, Equatable {
    public var applied: [Int] = []
    public var alreadyApplied: [Int] = []
}

public enum MigrationRunner {
    /// Arbitrary constant for pg_advisory_lock ("SCEN" in ASCII).
    static let lockKey: Int64 = 0x5343_454E

    /// The migrations in `directory`, sorted by version.
    public static func load(directory: String) throws(MigrationError) -> [Migration] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
            throw .directoryUnreadable(directory)
        }
        var out: [Migration] = []
        for file in names.sorted() where file.hasSuffix(".sql") {
            let stem = file.dropLast(4)
            let parts = stem.split(separator: "_", maxSplits: 1)
            guard parts.count == 2, parts[0].count == 4, let version = Int(parts[0]), version > 0 else { throw .badFileName(file) }
            guard let sql = try? String(contentsOfFile: directory + "/" + file, encoding: .utf8) else {
                throw .directoryUnreadable(directory + "/" + file)
            }
            guard !out.contains(where: { $0.version == version }) else { throw .duplicateVersion(version) }
            out.append(Migration(version: version, name: String(parts[1]), sql: sql))
        }
        return out.sorted { $0.version < $1.version }
    }

    /// Finds migrations/: `explicit`, else $SCEN_MIGRATIONS, else ./migrations, else next to
    /// the executable's package (../../migrations from .build/<config>/).
    public static func locate(_ explicit: String? = nil) -> String {
        if let explicit { return explicit }
        if let env = ProcessInfo.processInfo.environment["SCEN_MIGRATIONS"], !env.isEmpty { return env }
        if FileManager.default.fileExists(atPath: "migrations") { return "migrations" }
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = url.appendingPathComponent("migrations").path
            if FileManager.default.fileExists(atPath: candidate) { return candidate }
            url.deleteLastPathComponent()
        }
        return "migrations"
    }

    /// Applies what is not applied yet; verifies the checksums of what is.
    @discardableResult
    public static func migrate(_ db: PostgresConnection, migrations: [Migration],
                               log: (String) -> Void = { _ in }) throws -> MigrationReport {
        try db.query("SELECT pg_advisory_lock($1)", [.int(lockKey)])
        defer { _ = try? db.query("SELECT pg_advisory_unlock($1)", [.int(lockKey)]) }
        try db.query("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())
            """)
        var applied: [Int: (name: String, checksum: String)] = [:]
        for row in try db.query("SELECT version, name, checksum FROM schema_migrations") {
            applied[Int(try row.int("version"))] = (try row.string("name"), try row.string("checksum"))
        }
        var report = MigrationReport()
        for version in applied.keys.sorted() where !migrations.contains(where: { $0.version == version }) {
            throw MigrationError.unknownAppliedVersion(version)
        }
        for m in migrations {
            if let done = applied[m.version] {
                guard done.checksum == m.checksum else {
                    throw MigrationError.checksumMismatch(version: m.version, name: m.name, applied: done.checksum, file: m.checksum)
                }
                report.alreadyApplied.append(m.version)
                continue
            }
            do {
                try db.transaction { tx in
                    try tx.runScript(m.sql)
                    try tx.query("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                                 [.int(Int64(m.version)), .text(m.name), .text(m.checksum)])
                }
            } catch let error as PostgresError {
                throw MigrationError.failed(version: m.version, name: m.name, error: error)
            }
            log("applied migration \(m.version) (\(m.name))")
            report.applied.append(m.version)
        }
        return report
    }
}
