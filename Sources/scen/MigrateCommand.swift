import ArgumentParser
import Foundation
import Storage

struct MigrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate", abstract: "Apply the SQL migrations in migrations/ (each once, in order, under a lock).")

    @OptionGroup var stack: StackOptions

    @Option(help: "The migrations directory (default: $SCEN_MIGRATIONS, ./migrations, or the package's).")
    var migrations: String?

    func run() throws {
        let directory = MigrationRunner.locate(migrations)
        let files = try MigrationRunner.load(directory: directory)
        let db = try PostgresConnection(url: stack.resolvedPostgresURL)
        let report = try MigrationRunner.migrate(db, migrations: files) { print($0) }
        print(report.applied.isEmpty
              ? "up to date: \(report.alreadyApplied.count) migration(s) already applied"
              : "applied \(report.applied.count) migration(s); \(report.alreadyApplied.count) were already applied")
    }
}
