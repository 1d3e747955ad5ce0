import EdgePlanCore
import Foundation

/// Turns one Varlink call into its reply: `org.varlink.service` and `io.edgeplan.Planner`.
public struct VarlinkDispatcher: Sendable {
    public let service: PlannerService
    public let watchdog: Watchdog?
    /// What `Reload` does: by default the service's reload; the daemon adds what SIGHUP does besides.
    public let reload: @Sendable () -> EdgePlanError?
    public static let version = EdgePlanVersion.string

    public init(service: PlannerService, watchdog: Watchdog? = nil, reload: (@Sendable () -> EdgePlanError?)? = nil) {
        self.service = service
        self.watchdog = watchdog
        self.reload = reload ?? { service.reload() }
    }

    /// What a message asks of its connection: one reply (nil for a `oneway` call), or a stream of events.
    public enum Response {
        case reply(JSONValue?)
        /// A reply already written as JSON bytes (a `Plan`, the hottest reply, is written without a tree).
        case encoded([UInt8])
        /// `Watch`: subscribe the connection to these kinds of events.
        case watch(Set<EventStream.Kind>)
        /// A reply that goes out once what it acknowledges is stored (`Report`).
        case deferred(DeferredReply)
    }

    /// The reply to one message, or nil for a `oneway` call. Never throws: every failure is an error reply.
    /// `peer` is the caller's user id from the socket's credentials. A `Watch` is acknowledged only.
    public func handle(_ frame: some Collection<UInt8>, peer: PeerIdentity = .current) -> JSONValue? {
        switch respond(frame, peer: peer) {
        case let .reply(reply): return reply
        case let .encoded(bytes): return try? JSONValue.parse(bytes)
        case let .watch(kinds): return Self.watching(kinds)
        case let .deferred(reply): return reply.wait()
        }
    }

    /// The first reply of a `Watch` stream: it confirms the subscription.
    public static func watching(_ kinds: Set<EventStream.Kind>) -> JSONValue {
        .fields([
            "parameters": .fields([
                "kind": .string("watching"), "time": .number(Date().timeIntervalSince1970),
                "event": .fields(["kinds": .array(kinds.map(\.rawValue).sorted().map(JSONValue.string))]),
                "dropped": .int(0),
            ]),
            "continues": .bool(true),
        ])
    }

    /// What one message asks for. Never throws: every failure is an error reply.
    public func respond(_ frame: some Collection<UInt8>, peer: PeerIdentity = .current) -> Response {
        let call: JSONValue
        do { call = try JSONValue.parse(frame) } catch {
            let reply = VarlinkError.invalidInput("", "not a Varlink message: \(error)")
            service.countError(reply.name)
            return .reply(reply.json)
        }
        guard let method = call["method"]?.stringValue else {
            let reply = VarlinkError.invalidParameter("method")
            service.countError(reply.name)
            return .reply(reply.json)
        }
        let parameters = call["parameters"] ?? .object([])
        let reply: JSONValue
        do {
            guard case .object = parameters else { throw VarlinkError.invalidParameter("parameters") }
            // The interface description is the schema: unknown, missing and mistyped parameters stop here.
            if let signature = Self.signature(of: method),
                let field = signature.schema.mismatch(parameters, signature.method.input)
            {
                throw VarlinkError.invalidParameter(field)
            }
            if method == "\(PlannerInterface.name).Watch" {
                return .watch(try watchKinds(parameters, more: call["more"]?.boolValue == true))
            }
            if method == "\(PlannerInterface.name).Plan" {
                let plan = try self.plan(parameters)
                return call["oneway"]?.boolValue == true ? .reply(nil) : .encoded(Self.reply(plan))
            }
            if method == "\(PlannerInterface.name).Report" {
                // The reply waits for the store: accepted means committed, not queued.
                let deferred = DeferredReply()
                let result = try report(parameters, peer: peer, deferred: deferred)
                deferred.seal(result)
                return call["oneway"]?.boolValue == true ? .reply(nil) : .deferred(deferred)
            }
            reply = .object([("parameters", try dispatch(method, parameters, peer: peer))])
        } catch let error as VarlinkError {
            if !error.name.hasSuffix(".Infeasible") { service.countError(error.name) }
            reply = error.json
        } catch let error as EdgePlanError {
            let answer = VarlinkError.from(error, parameters: parameters, knownTasks: service.planner.taskClasses)
            service.countError(answer.name)
            reply = answer.json
        } catch {
            let answer = VarlinkError.invalidInput("", "\(error)")
            service.countError(answer.name)
            reply = answer.json
        }
        if call["oneway"]?.boolValue == true { return .reply(nil) }
        return .reply(reply)
    }

