// Runs a built service binary (.build/release/scen-ingest, scen-trainer) as a child process
// for the pipeline tests, with its stderr in a log file; can kill it with SIGKILL.
import Foundation
import Testing

final class ServiceProcess {
    let name: String
    let log: URL
    private let process = Process()

    static func binary(_ name: String) throws -> URL {
        let url = StackEnvironment.packageRoot.appendingPathComponent(".build/release/\(name)")
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            throw StackEnvironment.Missing(what: "\(url.path) (run `swift build -c release` first)")
        }
        return url
    }

    init(_ name: String, arguments: [String], environment: [String: String], logDirectory: URL, tag: String) throws {
        self.name = name
        log = logDirectory.appendingPathComponent("\(tag).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.executableURL = try Self.binary(name)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.currentDirectoryURL = StackEnvironment.packageRoot
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }

    var isRunning: Bool { process.isRunning }
    var exitCode: Int32 { process.terminationStatus }

    func logText() -> String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    /// Waits until the log contains `text` (true) or the deadline or exit comes first (false).
    func waitForLog(_ text: String, timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if logText().contains(text) { return true }
            if !process.isRunning { return logText().contains(text) }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return false
    }

    func kill9() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func terminate() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
    }

    /// Waits for the process to exit by itself (e.g. --exit-when-idle); kills it after `timeout`.
    @discardableResult
    func waitForExit(timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        if process.isRunning {
            kill9()
            return false
        }
        return true
    }

    deinit { kill9() }
}
