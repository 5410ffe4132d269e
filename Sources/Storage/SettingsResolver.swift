// Settings of the services and the CLI: flag > environment > the local stack's env file
// (`$SCEN_STACK_ENV`, else .stack/env) > default.
import Foundation

public enum SettingsResolver {
    public static func value(_ key: String, flag: String? = nil) -> String? {
        if let flag, !flag.isEmpty { return flag }
        let env = ProcessInfo.processInfo.environment
        if let v = env[key], !v.isEmpty { return v }
        let file = env["SCEN_STACK_ENV"] ?? ".stack/env"
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 && parts[0] == key { return String(parts[1]) }
        }
        return nil
    }

    /// The PostgreSQL URL; for a service (`ingest`, `trainer`, `router`) its own role's URL
    /// `SCEN_<SERVICE>_POSTGRES_URL` comes before the owner's `SCEN_POSTGRES_URL`, at each level.
    public static func postgresURL(flag: String? = nil, service: String? = nil) -> String {
        if let flag, !flag.isEmpty { return flag }
        let keys = (service.map { ["SCEN_\($0.uppercased())_POSTGRES_URL"] } ?? []) + ["SCEN_POSTGRES_URL"]
        let env = ProcessInfo.processInfo.environment
        if let key = keys.first(where: { env[$0]?.isEmpty == false }) { return env[key]! }
        return keys.lazy.compactMap { value($0) }.first ?? "postgresql://postgres@127.0.0.1:55432/scen"
    }

    public static func kafkaBrokers(flag: String? = nil) -> String {
        value("SCEN_KAFKA_BROKERS", flag: flag) ?? "127.0.0.1:59092"
    }

    public static func modelPath(flag: String? = nil) -> String {
        value("SCEN_MODEL", flag: flag) ?? "models/gemma-3-270m-q4_k_m.gguf"
    }

    /// Extra librdkafka settings from `$SCEN_KAFKA_SETTINGS` ("key=value,key=value"), e.g.
    /// `session.timeout.ms=6000,heartbeat.interval.ms=1000` for fast group joins.
    /// The environment's settings with `pairs` ("key=value", from repeatable flags) on top.
    public static func kafkaSettings(overriddenBy pairs: [String]) -> [String: String] {
        var out = kafkaSettings()
        for pair in pairs {
            let kv = pair.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { out[String(kv[0])] = String(kv[1]) }
        }
        return out
    }

    public static func kafkaSettings(flag: String? = nil) -> [String: String] {
        guard let text = value("SCEN_KAFKA_SETTINGS", flag: flag) else { return [:] }
        var out: [String: String] = [:]
        for pair in text.split(separator: ",") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { out[kv[0].trimmingCharacters(in: .whitespaces)] = kv[1].trimmingCharacters(in: .whitespaces) }
        }
        return out
    }
}
