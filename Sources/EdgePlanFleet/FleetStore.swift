import EdgePlanCore
import EdgePlanDaemon
import Foundation
import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// Where the fleet store is and as whom to connect.
public struct FleetConnection: Sendable {
    public var host: String
    public var port: Int
    public var database: String
    public var user: String
    public var password: String?
    public var tls: String
    /// PEM file of the authorities the server's certificate must chain to; nil: the system's.
    public var tlsCAFile: String?
    /// A client certificate (PEM) and its key, for a server that authenticates robots by certificate.
    public var tlsCertFile: String?
    public var tlsKeyFile: String?
    /// Where the password was looked for, for the error when the server asks for one and none was found.
    public var passwordSource = "no --password-file was given"

    public init(
        host: String,
        port: Int = 5432,
        database: String,
        user: String,
        password: String?,
        tls: String = "prefer",
        tlsCAFile: String? = nil,
        tlsCertFile: String? = nil,
        tlsKeyFile: String? = nil
    ) {
        self.host = host
        self.port = port
        self.database = database
        self.user = user
        self.password = password
        self.tls = tls
        self.tlsCAFile = tlsCAFile
        self.tlsCertFile = tlsCertFile
        self.tlsKeyFile = tlsKeyFile
    }

    /// A robot's connection from its policy's `fleet:` section; the password from its file, or from the
    /// `fleet-password` credential systemd passes in `$CREDENTIALS_DIRECTORY`; a client certificate's key likewise
    /// (`fleet-key`). A robot that logs in by certificate needs no password.
    /// A relative path in the policy (`password_file`, `tls_ca_file`, `tls_cert_file`, `tls_key_file`) is resolved
    /// from `base`, the policy file's directory: the service runs from `/`, a shell from anywhere.
    public init(
        _ fleet: FleetPolicy,
        relativeTo base: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws {
        var fleet = fleet
        func resolve(_ path: String?) -> String? {
            guard let path, !path.hasPrefix("/"), let base else { return path }
            return URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: base, isDirectory: true)).standardized
                .path
        }
        fleet.passwordFile = resolve(fleet.passwordFile)
        fleet.tlsCAFile = resolve(fleet.tlsCAFile)
        fleet.tlsCertFile = resolve(fleet.tlsCertFile)
        fleet.tlsKeyFile = resolve(fleet.tlsKeyFile)
        let credentials = environment["CREDENTIALS_DIRECTORY"]
        let file = fleet.passwordFile ?? credentials.map { "\($0)/fleet-password" }
        let password = try file.flatMap { path -> String? in
            // By certificate, a missing password credential is no error.
            if fleet.tlsCertFile != nil, fleet.passwordFile == nil, !FileManager.default.fileExists(atPath: path) {
                return nil
            }
            return try FileText.text(path, what: "fleet password file").trimmingCharacters(in: .whitespacesAndNewlines)
        }
        self.init(
            host: fleet.host,
            port: fleet.port,
            database: fleet.database,
            user: fleet.user,
            password: password,
            tls: fleet.tls,
            tlsCAFile: fleet.tlsCAFile,
            tlsCertFile: fleet.tlsCertFile,
            tlsKeyFile: fleet.tlsCertFile == nil ? nil : fleet.tlsKeyFile ?? credentials.map { "\($0)/fleet-key" }
        )
        passwordSource =
            if let path = fleet.passwordFile {
                "read from password_file \(path)"
            } else if let credentials {
                "looked for the fleet-password credential in $CREDENTIALS_DIRECTORY (\(credentials)/fleet-password)"
            } else {
                "looked for the fleet-password credential, but $CREDENTIALS_DIRECTORY is not set (edgeplan-fleet.service sets it with LoadCredential=fleet-password:/etc/edgeplan/fleet-password), and the policy's fleet: section names no password_file"
            }
    }

    /// Where the server is, in words: its socket, or host and port.
    public var place: String { host.hasPrefix("/") ? "\(host)/.s.PGSQL.\(port)" : "\(host) port \(port)" }

    /// A host starting with `/` is a directory holding the server's socket (`.s.PGSQL.<port>`), as libpq reads it.
    func configuration() throws -> PostgresConnection.Configuration {
        if host.hasPrefix("/") {
            return .init(
                unixSocketPath: "\(host)/.s.PGSQL.\(port)",
                username: user,
                password: password,
                database: database
            )
        }
        // The certificate and the host name are verified, against the fleet's own authorities where given: a robot
        // learns its priors from this server, so a man in the middle must not be able to pose as it.
        var client = TLSConfiguration.makeClientConfiguration()
        if let tlsCAFile {
            guard FileManager.default.isReadableFile(atPath: tlsCAFile) else {
                throw FleetError("cannot read the fleet's CA file \(tlsCAFile)")
            }
            client.trustRoots = .file(tlsCAFile)
        }
        if let tlsCertFile {
            guard let tlsKeyFile else {
                throw FleetError(
                    "the client certificate \(tlsCertFile) has no key: give tls_key_file, or the fleet-key credential"
                )
            }
            for (path, what) in [(tlsCertFile, "client certificate"), (tlsKeyFile, "client key")]
            where !FileManager.default.isReadableFile(atPath: path) {
                throw FleetError("cannot read the fleet's \(what) file \(path)")
            }
            do {
                client.certificateChain = try NIOSSLCertificate.fromPEMFile(tlsCertFile).map { .certificate($0) }
                client.privateKey = .privateKey(try NIOSSLPrivateKey(file: tlsKeyFile, format: .pem))
            } catch {
                throw FleetError("cannot use the client certificate \(tlsCertFile) and key \(tlsKeyFile): \(error)")
            }
        }
        let mode: PostgresConnection.Configuration.TLS
        do {
            switch tls {
            case "disable": mode = .disable
            case "require": mode = .require(try NIOSSLContext(configuration: client))
            default: mode = .prefer(try NIOSSLContext(configuration: client))
            }
        } catch {
            throw FleetError("cannot use the fleet's CA file \(tlsCAFile ?? "(system)"): \(error)")
        }
        return .init(host: host, port: port, username: user, password: password, database: database, tls: mode)
    }
}

