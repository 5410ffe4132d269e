import ArgumentParser
import Core
import Storage

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version", abstract: "Print the versions of scen and the C libraries it links.")

    func run() {
        print("scen \(CoreVersion.string)")
        print("librdkafka \(kafkaLibraryVersion)")
        print("libpq \(postgresLibraryVersion)")
    }
}
