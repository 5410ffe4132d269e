// The router started while PostgreSQL is away (restarting, failing over, not up yet) stays up, not
// ready, and keeps trying, instead of exiting into a crash loop. Found by bench/fault_soak.py: a
// router restarted during a PostgreSQL restart exited with "cannot start".
import Core
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import TestSupport
import Testing

@Suite("Router start without PostgreSQL (built binary)", .enabled(if: StackEnvironment.enabled))
struct RouterStartupTests {
    /// GET http://127.0.0.1:port/path → status (nil: no answer).
    func status(_ port: Int, _ path: String) -> Int? {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var code: Int?
        URLSession.shared.dataTask(with: URL(string: "http://127.0.0.1:\(port)\(path)")!) { _, response, _ in
            code = (response as? HTTPURLResponse)?.statusCode
            done.signal()
        }.resume()
        _ = done.wait(timeout: .now() + 10)
        return code
    }

    @Test(.timeLimit(.minutes(5))) func waitsForPostgresInsteadOfExiting() throws {
        let logs = FileManager.default.temporaryDirectory.appendingPathComponent("scen-router-start-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        // A tiny model with the real tokenizer: the router reaches the database within seconds
        // even on a busy machine (the real model's key statistics take minutes there).
        let real = try #require(ModelTestEnvironment.modelPath, "the model file")
        let model = logs.appendingPathComponent("tiny.gguf").path
        try SyntheticGemma(tokenizerOf: GGUFFile(path: real)).writer().write(to: model)
        let hyperparameters = logs.appendingPathComponent("hp.json").path
        try Data(#"{"layer": 3}"#.utf8).write(to: URL(fileURLWithPath: hyperparameters))
        let port = 18_300 + Int.random(in: 0..<500)
        // Port 1 on loopback: nothing listens there.
        let router = try ServiceProcess("scen-router", arguments: ["--port", "\(port)", "--hyperparameters", hyperparameters], environment: [
            "SCEN_ROUTER_POSTGRES_URL": "postgresql://scen_router@127.0.0.1:1/scen?connect_timeout=2",
            "SCEN_MODEL": model,
            "SCEN_STACK_ENV": logs.appendingPathComponent("no-env").path,
        ], logDirectory: logs, tag: "router")
        defer { router.terminate() }
        #expect(router.waitForLog("cannot load the active edits; retrying", timeout: 120), "\(router.logText().suffix(600))")
        Thread.sleep(forTimeInterval: 4)  // at least one more attempt (1 s, then 2 s)
        #expect(router.isRunning, "the router exited: \(router.logText().suffix(600))")
        #expect(router.logText().components(separatedBy: "cannot load the active edits; retrying").count >= 3)
        #expect(!router.logText().contains("cannot start"))
        #expect(status(port, "/healthz") == 200)
        #expect(status(port, "/readyz") == 503)
    }
}
