import EdgePlanCore
import Foundation
import GRDB

/// Reported runs and calibration history in SQLite (WAL), in the service's state directory, so they
/// survive restarts. Retention is bounded: past `capacity` runs the oldest are deleted.
public final class ObservationStore: Sendable {
    /// One stored report, with where its energy came from.
    public struct StoredRun: Sendable, Equatable {
        public var run: RunReport
        public var requestID: String
        public var mode: String
        public var energySource: String?
        /// The power mode the device was in (`pmode:0000`), where it has one.
        public var powerMode: String?

        public init(run: RunReport, requestID: String, mode: String, energySource: String?, powerMode: String? = nil) {
            self.run = run
            self.requestID = requestID
            self.mode = mode
            self.energySource = energySource
            self.powerMode = powerMode
        }
    }

    private let database: DatabasePool
    public let capacity: Int
    public let path: String
    /// Where a corrupt store found at start was moved, if one was.
    public let movedAside: String?

    /// Opens the store; a file that is not a database or fails SQLite's quick check is moved aside
    /// (`observations.sqlite.corrupt-<unix time>`, with its WAL and shared-memory files) and a new store is created,
    /// so a damaged file never stops the daemon. Returns the store and the error that made it move one aside.
    public static func openOrReplace(
        path: String,
        capacity: Int = 100_000,
        now: Double = Date().timeIntervalSince1970
    ) throws -> (ObservationStore, (any Error)?) {
        do {
            let store = try ObservationStore(path: path, capacity: capacity)
            try store.checkIntegrity()
            return (store, nil)
        } catch {
            let aside = "\(path).corrupt-\(Int(now))"
            for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: path + suffix) {
                guard rename(path + suffix, aside + suffix) == 0 else {
                    throw EdgePlanError(.io, "cannot move a corrupt store aside", file: path)
                }
            }
            return (try ObservationStore(path: path, capacity: capacity, movedAside: aside), error)
        }
    }

    /// SQLite's quick check; throws unless it says "ok".
    public func checkIntegrity() throws {
        let result = try database.read { try String.fetchOne($0, sql: "PRAGMA quick_check") }
        guard result == "ok" else {
            throw EdgePlanError(.io, "integrity check failed: \(result ?? "no answer")", file: path)
        }
    }

    public init(path: String, capacity: Int = 100_000, movedAside: String? = nil) throws {
        self.movedAside = movedAside
        var configuration = Configuration()
        configuration.busyMode = .timeout(2)
        // In WAL mode NORMAL never corrupts the file; a power cut may lose the last few reports, not the store.
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        do {
            database = try DatabasePool(path: path, configuration: configuration)
        } catch {
            throw EdgePlanError(.io, "cannot open the observation store: \(error)", file: path)
        }
        self.capacity = capacity
        self.path = path
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "run") { table in
                table.autoIncrementedPrimaryKey("id")
                table.column("time", .double).notNull().indexed()
                table.column("requestId", .text).notNull()
                table.column("model", .text).notNull()
                table.column("quantization", .text).notNull()
                table.column("mode", .text).notNull()
                table.column("parallel", .integer).notNull()
                table.column("inputTokens", .integer).notNull()
                table.column("outputTokens", .integer).notNull()
                table.column("latencyS", .double).notNull()
                table.column("energyJ", .double)
                table.column("energySource", .text)
            }
            try db.create(table: "calibration") { table in
                table.autoIncrementedPrimaryKey("id")
                table.column("time", .double).notNull()
                table.column("model", .text).notNull()
                table.column("quantization", .text).notNull()
                table.column("reason", .text).notNull()
                table.column("accepted", .boolean).notNull()
                table.column("profileVersion", .text).notNull()
                table.column("oldN", .double).notNull()
                table.column("newN", .double).notNull()
                table.column("oldM", .double).notNull()
                table.column("newM", .double).notNull()
                table.column("currentMape", .double).notNull()
                table.column("candidateMape", .double).notNull()
            }
        }
        migrator.registerMigration("v2-outcomes") { db in
            // Outcomes that taught the learner: replayed at start so posteriors survive restarts.
            try db.create(table: "outcome") { table in
                table.autoIncrementedPrimaryKey("id")
                table.column("time", .double).notNull()
                table.column("peer", .integer).notNull()
                table.column("taskClass", .text).notNull()
                table.column("model", .text).notNull()
                table.column("quantization", .text).notNull()
                table.column("mode", .text).notNull()
                table.column("budgetTokens", .integer)
                table.column("capped", .boolean).notNull()
                table.column("parallel", .integer).notNull()
                table.column("correct", .boolean)
                table.column("sampleOutputTokens", .text).notNull()
            }
        }
        migrator.registerMigration("v3-run-peer") { db in
            // Who reported each run, so refits can bound any one peer's share after a restart too.
            try db.alter(table: "run") { table in table.add(column: "peer", .integer) }
        }
        migrator.registerMigration("v4-run-power-mode") { db in
            // The power mode each run ran in, so that the fleet pools calibrations per power mode.
            try db.alter(table: "run") { table in table.add(column: "powerMode", .text) }
        }
        migrator.registerMigration("v5-store-id") { db in
            // Which store this is: a store made anew (its predecessor found corrupt) numbers its rows from 1 again,
            // and whoever copies rows out of it (the fleet's sync) must tell the two apart.
            try db.execute(sql: "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            try db.execute(
                sql: "INSERT INTO meta (key, value) VALUES ('storeId', ?)",
                arguments: [UUID().uuidString.lowercased()]
            )
        }
        do { try migrator.migrate(database) } catch {
            throw EdgePlanError(.io, "cannot prepare the observation store: \(error)", file: path)
        }
    }

    /// This store's own id (made with it): a store made anew has another.
    public func storeID() throws -> String {
        try database.read { try String.fetchOne($0, sql: "SELECT value FROM meta WHERE key = 'storeId'") } ?? ""
    }

    /// Rows of a table after a sequence number: what an upload from there still has to send.
    public func count(of table: String, after: Int64) throws -> Int64 {
        precondition(["run", "outcome"].contains(table))
        return try database.read {
            try Int64.fetchOne($0, sql: "SELECT COUNT(*) FROM \(table) WHERE id > ?", arguments: [after]) ?? 0
        }
    }

    /// Stores a run and returns its row id; trims the oldest runs beyond capacity (checked every 256 inserts).
    @discardableResult
    public func append(_ stored: StoredRun) throws -> Int64 {
        try database.write { db in
            let run = stored.run
            try db.execute(
                sql: """
                    INSERT INTO run (time, requestId, model, quantization, mode, parallel, inputTokens, outputTokens, latencyS, energyJ, energySource, peer, powerMode)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    run.time, stored.requestID, run.variant.model, run.variant.quantization.rawValue, stored.mode,
                    run.parallel,
                    run.inputTokens, run.outputTokens, run.latencyS, run.energyJ, stored.energySource,
                    run.peer.map { Int64($0) }, stored.powerMode,
                ]
            )
            let id = db.lastInsertedRowID
            if id % 256 == 0 {
                try db.execute(sql: "DELETE FROM run WHERE id <= ?", arguments: [id - Int64(capacity)])
            }
            return id
        }
    }

    /// Sets the energy of a stored run, attributed after it was stored (the rails covered its window later).
    public func setEnergy(ofRun id: Int64, joules: Double, source: String) throws {
        try database.write { db in
            try db.execute(
                sql: "UPDATE run SET energyJ = ?, energySource = ? WHERE id = ?",
                arguments: [joules, source, id]
            )
        }
    }

    /// The most recent `limit` runs, oldest first.
    public func recent(limit: Int) throws -> [StoredRun] {
        try database.read { db in
            let rows = try Row.fetchAll(db, sql: "SELECT * FROM run ORDER BY id DESC LIMIT ?", arguments: [limit])
            return rows.reversed().compactMap { row -> StoredRun? in
                guard let quantization = Quantization(rawValue: row["quantization"]) else { return nil }
                let run = RunReport(
                    variant: VariantID(model: row["model"], quantization: quantization),
                    inputTokens: row["inputTokens"],
                    outputTokens: row["outputTokens"],
                    parallel: row["parallel"],
                    latencyS: row["latencyS"],
                    energyJ: row["energyJ"],
                    time: row["time"],
                    peer: (row["peer"] as Int64?).map { UInt32(truncatingIfNeeded: $0) }
                )
                return StoredRun(
                    run: run,
                    requestID: row["requestId"],
                    mode: row["mode"],
                    energySource: row["energySource"],
                    powerMode: row["powerMode"]
                )
            }
        }
    }

    /// Stores an outcome the learner used; keeps the newest `capacity`.
    public func appendOutcome(_ outcome: LearningOutcome, at time: Double) throws {
        try database.write { db in
            let c = outcome.configuration
            try db.execute(
                sql: """
                    INSERT INTO outcome (time, peer, taskClass, model, quantization, mode, budgetTokens, capped, parallel, correct, sampleOutputTokens)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    time, Int64(outcome.peer), outcome.taskClass, c.variant.model, c.variant.quantization.rawValue,
                    c.mode.rawValue,
                    c.budgetTokens, c.capped, c.parallel, outcome.correct,
                    outcome.sampleOutputTokens.map(String.init).joined(separator: ","),
                ]
            )
            let id = db.lastInsertedRowID
            if id % 256 == 0 {
                try db.execute(sql: "DELETE FROM outcome WHERE id <= ?", arguments: [id - Int64(capacity)])
            }
        }
    }

    /// Stored outcomes, oldest first (rows naming an unknown quantization or mode are skipped).
    public func outcomes() throws -> [LearningOutcome] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM outcome ORDER BY id").compactMap { row -> LearningOutcome? in
                guard let quantization = Quantization(rawValue: row["quantization"]),
                    let mode = LengthMode(rawValue: row["mode"])
                else { return nil }
                let tokens: String = row["sampleOutputTokens"]
                let configuration = Configuration(
                    variant: VariantID(model: row["model"], quantization: quantization),
                    mode: mode,
                    budgetTokens: row["budgetTokens"],
                    capped: row["capped"],
                    parallel: row["parallel"]
                )
                return LearningOutcome(
                    taskClass: row["taskClass"],
                    configuration: configuration,
                    correct: row["correct"],
                    sampleOutputTokens: tokens.split(separator: ",").compactMap { Int($0) },
                    peer: UInt32(truncatingIfNeeded: row["peer"] as Int64),
                    time: row["time"]
                )
            }
        }
    }

    /// A stored run or outcome as the fleet receives it: its row id (the robot's sequence number) and its fields.
    public struct UploadRow: Sendable, Equatable {
        public var seq: Int64
        public var values: [String: StoredValue]

        public init(seq: Int64, values: [String: StoredValue]) {
            self.seq = seq
            self.values = values
        }
    }

    /// Runs with an id above `after`, oldest first, at most `limit`: what the fleet has not received yet.
    public func runs(after: Int64, limit: Int) throws -> [UploadRow] {
        try rows(table: "run", after: after, limit: limit)
    }

    /// Outcomes with an id above `after`, oldest first, at most `limit`.
    public func outcomeRows(after: Int64, limit: Int) throws -> [UploadRow] {
        try rows(table: "outcome", after: after, limit: limit)
    }

    /// The highest row id of a table (0 when empty): the robot's newest sequence number.
    public func lastSequence(of table: String) throws -> Int64 {
        precondition(["run", "outcome"].contains(table))
        return try database.read { try Int64.fetchOne($0, sql: "SELECT COALESCE(MAX(id), 0) FROM \(table)") ?? 0 }
    }

    private func rows(table: String, after: Int64, limit: Int) throws -> [UploadRow] {
        precondition(["run", "outcome"].contains(table))
        return try database.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM \(table) WHERE id > ? ORDER BY id LIMIT ?",
                arguments: [after, limit]
            )
            .map { row in
                var values: [String: StoredValue] = [:]
                for column in row.columnNames where column != "id" {
                    values[column] = StoredValue(row[column] as DatabaseValue)
                }
                return UploadRow(seq: row["id"], values: values)
            }
        }
    }

    public func count() throws -> Int {
        try database.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM run") ?? 0 }
    }

    /// Records a refit attempt and its outcome.
    public func recordCalibration(
        _ outcome: Recalibrator.Outcome,
        old: ModelVariant,
        profileVersion: String,
        at time: Double
    ) throws {
        try database.write { db in
            try db.execute(
                sql: """
                    INSERT INTO calibration (time, model, quantization, reason, accepted, profileVersion, oldN, newN, oldM, newM, currentMape, candidateMape)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    time, old.id.model, old.id.quantization.rawValue, outcome.reason, outcome.accepted, profileVersion,
                    old.decodeLatency.nSPerToken, outcome.candidate.decodeLatency.nSPerToken,
                    old.decodeLatency.mSPerToken2, outcome.candidate.decodeLatency.mSPerToken2,
                    outcome.currentLatencyMAPE, outcome.candidateLatencyMAPE,
                ]
            )
        }
    }

    public func calibrationCount() throws -> Int {
        try database.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM calibration") ?? 0 }
    }

    /// The journal mode SQLite reports ("wal").
    public func journalMode() throws -> String {
        try database.read { try String.fetchOne($0, sql: "PRAGMA journal_mode") ?? "" }
    }
}

/// A column's value, typed as SQLite stored it: what an upload needs, without GRDB in its signature.
public enum StoredValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)

    init(_ value: DatabaseValue) {
        switch value.storage {
        case .null, .blob: self = .null
        case let .int64(number): self = .integer(number)
        case let .double(number): self = .real(number)
        case let .string(text): self = .text(text)
        }
    }

    public var int: Int64? {
        switch self {
        case let .integer(value): value
        case let .real(value): Int64(value)
        default: nil
        }
    }

    public var double: Double? {
        switch self {
        case let .integer(value): Double(value)
        case let .real(value): value
        default: nil
        }
    }

    public var string: String? {
        if case let .text(value) = self { return value }
        return nil
    }
}
