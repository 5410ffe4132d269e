// The one owner of libpq: a connection, parameterised statements, transactions, LISTEN/NOTIFY.
// Every statement goes through PQexecParams with its values as parameters; no SQL is ever
// assembled from values. Results come back in text format and are decoded by column.
import CLibPQ
import Foundation

public enum PostgresError: Error, Sendable, CustomStringConvertible {
    case connectionFailed(String)
    /// The server rejected a statement. `sqlState` is the five-character SQLSTATE code.
    case statementFailed(sqlState: String, message: String)
    case connectionLost(String)
    case decoding(column: String, value: String, expected: String)
    case noSuchColumn(String)

    public var description: String {
        switch self {
        case .connectionFailed(let m): "cannot connect to PostgreSQL: \(m)"
        case .statementFailed(let s, let m): "PostgreSQL error \(s): \(m)"
        case .connectionLost(let m): "PostgreSQL connection lost: \(m)"
        case .decoding(let c, let v, let e): "column \(c): cannot read \(v.prefix(40)) as \(e)"
        case .noSuchColumn(let c): "no column named \(c) in the result"
        }
    }

    /// Whether retrying needs a new connection, not the same one: the connection is gone, or the
    /// server it reaches can no longer do the work (read-only after a failover, 25006; shutting
    /// down, 57P01–57P03; connection exceptions, class 08).
    public var needsNewConnection: Bool {
        switch self {
        case .connectionFailed, .connectionLost: true
        case .statementFailed(let state, _): state == "25006" || state.hasPrefix("08") || ["57P01", "57P02", "57P03"].contains(state)
        case .decoding, .noSuchColumn: false
        }
    }

    /// True when the statement lost a race with another transaction and the same work may simply
    /// run again: a unique violation (23505: another trainer activated the same prompt first), a
    /// serialization failure (40001) or a deadlock (40P01).
    public var isConcurrentConflict: Bool {
        guard case .statementFailed(let state, _) = self else { return false }
        return ["23505", "40001", "40P01"].contains(state)
    }
}

/// A statement parameter. `nil` in a parameter list is SQL NULL.
public enum PostgresValue: Sendable, Equatable {
    case text(String)
    case int(Int64)
    case double(Double)
    case bool(Bool)
    case bytes([UInt8])

    /// The text-format value libpq sends; bytea goes as binary (format 1).
    fileprivate var wire: (bytes: [UInt8], binary: Bool) {
        switch self {
        case .text(let s): (Array(s.utf8), false)
        case .int(let i): (Array(String(i).utf8), false)
        case .double(let d): (Array(String(d).utf8), false)
        case .bool(let b): (Array((b ? "t" : "f").utf8), false)
        case .bytes(let b): (b, true)
        }
    }
}

extension PostgresValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    public init(stringLiteral value: String) { self = .text(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
}

/// One row of a result, values in text format as the server sent them.
public struct PostgresRow: Sendable {
    public let columns: [String]
    public let values: [String?]

    public subscript(_ name: String) -> String? {
        guard let i = columns.firstIndex(of: name) else { return nil }
        return values[i]
    }

    public func string(_ name: String) throws -> String {
        guard let i = columns.firstIndex(of: name) else { throw PostgresError.noSuchColumn(name) }
        guard let v = values[i] else { throw PostgresError.decoding(column: name, value: "NULL", expected: "text") }
        return v
    }

    public func int(_ name: String) throws -> Int64 {
        let s = try string(name)
        guard let v = Int64(s) else { throw PostgresError.decoding(column: name, value: s, expected: "integer") }
        return v
    }

    public func double(_ name: String) throws -> Double {
        let s = try string(name)
        guard let v = Double(s) else { throw PostgresError.decoding(column: name, value: s, expected: "double") }
        return v
    }

    public func bool(_ name: String) throws -> Bool {
        let s = try string(name)
        switch s {
        case "t": return true
        case "f": return false
        default: throw PostgresError.decoding(column: name, value: s, expected: "boolean")
        }
    }