    /// The kinds a `Watch` call subscribes to; the call must ask for more replies.
    private func watchKinds(_ parameters: JSONValue, more: Bool) throws -> Set<EventStream.Kind> {
        guard more else { throw VarlinkError("org.varlink.service.ExpectedMore") }
        guard case let .array(names)? = parameters["kinds"] else { return Set(EventStream.Kind.allCases) }
        return Set(
            try names.map { name in
                guard let kind = name.stringValue.flatMap(EventStream.Kind.init(rawValue:)) else {
                    throw VarlinkError.invalidInput(
                        "kinds",
                        "unknown kind \(name.serialized()); kinds are \(EventStream.Kind.allCases.map(\.rawValue).joined(separator: ", "))"
                    )
                }
                return kind
            }
        )
    }

    private func dispatch(_ method: String, _ parameters: JSONValue, peer: PeerIdentity) throws -> JSONValue {
        switch method {
        case "org.varlink.service.GetInfo":
            return .fields([
                "vendor": .string("EdgePlan"), "product": .string("edgeplan"), "version": .string(Self.version),
                "url": .string("https://edgeplan.invalid/"),
                "interfaces": .array([.string("org.varlink.service"), .string(PlannerInterface.name)]),
            ])
        case "org.varlink.service.GetInterfaceDescription":
            let interface = try string(parameters, "interface")
            switch interface {
            case PlannerInterface.name: return .object([("description", .string(PlannerInterface.description))])
            case "org.varlink.service": return .object([("description", .string(Self.serviceDescription))])
            default:
                throw VarlinkError(
                    "org.varlink.service.InterfaceNotFound",
                    .object([("interface", .string(interface))])
                )
            }
        case "io.edgeplan.Planner.Frontier":
            let front = try service.planner.exactFront(
                task: try string(parameters, "task"),
                inputTokens: try int(parameters, "inputTokens")
            )
            return front.json
        case "io.edgeplan.Planner.Status": return status()
        case "io.edgeplan.Planner.GetPolicy": return .object([("policy", service.planner.policy.json)])
        case "io.edgeplan.Planner.Reload":
            // Changing what the daemon believes is for the same peers that may teach it.
            guard service.reporters.allows(peer) else { throw VarlinkError("org.varlink.service.PermissionDenied") }
            if let failure = reload() {
                throw VarlinkError(
                    "\(PlannerInterface.name).ReloadFailed",
                    .fields([
                        "message": .string(failure.description),
                        "policyVersion": .string(service.planner.policy.version),
                    ])
                )
            }
            let planner = service.planner
            return .fields([
                "profileVersion": .string(planner.profile.version), "policyVersion": .string(planner.policy.version),
            ])
        default:
            let interface = method.split(separator: ".").dropLast().joined(separator: ".")
            if interface != PlannerInterface.name && interface != "org.varlink.service" {
                throw VarlinkError(
                    "org.varlink.service.InterfaceNotFound",
                    .object([("interface", .string(interface))])
                )
            }
            throw VarlinkError("org.varlink.service.MethodNotFound", .object([("method", .string(method))]))
        }
    }

    /// `{"parameters":{"plan":…}}`, written straight into bytes.
    public static func reply(_ plan: Plan) -> [UInt8] {
        var writer = JSONWriter(capacity: 1280)
        writer.beginObject()
        writer.key("parameters")
        writer.beginObject()
        writer.key("plan")
        plan.writeJSON(to: &writer)
        writer.endObject()
        writer.endObject()
        return writer.bytes
    }