/// The fleet's tables in PostgreSQL: each robot's runs and outcomes, keyed by (robot, sequence) so that a batch sent
/// twice is stored once, and the fleet's versions. Robots are database roles in `edgeplan_robot`; row-level security
/// lets each insert and read only its own rows and read the versions.
public struct FleetStore: Sendable {
    let connection: PostgresConnection
    let logger: Logger

    /// Connection attempts and bodies given up at their deadline and still running (each holds a task and a closed connection until it
    /// returns, which a query on a dead link may never do). A long-running caller restarts when too many pile up.
    static let abandoned = Atomic<Int>(0)
    public static var abandonedBodies: Int { abandoned.load(ordering: .relaxed) }

    /// Connects, runs `body`, and closes the connection whatever happens. Neither may take longer than `timeout`: a
    /// link that dies without a word (a server killed mid-handshake, a cable cut) would otherwise leave a query
    /// waiting for ever; at the deadline the connection is closed, which fails whatever waits on it.
    public static func with<R: Sendable>(
        _ target: FleetConnection,
        logger: Logger,
        timeout: Duration = .seconds(60),
        _ body: @escaping @Sendable (FleetStore) async throws -> R
    ) async throws -> R {
        let connection: PostgresConnection
        do {
            connection = try await Self.connect(target, logger: logger, timeout: timeout)
        } catch {
            throw FleetError("cannot connect to the fleet store at \(target.place): \(describeConnect(error, target))")
        }
        // The body and the clock race, and the loser is not waited for: a query on a link that died without a
        // word may never return, even once its connection is closed. A body that finishes late has its result
        // dropped (its writes are idempotent).
        let store = FleetStore(connection: connection, logger: logger)
        let settled = Expiry()
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<R, any Error>) in
            let work = Task {
                do {
                    let result = try await body(store)
                    try? await connection.close()
                    if settled.claim() {
                        continuation.resume(returning: result)
                    } else {
                        Self.abandoned.subtract(1, ordering: .relaxed)
                    }
                } catch {
                    try? await connection.close()
                    // The server's own words (PostgresNIO hides them from a plain description).
                    let reported =
                        error is PSQLError || error is PostgresTransactionError
                        ? FleetError("the fleet store failed: \(describe(error))") : error
                    if settled.claim() {
                        continuation.resume(throwing: reported)
                    } else {
                        Self.abandoned.subtract(1, ordering: .relaxed)
                    }
                }
            }
            Task {
                try? await Task.sleep(for: timeout)
                if settled.claim() {
                    Self.abandoned.add(1, ordering: .relaxed)
                    work.cancel()
                    try? await connection.close()
                    continuation.resume(
                        throwing: FleetError(
                            "the fleet store did not answer within \(timeout); the connection was closed"
                        )
                    )
                }
            }
        }
    }

    /// Connects within `timeout`. The attempt and the clock race, and the loser is not waited for: a connection
    /// attempt that ignores cancellation (a server killed mid-handshake) cannot hold the caller. A connection that
    /// arrives after the deadline is closed.
    static func connect(_ target: FleetConnection, logger: Logger, timeout: Duration) async throws -> PostgresConnection
    {
        let settled = Expiry()
        return try await withCheckedThrowingContinuation { continuation in
            let attempt = Task {
                do {
                    let connection = try await PostgresConnection.connect(
                        configuration: try target.configuration(),
                        id: 1,
                        logger: logger
                    )
                    if settled.claim() {
                        continuation.resume(returning: connection)
                    } else {
                        Self.abandoned.subtract(1, ordering: .relaxed)
                        try? await connection.close()
                    }
                } catch {
                    if settled.claim() {
                        continuation.resume(throwing: error)
                    } else {
                        Self.abandoned.subtract(1, ordering: .relaxed)
                    }
                }
            }
            Task {
                try? await Task.sleep(for: timeout)
                if settled.claim() {
                    Self.abandoned.add(1, ordering: .relaxed)
                    attempt.cancel()
                    continuation.resume(throwing: FleetError("no answer within \(timeout)"))
                }
            }
        }
    }

    /// Which of two racers settled first: only the first `claim` wins.
    private final class Expiry: @unchecked Sendable {
        private let lock = NSLock()
        private var value = false
        /// True for the first caller only.
        func claim() -> Bool {
            lock.withLock {
                defer { value = true }
                return !value
            }
        }
    }

    /// Why a connection failed, in the fleet's words: no server there, a password the server asks for and none
    /// found (and where it was looked for), or PostgreSQL's own message.
    static func describeConnect(_ error: any Error, _ target: FleetConnection) -> String {
        guard let psql = error as? PSQLError else { return describe(error) }
        if psql.code == .authMechanismRequiresPassword {
            return "the server asks role \(target.user) for a password, and there was none: \(target.passwordSource)"
        }
        guard psql.code == .connectionError, let underlying = psql.underlying, !(underlying is NIOSSLError) else {
            return describe(error)
        }
        let code = (underlying as? IOError)?.errnoCode
        let text = "\(underlying)"
        if target.host.hasPrefix("/") {
            if code == ENOENT || text.contains("No such file") {
                return
                    "no PostgreSQL server is running there: its socket \(target.host)/.s.PGSQL.\(target.port) does not exist (is the server started, and on port \(target.port)?)"
            }
            if code == ECONNREFUSED || text.localizedCaseInsensitiveContains("refused") {
                return
                    "the socket \(target.host)/.s.PGSQL.\(target.port) refused the connection: the server is not running"
            }
        } else if code == ECONNREFUSED || text.localizedCaseInsensitiveContains("refused") {
            return
                "nothing listens on \(target.host) port \(target.port) (connection refused): the server is not running, or listens on another port or address"
        } else if text.contains("DNS") || text.localizedCaseInsensitiveContains("resolve") {
            return "the host name \(target.host) does not resolve"
        } else if code == ETIMEDOUT || code == EHOSTUNREACH || code == ENETUNREACH {
            return "\(target.host) port \(target.port) cannot be reached (\(String(cString: strerror(code!))))"
        }
        return describe(error)
    }

    /// PostgreSQL's own message where there is one.
    static func describe(_ error: any Error) -> String {
        if let transaction = error as? PostgresTransactionError {
            return describe(transaction.closureError ?? transaction.beginError ?? transaction.commitError ?? error)
        }
        if let psql = error as? PSQLError {
            if let message = psql.serverInfo?[.message] { return message }
            // What lies under a connection error: a certificate that did not verify, a refused connection.
            if let underlying = psql.underlying {
                return underlying is NIOSSLError ? describe(underlying) : "\(psql.code): \(describe(underlying))"
            }
            if psql.code == .sslUnsupported { return "the server does not offer TLS, and the policy requires it" }
            return "\(psql.code)"
        }
        if let tls = error as? NIOSSLError, case let .handshakeFailed(reason) = tls {
            return "\(reason)".contains("CERTIFICATE_VERIFY_FAILED")
                ? "the server's TLS certificate did not verify (its authority, or the host name it names)"
                : "the TLS handshake failed"
        }
        return "\(error)"
    }

    func run(_ sql: String) async throws {
        do { try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger) } catch {
            throw FleetError(Self.describe(error))
        }
    }

    // MARK: Schema

    /// Each robot reads and inserts only its own runs and outcomes (the tables' first form, and their partitioned one).
    static let ownRows = [
        "ALTER TABLE runs ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE outcomes ENABLE ROW LEVEL SECURITY",
        """
        CREATE POLICY own_runs ON runs TO edgeplan_robot
          USING (robot = current_user) WITH CHECK (robot = current_user)
        """,
        """
        CREATE POLICY own_outcomes ON outcomes TO edgeplan_robot
          USING (robot = current_user) WITH CHECK (robot = current_user)
        """,
        "GRANT SELECT, INSERT ON runs, outcomes TO edgeplan_robot",
    ]

    /// Numbered migrations, each applied once, in a transaction.
    static let migrations: [[String]] = [
        [
            """
            DO $$ BEGIN CREATE ROLE edgeplan_robot NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$
            """,
            """
            CREATE TABLE robots (robot text PRIMARY KEY DEFAULT current_user, device_class text NOT NULL,
              label text, last_upload timestamptz, local_runs bigint NOT NULL DEFAULT 0,
              local_outcomes bigint NOT NULL DEFAULT 0, last_error text)
            """,
            """
            CREATE TABLE runs (robot text NOT NULL DEFAULT current_user, seq bigint NOT NULL,
              time double precision NOT NULL, request_id text, model text NOT NULL, quantization text NOT NULL,
              mode text NOT NULL, parallel int NOT NULL, input_tokens int NOT NULL, output_tokens int NOT NULL,
              latency_s double precision NOT NULL, energy_j double precision, energy_source text, peer bigint,
              profile_version text, power_mode text, device_class text NOT NULL,
              received timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (robot, seq))
            """,
            "CREATE INDEX runs_by_variant ON runs (device_class, model, quantization)",
            """
            CREATE TABLE outcomes (robot text NOT NULL DEFAULT current_user, seq bigint NOT NULL,
              time double precision NOT NULL, peer bigint, task_class text NOT NULL, model text NOT NULL,
              quantization text NOT NULL, mode text NOT NULL, budget_tokens int, capped boolean NOT NULL,
              parallel int NOT NULL, correct boolean, sample_output_tokens text NOT NULL, profile_version text,
              received timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (robot, seq))
            """,
            "CREATE INDEX outcomes_by_group ON outcomes (task_class, model, quantization, mode)",
            """
            CREATE TABLE fleet_versions (version bigserial PRIMARY KEY, created timestamptz NOT NULL DEFAULT now(),
              body jsonb NOT NULL, changes jsonb NOT NULL)
            """,
            "ALTER TABLE robots ENABLE ROW LEVEL SECURITY",
            """
            CREATE POLICY own_robot ON robots TO edgeplan_robot
              USING (robot = current_user) WITH CHECK (robot = current_user)
            """,
        ] + ownRows + [
            "GRANT SELECT, UPDATE (last_upload, local_runs, local_outcomes, last_error) ON robots TO edgeplan_robot",
            "GRANT SELECT ON fleet_versions TO edgeplan_robot",
        ],
        [
            // The robot's own prediction of each run (its class's profile), so that per-robot medians of measured
            // over predicted are computed in PostgreSQL and no run has to leave the server to be pooled.
            "ALTER TABLE runs ADD COLUMN predicted_s double precision",
            "CREATE INDEX runs_by_robot_variant ON runs (device_class, model, quantization, robot)",
        ],
        [
            // Runs and outcomes partitioned by month of their time (Unix seconds), so that an aggregate over a window
            // reads only its months and old months can be dropped whole. A partitioned table's key must hold the
            // partition's column: (robot, seq, time); a resent row repeats its time, so it still conflicts.
            // Rows outside every month (a clock far off) land in a default partition.
            """
            CREATE FUNCTION fleet_ensure_partitions(first timestamptz, last timestamptz) RETURNS int
            LANGUAGE plpgsql AS $$
            DECLARE
              month timestamptz := date_trunc('month', first);
              made int := 0;
              tab text;
            BEGIN
              WHILE month <= last LOOP
                FOREACH tab IN ARRAY ARRAY['runs', 'outcomes'] LOOP
                  IF to_regclass(format('%s_%s', tab, to_char(month, 'YYYY_MM'))) IS NULL THEN
                    BEGIN
                      EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%s) TO (%s)',
                        format('%s_%s', tab, to_char(month, 'YYYY_MM')), tab,
                        extract(epoch FROM month), extract(epoch FROM month + interval '1 month'));
                      made := made + 1;
                    EXCEPTION WHEN check_violation THEN
                      -- The default partition already holds rows of this month: they stay there.
                      RAISE NOTICE 'month % of % stays in the default partition', to_char(month, 'YYYY-MM'), tab;
                    END;
                  END IF;
                END LOOP;
                month := month + interval '1 month';
              END LOOP;
              RETURN made;
            END $$
            """,
            "ALTER TABLE runs RENAME TO runs_unpartitioned",
            "ALTER TABLE outcomes RENAME TO outcomes_unpartitioned",
            "CREATE TABLE runs (LIKE runs_unpartitioned INCLUDING DEFAULTS) PARTITION BY RANGE (time)",
            "CREATE TABLE outcomes (LIKE outcomes_unpartitioned INCLUDING DEFAULTS) PARTITION BY RANGE (time)",
            "CREATE TABLE runs_default PARTITION OF runs DEFAULT",
            "CREATE TABLE outcomes_default PARTITION OF outcomes DEFAULT",
            // Months that hold rows already (within two years) and the next three.
            """
            SELECT fleet_ensure_partitions(
              greatest(least(coalesce((SELECT to_timestamp(min(time)) FROM runs_unpartitioned WHERE time > 0), now()),
                             coalesce((SELECT to_timestamp(min(time)) FROM outcomes_unpartitioned WHERE time > 0), now())),
                       now() - interval '2 years'),
              now() + interval '3 months')
            """,
            "INSERT INTO runs SELECT * FROM runs_unpartitioned",
            "INSERT INTO outcomes SELECT * FROM outcomes_unpartitioned",
            "DROP TABLE runs_unpartitioned",
            "DROP TABLE outcomes_unpartitioned",
            "ALTER TABLE runs ADD PRIMARY KEY (robot, seq, time)",
            "ALTER TABLE outcomes ADD PRIMARY KEY (robot, seq, time)",
            "CREATE INDEX runs_by_variant ON runs (device_class, model, quantization)",
            "CREATE INDEX runs_by_robot_variant ON runs (device_class, model, quantization, robot)",
            "CREATE INDEX outcomes_by_group ON outcomes (task_class, model, quantization, mode)",
        ] + ownRows,
        [
            // The robot's own id (its machine id unless its policy names one), recorded with each upload: a role's
            // credentials used from two machines show as two ids. Calibrations pooled per power mode too.
            "ALTER TABLE robots ADD COLUMN robot_id text",
            "GRANT UPDATE (robot_id) ON robots TO edgeplan_robot",
            // Calibrations are pooled per device class, power mode and variant.
            "DROP INDEX runs_by_robot_variant",
            "CREATE INDEX runs_by_robot_variant ON runs (device_class, power_mode, model, quantization, robot)",
        ],
        [
            // The newest sequence numbers pruned away (`fleet prune`): an upload resumes after them even when none
            // of a robot's rows remain, so a pruned month is never sent again.
            "ALTER TABLE robots ADD COLUMN pruned_runs_seq bigint NOT NULL DEFAULT 0",
            "ALTER TABLE robots ADD COLUMN pruned_outcomes_seq bigint NOT NULL DEFAULT 0",
        ],
        [
            // Each robot's view of a version: the groups it contributed to, pooled from the others only, so that no
            // robot learns its own rows twice. A robot reads only its own view. Versions written before views came
            // say so (`views` false), and robots do not learn them.
            "ALTER TABLE fleet_versions ADD COLUMN views boolean NOT NULL DEFAULT false",
            """
            CREATE TABLE fleet_version_views (version bigint NOT NULL REFERENCES fleet_versions ON DELETE CASCADE,
              robot text NOT NULL, body jsonb NOT NULL, PRIMARY KEY (version, robot))
            """,
            "ALTER TABLE fleet_version_views ENABLE ROW LEVEL SECURITY",
            "CREATE POLICY own_view ON fleet_version_views TO edgeplan_robot USING (robot = current_user)",
            "GRANT SELECT ON fleet_version_views TO edgeplan_robot",
        ],
    ]

    /// Versions whose per-robot views are kept (a robot pulls the newest; the one before may be mid-pull).
    public static let viewsKept = 3

    /// Creates the monthly partitions from `monthsBack` months ago to three months ahead (`fleet init` and every
    /// aggregate), so that rows arrive in their month rather than in the default partition; returns how many it made.
    public func ensurePartitions(monthsBack: Int = 1) async throws -> Int {
        let rows = try await connection.query(
            "SELECT fleet_ensure_partitions(now() - make_interval(months => \(monthsBack)::int), now() + interval '3 months')",
            logger: logger
        )
        return try await rows.single(Int.self, fallback: 0)
    }

    /// The monthly partitions of runs and outcomes (`runs_2026_12`, ...), the default ones aside.
    public func monthlyPartitions() async throws -> Set<String> {
        let rows = try await connection.query(
            """
            SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent IN (SELECT oid FROM pg_class WHERE relname IN ('runs', 'outcomes') AND relkind = 'p')
              AND c.relname ~ '_[0-9]{4}_[0-9]{2}$'
            """,
            logger: logger
        )
        var names: Set<String> = []
        for try await name in rows.decode(String.self) { names.insert(name) }
        return names
    }

    /// Brings the schema to the newest migration, or to `upTo` (the database owner runs this: `edgeplan fleet init`).
    public func migrate(upTo: Int? = nil) async throws -> Int {
        try await run(
            "CREATE TABLE IF NOT EXISTS fleet_migrations (version int PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())"
        )
        var applied = 0
        for (index, statements) in Self.migrations.enumerated() where index < (upTo ?? Self.migrations.count) {
            let version = index + 1
            let done = try await connection.query(
                "SELECT count(*)::int FROM fleet_migrations WHERE version = \(version)",
                logger: logger
            )
            var count = 0
            for try await value in done.decode(Int.self) { count = value }
            if count > 0 { continue }
            do {
                try await connection.withTransaction(logger: logger) { connection in
                    for statement in statements {
                        try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                    }
                    try await connection.query(
                        "INSERT INTO fleet_migrations (version) VALUES (\(version))",
                        logger: logger
                    )
                }
            } catch {
                throw try await privilegeError(error, doing: "fleet init")
            }
            applied += 1
        }
        return applied
    }

    /// Creates a robot's role (it logs in with `password`, may insert only its own rows) and its row.
    public func addRobot(_ robot: String, password: String, deviceClass: String, label: String?) async throws {
        guard robot.range(of: #"^[a-z][a-z0-9_-]{0,62}$"#, options: .regularExpression) != nil else {
            throw FleetError(
                "robot id '\(robot)' must be 1–63 lowercase letters, digits, '_' or '-', starting with a letter"
            )
        }
        // Identifiers and passwords cannot be bound: the server quotes them (format %I and %L).
        let statement = try await connection.query(
            "SELECT format('CREATE ROLE %I LOGIN PASSWORD %L IN ROLE edgeplan_robot', \(robot)::text, \(password)::text)",
            logger: logger
        )
        var sql = ""
        for try await text in statement.decode(String.self) { sql = text }
        do {
            try await connection.withTransaction(logger: logger) { connection in
                try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger)
                try await connection.query(
                    "INSERT INTO robots (robot, device_class, label) VALUES (\(robot), \(deviceClass), \(label))",
                    logger: logger
                )
            }
        } catch {
            throw try await privilegeError(error, doing: "fleet add-robot")
        }
    }

    /// An error of `fleet init` or `add-robot` in words: a role that may not create roles is told it needs
    /// CREATEROLE, and how to give it; any other lacking privilege is named with PostgreSQL's message.
    func privilegeError(_ error: any Error, doing command: String) async throws -> FleetError {
        let cause = (error as? PostgresTransactionError).flatMap { $0.closureError ?? $0.beginError } ?? error
        guard let psql = cause as? PSQLError, psql.serverInfo?[.sqlState] == "42501" else {
            return FleetError(Self.describe(cause))
        }
        let message = psql.serverInfo?[.message] ?? "permission denied"
        let role =
            (try? await connection.query("SELECT current_user::text", logger: logger).single(String.self, fallback: "?"))
            ?? "?"
        if message.contains("create role") {
            return FleetError(
                "role \(role) may not create roles (PostgreSQL: \(message)). \(command) needs the fleet's owner to have CREATEROLE: fleet init makes the group role edgeplan_robot, and fleet add-robot one login role per robot. As a superuser: ALTER ROLE \(role) CREATEROLE (docs/fleet.md shows how to make the owner and its database)"
            )
        }
        return FleetError(
            "role \(role) lacks a privilege \(command) needs (PostgreSQL: \(message)); run it as the owner of the fleet's database, with CREATEROLE"
        )
    }

    // MARK: A robot's upload

    /// The newest sequence numbers the fleet holds for this robot (runs, outcomes): where an upload resumes.
    public func received() async throws -> (runs: Int64, outcomes: Int64) {
        let query: PostgresQuery = """
            SELECT greatest((SELECT coalesce(max(seq), 0) FROM runs WHERE robot = current_user),
                     (SELECT pruned_runs_seq FROM robots WHERE robot = current_user))::bigint,
                   greatest((SELECT coalesce(max(seq), 0) FROM outcomes WHERE robot = current_user),
                     (SELECT pruned_outcomes_seq FROM robots WHERE robot = current_user))::bigint
            """
        // A fleet whose schema predates pruning (migration 5) has only its rows to say.
        let older: PostgresQuery = """
            SELECT (SELECT coalesce(max(seq), 0) FROM runs WHERE robot = current_user)::bigint,
                   (SELECT coalesce(max(seq), 0) FROM outcomes WHERE robot = current_user)::bigint
            """
        let rows: PostgresRowSequence
        do { rows = try await connection.query(query, logger: logger) } catch let error as PSQLError
            where error.serverInfo?[.sqlState] == "42703"
        {
            rows = try await connection.query(older, logger: logger)
        }
        var result: (Int64, Int64) = (0, 0)
        for try await row in rows.decode((Int64, Int64).self) { result = row }
        return result
    }

    /// What `prune` removed: the months' tables dropped, and the rows they and the default partition held.
    public struct Pruned: Sendable {
        public var tables: [String] = []
        public var runs = 0
        public var outcomes = 0
    }

    /// Drops every month that ended before `before` (Unix seconds) and deletes older rows from the default
    /// partition, in one transaction; each robot's newest pruned sequence numbers are kept so that its uploads
    /// resume after them. With `dryRun`, only says what it would remove.
    public func prune(before: Double, dryRun: Bool = false) async throws -> Pruned {
        let months = try await connection.query(
            """
            SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent IN ('runs'::regclass, 'outcomes'::regclass)
              AND c.relname ~ '^(runs|outcomes)_[0-9]{4}_[0-9]{2}$'
              AND extract(epoch FROM to_date(right(c.relname, 7), 'YYYY_MM') + interval '1 month') <= \(before)
            ORDER BY right(c.relname, 7), c.relname DESC
            """,
            logger: logger
        )
        var tables: [String] = []
        for try await name in months.decode(String.self) { tables.append(name) }
        let chosen = tables
        do {
            return try await connection.withTransaction(logger: logger) { connection in
                var pruned = Pruned(tables: chosen)
                // Names from the catalog, of the form checked above: safe to quote as identifiers.
                let sources =
                    chosen.map { ($0, "\"\($0)\"", "") } + [
                        ("runs_default", "runs_default", " WHERE time < \(before)"),
                        ("outcomes_default", "outcomes_default", " WHERE time < \(before)"),
                    ]
                for (name, table, filter) in sources {
                    let kind = name.hasPrefix("runs") ? "runs" : "outcomes"
                    let counted = try await connection.query(
                        PostgresQuery(unsafeSQL: "SELECT count(*)::int FROM \(table)\(filter)"),
                        logger: logger
                    )
                    let count = try await counted.single(Int.self, fallback: 0)
                    if kind == "runs" { pruned.runs += count } else { pruned.outcomes += count }
                    if dryRun || count == 0 && !filter.isEmpty { continue }
                    try await connection.query(
                        PostgresQuery(
                            unsafeSQL: """
                                UPDATE robots r SET pruned_\(kind)_seq = greatest(r.pruned_\(kind)_seq, m.seq)
                                FROM (SELECT robot, max(seq) AS seq FROM \(table)\(filter) GROUP BY robot) m
                                WHERE r.robot = m.robot
                                """
                        ),
                        logger: logger
                    )
                    try await connection.query(
                        PostgresQuery(
                            unsafeSQL: filter.isEmpty ? "DROP TABLE \(table)" : "DELETE FROM \(table)\(filter)"
                        ),
                        logger: logger
                    )
                }
                return pruned
            }
        } catch {
            throw try await privilegeError(error, doing: "fleet prune")
        }
    }

    /// Sends runs in one transaction; a row the fleet already has is skipped (its key is (robot, sequence)).
    /// Returns the rows newly stored.
    public func upload(
        runs: [ObservationStore.UploadRow],
        deviceClass: String,
        profileVersion: String,
        powerMode: String,
        predictedS: (ObservationStore.UploadRow) -> Double? = { _ in nil }
    ) async throws -> Int {
        guard !runs.isEmpty else { return 0 }
        let seqs = runs.map(\.seq)
        let times = runs.map { $0.real("time") }
        let requests = runs.map { $0.text("requestId") }
        let models = runs.map { $0.text("model") }
        let quantizations = runs.map { $0.text("quantization") }
        let modes = runs.map { $0.text("mode") }
        let parallels = runs.map { $0.int("parallel") }
        let inputs = runs.map { $0.int("inputTokens") }
        let outputs = runs.map { $0.int("outputTokens") }
        let latencies = runs.map { $0.real("latencyS") }
        let energies = runs.map { $0.real("energyJ") }
        let sources = runs.map { $0.text("energySource") }
        let peers = runs.map { $0.int("peer") }
        let predictions = runs.map { predictedS($0) ?? .nan }
        // The mode the run was in (nvpmodel's `pmode:0000`), where the robot saw one; otherwise its profile's.
        let powerModes = runs.map { $0.values["powerMode"]?.string ?? powerMode }
        let stored = try await connection.query(
            """
            WITH inserted AS (
              INSERT INTO runs (seq, time, request_id, model, quantization, mode, parallel, input_tokens,
                output_tokens, latency_s, energy_j, energy_source, peer, profile_version, power_mode, device_class,
                predicted_s)
              SELECT s, t, nullif(r, ''), m, q, mo, p, i, o, l, nullif(e, 'NaN'::float8), nullif(so, ''),
                nullif(pe, -1), \(profileVersion), pm, \(deviceClass), nullif(pr, 'NaN'::float8)
              FROM unnest(\(seqs)::bigint[], \(times)::float8[], \(requests)::text[], \(models)::text[],
                \(quantizations)::text[], \(modes)::text[], \(parallels)::bigint[], \(inputs)::bigint[],
                \(outputs)::bigint[], \(latencies)::float8[], \(energies)::float8[], \(sources)::text[],
                \(peers)::bigint[], \(predictions)::float8[], \(powerModes)::text[])
                AS u(s, t, r, m, q, mo, p, i, o, l, e, so, pe, pr, pm)
              ON CONFLICT DO NOTHING RETURNING 1)
            SELECT count(*)::int FROM inserted
            """,
            logger: logger
        )
        return try await stored.single(Int.self, fallback: 0)
    }

    /// Sends outcomes in one transaction, as ``upload(runs:deviceClass:profileVersion:powerMode:)`` does runs.
    public func upload(outcomes: [ObservationStore.UploadRow], profileVersion: String) async throws -> Int {
        guard !outcomes.isEmpty else { return 0 }
        let seqs = outcomes.map(\.seq)
        let times = outcomes.map { $0.values["time"]?.double ?? 0 }
        let peers = outcomes.map { $0.int("peer") }
        let tasks = outcomes.map { $0.text("taskClass") }
        let models = outcomes.map { $0.text("model") }
        let quantizations = outcomes.map { $0.text("quantization") }
        let modes = outcomes.map { $0.text("mode") }
        let budgets = outcomes.map { $0.int("budgetTokens") }
        let capped = outcomes.map { $0.int("capped") == 1 }
        let parallels = outcomes.map { $0.int("parallel") }
        let correct = outcomes.map { $0.int("correct") }
        let samples = outcomes.map { $0.text("sampleOutputTokens") }
        let stored = try await connection.query(
            """
            WITH inserted AS (
              INSERT INTO outcomes (seq, time, peer, task_class, model, quantization, mode, budget_tokens, capped,
                parallel, correct, sample_output_tokens, profile_version)
              SELECT s, t, nullif(pe, -1), tc, m, q, mo, nullif(b, -1), c, p,
                CASE co WHEN 1 THEN true WHEN 0 THEN false END, so, \(profileVersion)
              FROM unnest(\(seqs)::bigint[], \(times)::float8[], \(peers)::bigint[], \(tasks)::text[],
                \(models)::text[], \(quantizations)::text[], \(modes)::text[], \(budgets)::bigint[],
                \(capped)::bool[], \(parallels)::bigint[], \(correct)::bigint[], \(samples)::text[])
                AS u(s, t, pe, tc, m, q, mo, b, c, p, co, so)
              ON CONFLICT DO NOTHING RETURNING 1)
            SELECT count(*)::int FROM inserted
            """,
            logger: logger
        )
        return try await stored.single(Int.self, fallback: 0)
    }

    /// Records how far the robot's own store reaches, so the fleet can show its upload lag, and the last error.
    public func recordProgress(
        localRuns: Int64,
        localOutcomes: Int64,
        lastError: String?,
        robotID: String? = nil
    ) async throws {
        do {
            try await connection.query(
                """
                UPDATE robots SET last_upload = now(), local_runs = \(localRuns), local_outcomes = \(localOutcomes),
                  last_error = \(lastError), robot_id = coalesce(\(robotID), robot_id) WHERE robot = current_user
                """,
                logger: logger
            )
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "42703" {
            // A fleet whose schema predates robot ids (migration 4): the rest is recorded all the same.
            try await connection.query(
                """
                UPDATE robots SET last_upload = now(), local_runs = \(localRuns), local_outcomes = \(localOutcomes),
                  last_error = \(lastError) WHERE robot = current_user
                """,
                logger: logger
            )
        }
    }

    /// The newest fleet version and its body (JSON), if any.
    public func latestVersion() async throws -> (version: Int64, body: String)? {
        let rows = try await connection.query(
            "SELECT version, body::text FROM fleet_versions ORDER BY version DESC LIMIT 1",
            logger: logger
        )
        var result: (Int64, String)?
        for try await row in rows.decode((Int64, String).self) { result = row }
        return result
    }

    /// The newest version as this robot (the connected role) may learn it: its body, whether it was written with
    /// per-robot views, and this robot's view (nil when none of its rows are in it). One statement: the version and
    /// its view are read together.
    public struct RobotVersion: Sendable {
        public var version: Int64
        public var body: String
        public var hasViews: Bool
        public var view: String?
    }

    public func latestVersionForRobot() async throws -> RobotVersion? {
        // A fleet whose schema predates views (not yet upgraded by `fleet init`): its versions cannot leave the
        // robot's own rows out, so none is learnable.
        let upgraded = try await connection.query(
            "SELECT to_regclass('fleet_version_views') IS NOT NULL",
            logger: logger
        ).single(Bool.self, fallback: false)
        guard upgraded else {
            return try await latestVersion().map {
                RobotVersion(version: $0.version, body: $0.body, hasViews: false, view: nil)
            }
        }
        let rows = try await connection.query(
            """
            SELECT v.version, v.body::text, v.views,
              (SELECT w.body::text FROM fleet_version_views w WHERE w.version = v.version AND w.robot = current_user)
            FROM fleet_versions v ORDER BY v.version DESC LIMIT 1
            """,
            logger: logger
        )
        var result: RobotVersion?
        for try await (version, body, views, view) in rows.decode((Int64, String, Bool, String?).self) {
            result = RobotVersion(version: version, body: body, hasViews: views, view: view)
        }
        return result
    }

    /// Each role's reported robot id (roles of one robot are left out of each other's views together).
    public func robotIDs() async throws -> [String: String] {
        let rows = try await connection.query(
            "SELECT robot, robot_id FROM robots WHERE robot_id IS NOT NULL",
            logger: logger
        )
        var result: [String: String] = [:]
        for try await (robot, id) in rows.decode((String, String).self) { result[robot] = id }
        return result
    }

    // MARK: The aggregate's reads and writes

    /// Per robot and variant, the median of measured over predicted latency and the run count, computed by
    /// PostgreSQL over the runs that carry the robot's prediction.
    /// No window: every row's time is after this.
    public static let always = -Double.greatestFiniteMagnitude

    public func robotRatios(since: Double = FleetStore.always) async throws -> [FleetPooling.RobotRatio] {
        let rows = try await connection.query(
            """
            SELECT robot, device_class, coalesce(power_mode, ''), model, quantization,
              percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_s / predicted_s)::float8, count(*)::int
            FROM runs WHERE predicted_s > 0 AND time >= \(since)
            GROUP BY device_class, power_mode, model, quantization, robot ORDER BY 2, 3, 4, 5, 1
            """,
            logger: logger
        )
        var result: [FleetPooling.RobotRatio] = []
        for try await (robot, deviceClass, powerMode, model, quantization, ratio, runs) in rows.decode(
            (String, String, String, String, String, Double, Int).self
        ) {
            result.append(
                FleetPooling.RobotRatio(
                    robot: robot,
                    deviceClass: deviceClass,
                    powerMode: powerMode,
                    model: model,
                    quantization: quantization,
                    medianRatio: ratio,
                    runs: runs
                )
            )
        }
        return result
    }

    /// The number of runs the fleet holds.
    public func runCount(since: Double = FleetStore.always) async throws -> Int {
        let rows = try await connection.query("SELECT count(*)::int FROM runs WHERE time >= \(since)", logger: logger)
        var count = 0
        for try await value in rows.decode(Int.self) { count = value }
        return count
    }

    /// Successes and trials per robot, task class, model, mode and parallel factor (outcomes with a verdict: a k-sample
    /// outcome is the vote's).
    public func outcomesForPooling(since: Double = FleetStore.always) async throws -> [FleetPooling.Tally] {
        let rows = try await connection.query(
            """
            SELECT robot, task_class, model, quantization, mode, coalesce(budget_tokens, -1), capped, parallel,
              count(*) FILTER (WHERE correct)::int, count(*)::int
            FROM outcomes WHERE correct IS NOT NULL AND time >= \(since)
            GROUP BY robot, task_class, model, quantization, mode, budget_tokens, capped, parallel
            ORDER BY 1, 2, 3, 4, 5, 6, 7, 8
            """,
            logger: logger
        )
        var tallies: [FleetPooling.Tally] = []
        for try await (robot, task, model, quantization, mode, budget, capped, parallel, successes, trials)
            in rows.decode((String, String, String, String, String, Int, Bool, Int, Int, Int).self)
        {
            tallies.append(
                FleetPooling.Tally(
                    robot: robot,
                    taskClass: task,
                    model: model,
                    quantization: quantization,
                    mode: mode,
                    budgetTokens: budget < 0 ? nil : budget,
                    capped: capped,
                    parallel: parallel,
                    successes: successes,
                    trials: trials
                )
            )
        }
        return tallies
    }

    /// Each robot's sample output lengths per task class, model, mode and budget: how many, and their quantiles at
    /// ``FleetPooling/lengthLevels`` (computed here, so no sample leaves the server). A sample list that is not
    /// comma-separated counts, or a sample past a hard cap, is left out.
    public func lengthsForPooling(since: Double = FleetStore.always) async throws -> [FleetPooling.LengthSummary] {
        let levels = FleetPooling.lengthLevels
        let rows = try await connection.query(
            """
            SELECT robot, task_class, model, quantization, mode, coalesce(budget_tokens, -1), capped, count(*)::int,
              percentile_cont(\(levels)::float8[]) WITHIN GROUP (ORDER BY tokens)
            FROM outcomes, unnest(string_to_array(sample_output_tokens, ',')::int[]) AS tokens
            WHERE sample_output_tokens ~ '^[0-9]{1,7}(,[0-9]{1,7})*$' AND (NOT capped OR tokens <= budget_tokens)
              AND time >= \(since)
            GROUP BY robot, task_class, model, quantization, mode, budget_tokens, capped
            ORDER BY 1, 2, 3, 4, 5, 6, 7
            """,
            logger: logger
        )
        var summaries: [FleetPooling.LengthSummary] = []
        for try await (robot, task, model, quantization, mode, budget, capped, samples, quantiles)
            in rows.decode((String, String, String, String, String, Int, Bool, Int, [Double]).self)
        {
            summaries.append(
                FleetPooling.LengthSummary(
                    robot: robot,
                    taskClass: task,
                    model: model,
                    quantization: quantization,
                    mode: mode,
                    budgetTokens: budget < 0 ? nil : budget,
                    capped: capped,
                    samples: samples,
                    quantiles: quantiles
                )
            )
        }
        return summaries
    }

    /// What one aggregate wrote, and what it pooled.
    public struct Aggregate: Sendable {
        public var version: Int64
        public var body: JSONValue
        public var changes: JSONValue
        /// Runs the fleet holds (in the window, if one was given).
        public var runs: Int
        /// Per-robot summaries pooled: latency medians, accuracy tallies, length summaries.
        public var robotMedians: Int
        public var tallies: Int
        public var lengthSummaries: Int
        /// Robots given a view of the version (its groups pooled without them).
        public var views: Int
    }

    /// Pools every robot's runs and outcomes into a new version: calibrations first, so that the robots they flag are
    /// left out of accuracy and lengths. Per-robot medians, tallies and length quantiles are computed in PostgreSQL:
    /// no run or sample leaves the server.
    /// With `since` (Unix seconds), only rows from then on count: PostgreSQL reads only the months it spans.
    public func aggregate(
        options: FleetPooling.Options = FleetPooling.Options(),
        since: Double = FleetStore.always
    ) async throws -> Aggregate {
        _ = try await ensurePartitions()
        let ratios = try await robotRatios(since: since)
        let calibrations = FleetPooling.calibrations(ratios, options: options)
        let runs = try await runCount(since: since)
        let flagged = Set(calibrations.flatMap(\.flagged))
        let tallies = try await outcomesForPooling(since: since)
        let summaries = try await lengthsForPooling(since: since)
        let body = FleetPooling.body(
            calibrations: calibrations,
            accuracy: FleetPooling.accuracy(tallies, options: options, excluded: flagged),
            lengths: FleetPooling.lengths(summaries, options: options, excluded: flagged)
        )
        let views = FleetPooling.views(
            tallies: tallies,
            summaries: summaries,
            options: options,
            excluded: flagged,
            robotIDs: try await robotIDs()
        )
        let previous = try await latestVersion().flatMap { try? JSONValue.parse(Array($0.body.utf8)) }
        let changes = FleetPooling.changes(from: previous, to: body)
        let version = try await writeVersion(
            body: body.serialized(),
            changes: changes.serialized(),
            views: JSONValue.object(views.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }).serialized()
        )
        return Aggregate(
            version: version,
            body: body,
            changes: changes,
            runs: runs,
            robotMedians: ratios.count,
            tallies: tallies.count,
            lengthSummaries: summaries.count,
            views: views.count
        )
    }

    /// Writes a new version with each robot's view (`views`: a JSON object, role to view) in one statement: a
    /// robot sees the version with its view, or neither. Views of all but the newest ``viewsKept`` versions are
    /// removed. Returns the version's number.
    public func writeVersion(body: String, changes: String, views: String = "{}") async throws -> Int64 {
        let rows = try await connection.query(
            """
            WITH version AS (
              INSERT INTO fleet_versions (body, changes, views) VALUES (\(body)::jsonb, \(changes)::jsonb, true)
              RETURNING version),
            written AS (
              INSERT INTO fleet_version_views (version, robot, body)
              SELECT version.version, view.key, view.value FROM version, jsonb_each(\(views)::jsonb) AS view)
            SELECT version FROM version
            """,
            logger: logger
        )
        var version: Int64 = 0
        for try await value in rows.decode(Int64.self) { version = value }
        try await connection.query(
            "DELETE FROM fleet_version_views WHERE version <= \(version - Int64(Self.viewsKept))",
            logger: logger
        )
        return version
    }

    /// One line per robot for `fleet status`.
    public struct RobotStatus: Sendable {
        public var robot: String
        public var deviceClass: String
        public var label: String?
        public var runs: Int64
        public var localRuns: Int64
        public var outcomes: Int64
        public var localOutcomes: Int64
        public var lastUploadAgoS: Double?
        public var lastError: String?
        /// The id the robot last reported (its machine id unless its policy names one).
        public var robotID: String?
        /// The newest sequence numbers the fleet has had from it (held or pruned): its lag is its own newest minus
        /// these.
        public var runsSeq: Int64
        public var outcomesSeq: Int64

        public var runsLag: Int64 { max(0, localRuns - runsSeq) }
        public var outcomesLag: Int64 { max(0, localOutcomes - outcomesSeq) }
    }

    public func robots() async throws -> [RobotStatus] {
        let rows = try await connection.query(
            """
            SELECT r.robot, r.device_class, r.label,
              (SELECT count(*) FROM runs WHERE runs.robot = r.robot)::bigint,
              r.local_runs,
              (SELECT count(*) FROM outcomes WHERE outcomes.robot = r.robot)::bigint,
              r.local_outcomes,
              extract(epoch FROM now() - r.last_upload)::float8, r.last_error, r.robot_id,
              greatest((SELECT coalesce(max(seq), 0) FROM runs WHERE runs.robot = r.robot), r.pruned_runs_seq)::bigint,
              greatest((SELECT coalesce(max(seq), 0) FROM outcomes WHERE outcomes.robot = r.robot),
                r.pruned_outcomes_seq)::bigint
            FROM robots r ORDER BY r.robot
            """,
            logger: logger
        )
        var result: [RobotStatus] = []
        for try await (
            robot, deviceClass, label, runs, localRuns, outcomes, localOutcomes, ago, error, robotID, runsSeq,
            outcomesSeq
        ) in rows.decode(
            (String, String, String?, Int64, Int64, Int64, Int64, Double?, String?, String?, Int64, Int64).self
        ) {
            result.append(
                RobotStatus(
                    robot: robot,
                    deviceClass: deviceClass,
                    label: label,
                    runs: runs,
                    localRuns: localRuns,
                    outcomes: outcomes,
                    localOutcomes: localOutcomes,
                    lastUploadAgoS: ago,
                    lastError: error,
                    robotID: robotID,
                    runsSeq: runsSeq,
                    outcomesSeq: outcomesSeq
                )
            )
        }
        return result
    }

    /// The newest versions: number, age and what each changed.
    public func versions(limit: Int) async throws -> [(version: Int64, createdAgoS: Double, changes: String)] {
        let rows = try await connection.query(
            """
            SELECT version, extract(epoch FROM now() - created)::float8, changes::text
            FROM fleet_versions ORDER BY version DESC LIMIT \(limit)
            """,
            logger: logger
        )
        var result: [(Int64, Double, String)] = []
        for try await row in rows.decode((Int64, Double, String).self) { result.append(row) }
        return result
    }
}

extension ObservationStore.UploadRow {
    /// A column as the upload binds it: text ("" for none), an integer (-1 for none), a real (NaN for none); the
    /// statement turns the stand-ins back into NULL.
    func text(_ key: String) -> String { values[key]?.string ?? "" }
    func int(_ key: String) -> Int64 { values[key]?.int ?? -1 }
    func real(_ key: String) -> Double { values[key]?.double ?? .nan }
}

extension PostgresRowSequence {
    /// The one value a statement returns (the last, if several; `fallback` if none).
    func single<T: PostgresDecodable & Sendable>(_ type: T.Type, fallback: T) async throws -> T {
        var result = fallback
        for try await value in decode(T.self) { result = value }
        return result
    }
}

/// A fleet-store failure, in words.
public struct FleetError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