    /// A bytea column, decoded from the server's hex text format (`\x0a0b…`).
    public func bytes(_ name: String) throws -> [UInt8] {
        let s = try string(name)
        guard s.hasPrefix("\\x"), s.utf8.count % 2 == 0 else {
            throw PostgresError.decoding(column: name, value: s, expected: "bytea (hex)")
        }
        var out = [UInt8]()
        out.reserveCapacity((s.utf8.count - 2) / 2)
        var high: UInt8? = nil
        for c in s.utf8.dropFirst(2) {
            let nibble: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = c - UInt8(ascii: "a") + 10
            default: throw PostgresError.decoding(column: name, value: s, expected: "bytea (hex)")
            }
            if let h = high { out.append(h << 4 | nibble); high = nil } else { high = nibble }
        }
        return out
    }
}

/// A notification received on a channel this connection LISTENs to.
public struct PostgresNotification: Sendable, Equatable {
    public let channel: String
    public let payload: String

    public init(channel: String, payload: String) {
        self.channel = channel
        self.payload = payload
    }
}

/// A single libpq connection. Not thread-safe: keep it inside one task or actor.
public final class PostgresConnection {
    private let conn: OpaquePointer

    /// Defaults for every connection, overridden by anything the URL sets: give up connecting
    /// after 10 s, detect a dead peer within about a minute (TCP keepalives), and end any one
    /// statement after 60 s (a network partition or a stuck lock never hangs a service).
    public static let connectionDefaults: [(String, String)] = [
        ("connect_timeout", "10"), ("keepalives", "1"), ("keepalives_idle", "30"), ("keepalives_interval", "10"),
        ("keepalives_count", "3"), ("options", "-c statement_timeout=60000"),
    ]

