import EdgePlanCore
import EdgePlanDaemon
import Foundation
import Logging

/// One robot's side of the fleet: uploads what its own store holds and the fleet lacks, then pulls the newest
/// version. The robot's SQLite store stays its source of truth: the fleet's newest sequence numbers say where an
/// upload resumes, so a link that was down for hours delays rows but loses none, and a batch sent twice (a reply
/// lost with the link) is stored once.
public struct FleetSync: Sendable {
    public var connection: FleetConnection
    public var store: ObservationStore
    public var deviceClass: String
    public var profileVersion: String
    public var powerMode: String
    /// This robot's own id, recorded with each upload.
    public var robotID: String?
    public var batchSize: Int
    /// Where the pulled version and the sync's own state are written (the service's state directory).
    public var stateDirectory: String
    /// The robot's prediction of a stored run on its class's profile (uploaded with it, so the fleet pools ratios).
    public var predictedS: @Sendable (ObservationStore.UploadRow) -> Double?

    public init(
        connection: FleetConnection,
        store: ObservationStore,
        deviceClass: String,
        profileVersion: String,
        powerMode: String,
        robotID: String? = nil,
        batchSize: Int,
        stateDirectory: String,
        predictedS: @escaping @Sendable (ObservationStore.UploadRow) -> Double? = { _ in nil }
    ) {
        self.predictedS = predictedS
        self.connection = connection
        self.store = store
        self.deviceClass = deviceClass
        self.profileVersion = profileVersion
        self.powerMode = powerMode
        self.robotID = robotID
        self.batchSize = batchSize
        self.stateDirectory = stateDirectory
    }

    public struct Round: Sendable {
        public var runsSent = 0
        public var outcomesSent = 0
        /// Rows of the robot's store the fleet did not have yet before this round.
        public var runsLag: Int64 = 0
        public var outcomesLag: Int64 = 0
        public var version: Int64?
        /// Why the newest version was not written for the daemon to learn, if it was not.
        public var versionNotLearned: String?
        /// What leaving this robot's own rows out changed in the version written (nil: none written this round).
        public var ownRows: FleetPooling.OwnRows?
        /// Whether the round sent everything the robot's store held when it looked (false: it stopped at its cap).
        public var complete = true
    }

    /// Batches of each kind one round sends at most: a round ends, and says so, even while new rows keep coming.
    public static let maxBatchesPerRound = 100