    private func plan(_ parameters: JSONValue) throws -> Plan {
        let objective = try optionalString(parameters, "objective").map { raw -> Objective in
            guard let value = Objective(rawValue: raw) else { throw VarlinkError.invalidParameter("objective") }
            return value
        }
        let request = PlanRequest(
            task: try string(parameters, "task"),
            deadlineS: try optionalDouble(parameters, "deadlineMs").map { $0 / 1000 },
            energyBudgetJ: try optionalDouble(parameters, "energyBudgetJ"),
            inputTokens: try optionalInt(parameters, "inputTokens"),
            minAccuracy: try optionalDouble(parameters, "minAccuracy"),
            objective: objective,
            requestID: try optionalString(parameters, "requestId"),
            contextTokens: try optionalInt(parameters, "contextTokens")
        )
        switch try service.plan(request) {
        case let .plan(plan):
            return plan
        case let .infeasible(reason):
            throw VarlinkError(
                "\(PlannerInterface.name).Infeasible",
                .object(
                    [
                        ("task", .string(reason.task)), ("limit", .string(reason.limit.rawValue)),
                        ("message", .string(reason.message)),
                    ] + reason.measuredFields + [("closest", reason.closest?.json ?? .object([]))]
                )
            )
        }
    }

    /// A report names a remembered plan by `requestId` (the plan fills in model, mode and the rest) or carries
    /// every field itself. Only remembered plans teach accuracy and length, each once.
    private func report(
        _ parameters: JSONValue,
        peer identity: PeerIdentity,
        deferred: DeferredReply
    ) throws -> JSONValue {
        // Who may teach the daemon: the policy's reporters only. Plan, Frontier and Status stay open to the socket's group.
        guard service.reporters.allows(identity) else {
            service.countRefusedReport()
            throw VarlinkError("org.varlink.service.PermissionDenied")
        }
        let peer = identity.uid
        guard service.admitReport(from: peer) else {
            let rate = service.planner.policy.reporting.maxReportsPerSecond
            return .fields([
                "accepted": .bool(false), "predictedLatencyMs": .null, "latencyErrorPct": .null,
                "attributedEnergyJ": .null,
                "learning": .string(
                    "dropped: this peer reports faster than \(rate.significantDigits(6)) a second (reporting.max_reports_per_second)"
                ),
            ])
        }
        let requestID = try string(parameters, "requestId")
        let remembered = service.memory.entry(requestID)
        let configuration = remembered?.configuration
        // A report that names only a request id must name one this daemon planned (and still remembers).
        if remembered == nil, parameters["model"]?.stringValue == nil {
            throw VarlinkError.invalidInput(
                "requestId",
                "unknown request id '\(requestID)': not planned by this daemon, or forgotten since "
                    + "(it remembers the last \(service.memory.capacity) plans); a report of an unknown plan gives "
                    + "model, quantization, mode, parallel, inputTokens and outputTokens itself"
            )
        }
        let model = try optionalString(parameters, "model") ?? configuration?.variant.model
        guard let model else { throw VarlinkError.invalidParameter("model") }
        let quantization =
            try optionalString(parameters, "quantization").map { raw -> Quantization in
                guard let value = Quantization(rawValue: raw) else {
                    throw VarlinkError.invalidParameter("quantization")
                }
                return value
            } ?? configuration?.variant.quantization
        guard let quantization else { throw VarlinkError.invalidParameter("quantization") }
        let mode =
            try optionalString(parameters, "mode").map { raw -> LengthMode in
                guard let value = LengthMode(rawValue: raw) else { throw VarlinkError.invalidParameter("mode") }
                return value
            } ?? configuration?.mode
        guard let mode else { throw VarlinkError.invalidParameter("mode") }
        let parallel = try optionalInt(parameters, "parallel") ?? configuration?.parallel
        guard let parallel, (1...256).contains(parallel) else { throw VarlinkError.invalidParameter("parallel") }
        let input = try optionalInt(parameters, "inputTokens") ?? remembered?.inputTokens
        guard let input, (1...PlanRequest.maxInputTokens).contains(input) else {
            throw VarlinkError.invalidParameter("inputTokens")
        }
        let budget = try optionalInt(parameters, "tokenBudget") ?? configuration?.budgetTokens
        if let budget, budget <= 0 { throw VarlinkError.invalidParameter("tokenBudget") }
        if let configuration,
            configuration.variant != VariantID(model: model, quantization: quantization) || configuration.mode != mode
                || configuration.parallel != parallel || configuration.budgetTokens != budget
        {
            throw VarlinkError.invalidParameter("requestId")
        }
        var samples: [Int] = []
        if let value = parameters["sampleOutputTokens"], !value.isNull {
            guard case let .array(items) = value, !items.isEmpty, items.count <= parallel else {
                throw VarlinkError.invalidParameter("sampleOutputTokens")
            }
            samples = try items.map { item in
                guard let tokens = item.intValue, (0...10_000_000).contains(tokens) else {
                    throw VarlinkError.invalidParameter("sampleOutputTokens")
                }
                return tokens
            }
        }
        let output = try optionalInt(parameters, "outputTokens") ?? samples.max()
        if let output, !(0...10_000_000).contains(output) { throw VarlinkError.invalidParameter("outputTokens") }
        if let longest = samples.max(), longest != output { throw VarlinkError.invalidParameter("outputTokens") }
        // Without output tokens the latency cannot be judged; for an unknown plan there is then nothing to use.
        if output == nil && remembered == nil { throw VarlinkError.invalidParameter("outputTokens") }
        let latencyMs = try double(parameters, "latencyMs")
        guard latencyMs > 0, latencyMs < 1e9 else { throw VarlinkError.invalidParameter("latencyMs") }
        let energy = try optionalDouble(parameters, "energyJ")
        if let energy, !(energy >= 0 && energy < 1e9) { throw VarlinkError.invalidParameter("energyJ") }
        let correct: Bool?
        if let value = parameters["correct"], !value.isNull {
            guard let flag = value.boolValue else { throw VarlinkError.invalidParameter("correct") }
            correct = flag
        } else {
            correct = nil
        }
        // What the daemon doubted in the report and set aside, each naming its field.
        var warnings: [String] = []
        var startedAt = try optionalDouble(parameters, "startedAt")
        if let started = startedAt,
            let problem = Plausibility.startProblem(
                startedAt: started,
                latencyS: latencyMs / 1000,
                now: Date().timeIntervalSince1970,
                plannedAt: remembered.flatMap { $0.plannedAtS > 0 ? Double($0.plannedAtS) : nil }
            )
        {
            // Ignored rather than refused: the rest of the report still holds, the rails attribute nothing to it.
            warnings.append("startedAt ignored, no energy attributed: \(problem)")
            startedAt = nil
        }
        var cut = false
        if let value = parameters["cut"], !value.isNull {
            guard let flag = value.boolValue else { throw VarlinkError.invalidParameter("cut") }
            cut = flag
        }
        if let value = parameters["preempted"], !value.isNull {
            guard let flag = value.boolValue else { throw VarlinkError.invalidParameter("preempted") }
            if flag {
                // Stopped because a higher-priority plan made it yield: its latency says nothing of the engine's
                // pace and its samples nothing of the task. It leaves the ledger, and nothing learns from it.
                let beside = service.ledger.finish(requestID, at: PlannerService.monotonicSeconds())
                _ = service.memory.markReported(requestID)
                service.countReport()
                service.events.publish(.report) {
                    .fields([
                        "requestId": .string(requestID), "peer": .int(Int(peer)), "model": .string(model),
                        "quantization": .string(quantization.rawValue), "latencyMs": .number(latencyMs),
                        "preempted": .bool(true), "accepted": .bool(true),
                        "learning": .string("nothing to learn: preempted"),
                    ])
                }
                return .fields([
                    "accepted": .bool(true), "predictedLatencyMs": .null, "latencyErrorPct": .null,
                    "attributedEnergyJ": .null, "learning": .string("nothing to learn: preempted"),
                    "warnings": warnings.isEmpty ? .null : .array(warnings.map(JSONValue.string)),
                    "ranBeside": beside.map { beside in
                        .fields([
                            "meanSequences": .number(beside.meanSequences), "peakSequences": .int(beside.peakSequences),
                        ])
                    } ?? .null,
                ])
            }
        }
        var predicted: Double?
        var attributed: Double?
        var implausible: String?
        var queued = true
        // What ran beside it on the engine, from the ledger of admitted runs (absent with the ledger off).
        let beside = service.ledger.finish(requestID, at: PlannerService.monotonicSeconds())
        if let output {
            var outcome = OutcomeReport(
                requestID: requestID,
                model: model,
                quantization: quantization,
                mode: mode,
                tokenBudget: budget,
                parallel: parallel,
                inputTokens: input,
                outputTokens: output,
                latencyS: latencyMs / 1000,
                energyJ: energy,
                startedAt: startedAt,
                correct: correct,
                sampleOutputTokens: samples,
                peer: peer
            )
            if let beside, beside.meanSequences > Double(parallel) + 0.05 {
                outcome.runningSequences = Int(beside.meanSequences.rounded(.up))
                outcome.energyShare = Double(parallel) / beside.meanSequences
            }
            let judged = try service.report(outcome)
            predicted = judged.predictedS
            if let problem = judged.implausible {
                implausible = problem
                warnings.append("latencyMs implausible, judged by no fit and learned from not at all: \(problem)")
            }
            if let watchdog {
                let stored = deferred.expect()
                let recorded = watchdog.record(outcome, done: stored, attributed: { deferred.setAttributedEnergy($0) })
                queued = recorded.queued
                attributed = recorded.attributedJ
                if !queued { stored(nil) }
            }
        } else {
            _ = try service.planner.profile.variant(model: model, quantization: quantization)
            service.countReport()
        }
        // Learning: only a remembered plan, reported once, with something to learn from.
        var learning: String
        // A cut run's lengths only bound the true ones from below: they teach no length (the latency used them).
        if cut { samples = [] }
        if let implausible {
            // A run that could not have happened teaches neither lengths nor accuracy (and may be sent again, corrected).
            learning = "refused: \(Learner.Refusal.implausibleLatency.rawValue): \(implausible)"
            if remembered != nil { service.countRefusedOutcome(.implausibleLatency) }
        } else if correct == nil && (samples.isEmpty && (parallel > 1 || remembered == nil || cut)) {
            learning = "nothing to learn"
        } else if let remembered {
            if service.memory.markReported(requestID) {
                let tokens = samples.isEmpty ? (parallel == 1 && !cut ? output.map { [$0] } ?? [] : []) : samples
                let learned = LearningOutcome(
                    taskClass: remembered.taskClass,
                    configuration: remembered.configuration,
                    correct: correct,
                    sampleOutputTokens: tokens,
                    peer: peer,
                    time: Date().timeIntervalSince1970
                )
                if let watchdog {
                    let stored = deferred.expect()
                    let teaches = watchdog.learn(learned) { failure, refusals in
                        // The reply goes out after this: it can say what the learner did with the outcome.
                        deferred.setLearning(
                            refusals.isEmpty
                                ? "learned" : "refused: " + refusals.map(\.rawValue).joined(separator: ", ")
                        )
                        stored(failure)
                    }
                    if teaches {
                        learning = "learned"
                    } else {
                        stored(nil)
                        learning = "dropped: the learning queue is full"
                    }
                } else {
                    let refusals = service.learn(learned)
                    learning =
                        refusals.isEmpty ? "learned" : "refused: " + refusals.map(\.rawValue).joined(separator: ", ")
                }
            } else {
                learning = "already reported"
            }
        } else {
            learning = "unknown request id: only remembered plans teach accuracy and length"
        }
        service.events.publish(.report) {
            .fields([
                "requestId": .string(requestID), "peer": .int(Int(peer)), "model": .string(model),
                "quantization": .string(quantization.rawValue),
                "latencyMs": .number(latencyMs), "predictedLatencyMs": predicted.map { .number($0 * 1000) } ?? .null,
                "outputTokens": output.map(JSONValue.int) ?? .null, "correct": correct.map(JSONValue.bool) ?? .null,
                "accepted": .bool(queued), "learning": .string(learning),
            ])
        }
        return .fields([
            "accepted": .bool(queued), "predictedLatencyMs": predicted.map { .number($0 * 1000) } ?? .null,
            "latencyErrorPct": predicted.map { .number((latencyMs / 1000 - $0) / $0 * 100) } ?? .null,
            "attributedEnergyJ": attributed.map(JSONValue.number) ?? .null,
            "learning": .string(learning),
            "warnings": warnings.isEmpty ? .null : .array(warnings.map(JSONValue.string)),
            "ranBeside": beside.map { beside in
                .fields([
                    "meanSequences": .number(beside.meanSequences), "peakSequences": .int(beside.peakSequences),
                ])
            } ?? .null,
        ])
    }

