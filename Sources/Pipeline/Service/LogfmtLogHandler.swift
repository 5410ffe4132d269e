// swift-log handler writing one logfmt line per record to stderr:
//   ts=2025-01-31T12:00:00.123Z level=info service=scen-ingest msg="edit queued" edit_id=7 event_id=abc
import Foundation
import Storage
import Logging

public struct LogfmtLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let label: String

    public init(label: String, level: Logger.Level = .info) {
        self.label = label
        self.logLevel = level
    }

    /// Bootstraps swift-log with this handler (level from $SCEN_LOG_LEVEL, default info).
    public static func bootstrap() {
        let level = ProcessInfo.processInfo.environment["SCEN_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        LoggingSystem.bootstrap { LogfmtLogHandler(label: $0, level: level) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let extra = event.metadata { fields.merge(extra) { _, new in new } }
        if let error = event.error { fields["error"] = "\(error)" }
        var out = "ts=\(Self.timestamp()) level=\(event.level.rawValue) service=\(label) msg=\(Self.quote(event.message.description))"
        for key in fields.keys.sorted() { out += " \(key)=\(Self.quote(String(describing: fields[key]!)))" }
        out += "\n"
        FileHandle.standardError.write(Data(out.utf8))
    }

    static func quote(_ s: String) -> String {
        let plain = !s.isEmpty && s.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7f && $0 != "\"" && $0 != "=" && $0 != "\\" }
        if plain { return s }
        var out = "\""
        for c in s.unicodeScalars.prefix(2000) {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default: out.unicodeScalars.append(c.value < 0x20 ? "?" : c)
            }
        }
        return out + "\""
    }

    nonisolated(unsafe) private static let formatter: ISO8601DateFormatter = {  // guarded by `lock`
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f
    }()
    private static let lock = NSLock()

    private static func timestamp() -> String { lock.withLock { formatter.string(from: Date()) } }
}