    /// Catches up once (up to ``maxBatchesPerRound`` batches of runs and of outcomes), then pulls the newest version.
    /// A round that takes longer than `timeout` is cut off, its connection closed: the next one resumes.
    public func round(logger: Logger, timeout: Duration = .seconds(60)) async throws -> Round {
        try await FleetStore.with(connection, logger: logger, timeout: timeout) { fleet in
            var round = Round()
            let (fleetRuns, fleetOutcomes) = try await fleet.received()
            let localRuns = try store.lastSequence(of: "run")
            let localOutcomes = try store.lastSequence(of: "outcome")
            // Uploads resume after the fleet's newest sequence numbers, unless this store numbers below them: it was
            // made anew (its predecessor found corrupt) and counts from 1 again. Then they resume after what this
            // sync sent from this store, as its resume file says; a row sent twice is stored once all the same.
            let storeID = try store.storeID()
            var resume = Resume.load(stateDirectory).flatMap { $0.store == storeID ? $0 : nil }
            if resume == nil, localRuns < fleetRuns || localOutcomes < fleetOutcomes {
                resume = Resume(store: storeID, runs: 0, outcomes: 0)
            }
            var runsAt = resume?.runs ?? fleetRuns
            var outcomesAt = resume?.outcomes ?? fleetOutcomes
            round.runsLag = try store.count(of: "run", after: runsAt)
            round.outcomesLag = try store.count(of: "outcome", after: outcomesAt)
            round.complete = false
            for _ in 0..<Self.maxBatchesPerRound {
                let batch = try store.runs(after: runsAt, limit: batchSize)
                guard let last = batch.last else {
                    round.complete = true
                    break
                }
                round.runsSent += try await fleet.upload(
                    runs: batch,
                    deviceClass: deviceClass,
                    profileVersion: profileVersion,
                    powerMode: powerMode,
                    predictedS: predictedS
                )
                runsAt = last.seq
                if resume != nil {
                    resume?.runs = runsAt
                    try resume?.save(stateDirectory)
                }
            }
            var outcomesComplete = false
            for _ in 0..<Self.maxBatchesPerRound {
                let batch = try store.outcomeRows(after: outcomesAt, limit: batchSize)
                guard let last = batch.last else {
                    outcomesComplete = true
                    break
                }
                round.outcomesSent += try await fleet.upload(outcomes: batch, profileVersion: profileVersion)
                outcomesAt = last.seq
                if resume != nil {
                    resume?.outcomes = outcomesAt
                    try resume?.save(stateDirectory)
                }
            }
            round.complete = round.complete && outcomesComplete
            // The fleet reckons a robot's lag as its newest sequence numbers less the fleet's: a store made anew
            // reports the fleet's newest plus what it still has to send.
            try await fleet.recordProgress(
                localRuns: resume == nil
                    ? localRuns : max(fleetRuns, runsAt) + (try store.count(of: "run", after: runsAt)),
                localOutcomes: resume == nil
                    ? localOutcomes
                    : max(fleetOutcomes, outcomesAt) + (try store.count(of: "outcome", after: outcomesAt)),
                lastError: nil,
                robotID: robotID
            )
            if let latest = try await fleet.latestVersionForRobot() {
                round.version = latest.version
                guard latest.hasViews else {
                    // Pooled before per-robot views: it may hold this robot's own rows, which it must not learn
                    // twice. The next aggregate writes one it can learn.
                    round.versionNotLearned =
                        "fleet version \(latest.version) was pooled without per-robot views (this robot's own rows could not be left out of it); it is not learned until the fleet's schema is brought up to date (fleet init) and the next fleet aggregate"
                    return round
                }
                let path = "\(stateDirectory)/fleet-version.json"
                let current = try? JSONValue.parse(Array(FileText.data(path)))
                // A file written before own rows were left out is written again, even for the same version.
                if current?["version"]?.intValue != Int(latest.version) || current?["ownRows"] == nil {
                    let parsed = try JSONValue.parse(Array(latest.body.utf8))
                    let view = try latest.view.map { try JSONValue.parse(Array($0.utf8)) }
                    let (body, own) = FleetPooling.withoutOwnRows(parsed, view: view)
                    round.ownRows = own
                    try AtomicFile.write(
                        JSONValue.fields([
                            "version": .int(Int(latest.version)), "robot": .string(connection.user),
                            "ownRows": .fields([
                                "leftOut": .bool(true), "pooledWithout": .int(own.pooledWithout),
                                "dropped": .int(own.dropped),
                            ]),
                            "body": body,
                        ]).serialized(pretty: true) + "\n",
                        to: path
                    )
                }
            }
            return round
        }
    }

    /// How far this sync has sent from a store that numbers below the fleet's newest (`fleet-resume.json`).
    struct Resume: Sendable, Equatable {
        var store: String
        var runs: Int64
        var outcomes: Int64

        static func load(_ directory: String) -> Resume? {
            guard let data = try? FileText.data("\(directory)/fleet-resume.json"),
                let file = try? JSONValue.parse(Array(data)), let store = file["store"]?.stringValue,
                let runs = file["runs"]?.intValue, let outcomes = file["outcomes"]?.intValue
            else { return nil }
            return Resume(store: store, runs: Int64(runs), outcomes: Int64(outcomes))
        }

        func save(_ directory: String) throws {
            try AtomicFile.write(
                JSONValue.fields([
                    "store": .string(store), "runs": .int(Int(runs)), "outcomes": .int(Int(outcomes)),
                ]).serialized(pretty: true) + "\n",
                to: "\(directory)/fleet-resume.json"
            )
        }
    }

    /// The sync's state for operators: lag, last success and last error (`fleet-sync.json` in the state directory).
    public func writeState(round: Round?, error: String?, now: Double = Date().timeIntervalSince1970) throws {
        let path = "\(stateDirectory)/fleet-sync.json"
        let previous = try? JSONValue.parse(Array(FileText.data(path)))
        var fields: [(String, JSONValue)] = [
            ("time", .number(now)),
            ("lastSuccess", round != nil ? .number(now) : previous?["lastSuccess"] ?? .null),
            ("lastError", error.map(JSONValue.string) ?? .null),
        ]
        if let round {
            fields += [
                ("runsSent", .int(round.runsSent)), ("outcomesSent", .int(round.outcomesSent)),
                ("runsLagBefore", .int(Int(round.runsLag))), ("outcomesLagBefore", .int(Int(round.outcomesLag))),
                ("fleetVersion", round.version.map { .int(Int($0)) } ?? .null),
            ]
        } else {
            let pending = try? store.lastSequence(of: "run")
            fields.append(("localRuns", pending.map { .int(Int($0)) } ?? .null))
        }
        try AtomicFile.write(JSONValue.object(fields).serialized(pretty: true) + "\n", to: path)
    }
}