    private func status() -> JSONValue {
        let planner = service.planner
        let counters = service.currentCounters
        return .fields([
            "version": .string(Self.version), "uptimeS": .number(Date().timeIntervalSince(service.startedAt)),
            "device": .string(planner.profile.device.name), "profileVersion": .string(planner.profile.version),
            "policyVersion": .string(planner.policy.version),
            "lastReloadError": service.lastReloadError.map(JSONValue.string) ?? .null,
            "plans": .int(counters.plans), "infeasible": .int(counters.infeasible), "errors": .int(counters.errors),
            "errorsByKind": .object(counters.errorsByKind.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) }),
            "reports": .int(counters.reports), "refusedReports": .int(counters.refusedReports),
            "rateLimitedReports": .int(counters.rateLimitedReports), "oversizeFrames": .int(counters.oversizeFrames),
            "connections": .int(service.connections.current), "rejectedConnections": .int(counters.rejectedConnections),
            "idleClosed": .int(counters.idleClosed), "reloads": .int(counters.reloads),
            "cachedFronts": .int(planner.cachedFronts),
            "journalDropped": .int(service.journal?.counters.dropped ?? 0),
            "journalFailed": .int(service.journal?.counters.failed ?? 0),
            "exploration": exploration(planner.policy.explore, counters),
            "fleet": watchdog?.fleetJSON ?? .null,
            "calibration": watchdog?.statusJSON ?? .null,
            "learning": learningStatus(),
            "ledger": planner.policy.ledger ? ledgerStatus() : .null,
        ])
    }

    /// The runs admitted on the engine, as `Status` shows them.
    private func ledgerStatus() -> JSONValue {
        let now = PlannerService.monotonicSeconds()
        let snapshot = service.ledger.snapshot(at: now)
        return .fields([
            "runs": .array(
                snapshot.entries.map { entry in
                    .fields([
                        "requestId": .string(entry.requestID), "task": .string(entry.taskClass),
                        "model": .string(entry.model), "sequences": .int(entry.sequences),
                        "priority": .int(entry.priority), "endInMs": .number((entry.endAt - now) * 1000),
                        "deadlineInMs": .number((entry.deadlineAt - now) * 1000),
                    ])
                }
            ),
            "sequences": .int(snapshot.entries.reduce(0) { $0 + $1.sequences }),
            "expired": .int(snapshot.expired), "preempted": .int(snapshot.preempted),
        ])
    }

    /// The policy's exploration and what it did: the share of plans explored and the accuracy they gave up.
    private func exploration(_ explore: Exploration, _ counters: PlannerService.Counters) -> JSONValue {
        var fields: [(String, JSONValue)] = []
        switch explore {
        case .off: fields.append(("mode", .string("off")))
        case let .thompson(maxLoss, rate):
            fields += [("mode", .string("thompson")), ("maxLoss", .number(maxLoss)), ("rate", .number(rate))]
        }
        let plans = max(counters.plans, 1)
        return .object(
            fields + [
                ("expectedLossCap", .number(explore.expectedLossCap)),
                ("explored", .int(counters.exploredPlans)),
                ("exploredShare", .number(Double(counters.exploredPlans) / Double(plans))),
                ("meanLossPerPlan", .number(counters.explorationLoss / Double(plans))),
            ]
        )
    }

    /// Posteriors per task class and group, refusals, and peers whose reports are ignored.
    private func learningStatus() -> JSONValue {
        let learner = service.learning
        let planner = service.planner
        /// The learned single-sample estimate of a group at its smallest budget.
        func learned(_ key: Learner.GroupKey) -> AccuracyEstimate? {
            planner.overlay.accuracy
                .filter {
                    $0.key.taskClass == key.taskClass && $0.key.configuration.parallel == 1
                        && $0.key.configuration.variant == key.group.variant
                        && $0.key.configuration.mode == key.group.mode
                        && $0.key.configuration.capped == key.group.capped
                }
                .min { ($0.key.configuration.budgetTokens ?? 0) < ($1.key.configuration.budgetTokens ?? 0) }?.value
        }
        return .fields([
            "rememberedPlans": .int(service.memory.count),
            "groups": .array(
                learner.accuracy.keys.sorted().map { key in
                    let posterior = learner.accuracy[key]!
                    return .fields([
                        "task": .string(key.taskClass), "model": .string(key.group.variant.model),
                        "quantization": .string(key.group.variant.quantization.rawValue),
                        "mode": .string(key.group.mode.rawValue),
                        "observations": .int(posterior.observations), "successes": .int(posterior.successes),
                        "fleetObservations": .int(posterior.observations(from: FleetPrior.peer)),
                        "logitShift": .number(posterior.quantile(0.5)),
                        "logitShiftLow": .number(posterior.quantile(0.1)),
                        "logitShiftHigh": .number(posterior.quantile(0.9)),
                        "singleSampleAccuracy": learned(key).map { .number($0.accuracy) } ?? .null,
                        "singleSampleLow": learned(key).map { .number($0.low) } ?? .null,
                        "singleSampleHigh": learned(key).map { .number($0.high) } ?? .null,
                    ])
                }
            ),
            "lengthGroups": .int(learner.lengths.count),
            "heldBack": .array(learner.heldBack.sorted().map(JSONValue.string)),
            "refused": .object(Learner.Refusal.allCases.map { ($0.rawValue, .int(learner.refused[$0] ?? 0)) }),
            "ignoredPeers": .array(learner.peers.filter(\.value.ignored).keys.sorted().map { .int(Int($0)) }),
        ])
    }

    // MARK: Typed parameter access; a wrong or missing type is InvalidParameter naming the field.

    private func string(_ p: JSONValue, _ key: String) throws -> String {
        guard let value = p[key]?.stringValue else { throw VarlinkError.invalidParameter(key) }
        return value
    }

    private func optionalString(_ p: JSONValue, _ key: String) throws -> String? {
        guard let value = p[key], !value.isNull else { return nil }
        guard let string = value.stringValue else { throw VarlinkError.invalidParameter(key) }
        return string
    }

    private func double(_ p: JSONValue, _ key: String) throws -> Double {
        guard let value = p[key]?.doubleValue, value.isFinite else { throw VarlinkError.invalidParameter(key) }
        return value
    }

    private func optionalDouble(_ p: JSONValue, _ key: String) throws -> Double? {
        guard let value = p[key], !value.isNull else { return nil }
        guard let number = value.doubleValue, number.isFinite else { throw VarlinkError.invalidParameter(key) }
        return number
    }

    private func int(_ p: JSONValue, _ key: String) throws -> Int {
        guard let value = p[key]?.intValue else { throw VarlinkError.invalidParameter(key) }
        return value
    }

    private func optionalInt(_ p: JSONValue, _ key: String) throws -> Int? {
        guard let value = p[key], !value.isNull else { return nil }
        guard let number = value.intValue else { throw VarlinkError.invalidParameter(key) }
        return number
    }

    /// The schemas of the interfaces served, parsed from their descriptions.
    static let schemas = [
        try! VarlinkSchema(parsing: PlannerInterface.description), try! VarlinkSchema(parsing: serviceDescription),
    ]

    /// The schema and method a fully qualified method name refers to.
    static func signature(of method: String) -> (schema: VarlinkSchema, method: VarlinkSchema.Method)? {
        guard let dot = method.lastIndex(of: ".") else { return nil }
        let interface = method[..<dot]
        let name = String(method[method.index(after: dot)...])
        guard let schema = schemas.first(where: { $0.name == interface }), let found = schema.methods[name] else {
            return nil
        }
        return (schema, found)
    }

    static let serviceDescription = """
        # The Varlink Service Interface is provided by every varlink service.
        interface org.varlink.service

        method GetInfo() -> (vendor: string, product: string, version: string, url: string, interfaces: []string)

        method GetInterfaceDescription(interface: string) -> (description: string)

        error InterfaceNotFound (interface: string)
        error MethodNotFound (method: string)
        error MethodNotImplemented (method: string)
        error InvalidParameter (parameter: string)
        error PermissionDenied ()
        error ExpectedMore ()
        """
}