    public init(url: String) throws(PostgresError) {
        // PQconnectdbParams applies the keywords in order, and expands `dbname` (the URL) where it
        // stands: defaults first, then the URL, so that the URL wins.
        let pairs = Self.connectionDefaults + [("dbname", url)]
        let keywords = pairs.map { strdup($0.0) }, values = pairs.map { strdup($0.1) }
        defer { keywords.forEach { free($0) }; values.forEach { free($0) } }
        let connection: OpaquePointer? = (keywords.map { UnsafePointer($0) } + [nil]).withUnsafeBufferPointer { k in
            (values.map { UnsafePointer($0) } + [nil]).withUnsafeBufferPointer { v in
                PQconnectdbParams(k.baseAddress, v.baseAddress, 1)
            }
        }
        guard let c = connection else { throw .connectionFailed("out of memory") }
        guard PQstatus(c) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(c)).trimmingCharacters(in: .whitespacesAndNewlines)
            PQfinish(c)
            throw .connectionFailed(message)
        }
        conn = c
        // Keep server notices (e.g. "relation already exists, skipping") off stderr.
        PQsetNoticeProcessor(c, { _, _ in }, nil)
    }

    deinit { PQfinish(conn) }

    /// Runs one statement with `$1…$n` parameters and returns its rows (empty for commands).
    @discardableResult
    public func query(_ sql: String, _ parameters: [PostgresValue?] = []) throws(PostgresError) -> [PostgresRow] {
        let wires = parameters.map { $0?.wire }
        let lengths = wires.map { Int32($0?.bytes.count ?? 0) }
        let formats = wires.map { Int32(($0?.binary ?? false) ? 1 : 0) }
        // NUL-terminate text values (libpq reads text parameters as C strings).
        let buffers: [UnsafeMutablePointer<CChar>?] = wires.map { w in
            guard let w else { return nil }
            let p = UnsafeMutablePointer<CChar>.allocate(capacity: w.bytes.count + 1)
            w.bytes.withUnsafeBufferPointer { src in
                src.withMemoryRebound(to: CChar.self) { p.initialize(from: $0.baseAddress!, count: w.bytes.count) }
            }
            p[w.bytes.count] = 0
            return p
        }
        defer { buffers.forEach { $0?.deallocate() } }
        let pointers = buffers.map { UnsafePointer($0) }
        let result = PQexecParams(conn, sql, Int32(parameters.count), nil, pointers, lengths, formats, 0)
        defer { PQclear(result) }
        return try rows(of: result)
    }

    /// Runs a multi-statement SQL script through PQexec (simple protocol, no parameters).
    /// For STATIC SQL ONLY: the migration files shipped in `migrations/`. Never pass a string
    /// that contains any value from input; everything else goes through `query` with `$n`.
    public func runScript(_ sql: String) throws(PostgresError) {
        let result = PQexec(conn, sql)
        defer { PQclear(result) }
        _ = try rows(of: result)
    }

    /// Runs `body` inside BEGIN … COMMIT; any error rolls back and is rethrown.
    public func transaction<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        try query("BEGIN")
        do {
            let value = try body(self)
            try query("COMMIT")
            return value
        } catch {
            _ = try? query("ROLLBACK")
            throw error
        }
    }

    /// Starts listening on `channel` (an identifier, quoted safely by libpq).
    public func listen(_ channel: String) throws(PostgresError) {
        try query("LISTEN \(try quotedIdentifier(channel))")
    }

    /// Sends a notification through `pg_notify`, parameterised.
    public func notify(_ channel: String, payload: String) throws(PostgresError) {
        try query("SELECT pg_notify($1, $2)", [.text(channel), .text(payload)])
    }

    /// Waits up to `timeout` seconds for notifications and returns those that arrived.
    public func notifications(timeout: Double) throws(PostgresError) -> [PostgresNotification] {
        var out = drainNotifications()
        if !out.isEmpty { return out }
        let socket = PQsocket(conn)
        guard socket >= 0 else { throw .connectionLost(errorMessage) }
        var fds = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        let ready = poll(&fds, 1, Int32(timeout * 1000))
        if ready > 0 {
            guard PQconsumeInput(conn) == 1 else { throw .connectionLost(errorMessage) }
            out = drainNotifications()
        }
        return out
    }

    public var isConnected: Bool { PQstatus(conn) == CONNECTION_OK }

    private var errorMessage: String {
        String(cString: PQerrorMessage(conn)).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func drainNotifications() -> [PostgresNotification] {
        var out = [PostgresNotification]()
        while let n = PQnotifies(conn) {
            out.append(PostgresNotification(
                channel: String(cString: n.pointee.relname), payload: String(cString: n.pointee.extra)))
            PQfreemem(n)
        }
        return out
    }

    private func quotedIdentifier(_ name: String) throws(PostgresError) -> String {
        guard let p = PQescapeIdentifier(conn, name, name.utf8.count) else { throw .statementFailed(sqlState: "", message: errorMessage) }
        defer { PQfreemem(p) }
        return String(cString: p)
    }

    private func rows(of result: OpaquePointer?) throws(PostgresError) -> [PostgresRow] {
        guard let result else { throw .connectionLost(errorMessage) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            return []
        case PGRES_TUPLES_OK:
            let nrows = Int(PQntuples(result)), ncols = Int(PQnfields(result))
            let columns = (0..<ncols).map { String(cString: PQfname(result, Int32($0))) }
            return (0..<nrows).map { r in
                PostgresRow(columns: columns, values: (0..<ncols).map { c in
                    PQgetisnull(result, Int32(r), Int32(c)) == 1
                        ? nil : String(cString: PQgetvalue(result, Int32(r), Int32(c)))
                })
            }
        default:
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) } ?? ""
            let message = PQresultErrorField(result, Int32(UInt8(ascii: "M"))).map { String(cString: $0) } ?? errorMessage
            if PQstatus(conn) != CONNECTION_OK { throw .connectionLost(message) }
            throw .statementFailed(sqlState: state, message: message)
        }
    }
}

/// The libpq version linked at run time, e.g. "15.18".
public var postgresLibraryVersion: String {
    let v = Int(PQlibVersion())
    return "\(v / 10000).\(v % 10000)"
}
