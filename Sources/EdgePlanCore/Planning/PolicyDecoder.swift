/// Reads a policy YAML file; unknown keys and bad values are errors naming file, line and field.
public enum PolicyDecoder {
    public static func decode(_ text: String, file: String) throws -> Policy {
        var root = try YAMLObject.parse(text, file: file)
        try root.expectKind("policy")
        // The version is the content alone: the same policy has the same version wherever it lies (and bundled).
        var policy = Policy(version: ProfileDecoder.contentHash([.init(path: "policy.yaml", text: text)]))
        if var global = try root.optionalObject("global") {
            policy.profileDirectory = try global.optionalString("profile_directory")
            policy.latencyPercentile =
                try global.optionalDouble("latency_percentile", in: 0.5...0.9999) ?? policy.latencyPercentile
            policy.safetyMargin = try global.optionalDouble("safety_margin", in: 0...0.9) ?? policy.safetyMargin
            if global.has("parallel_factors") {
                let factors = try global.strings("parallel_factors").map { raw -> Int in
                    guard let value = Int(raw), (1...256).contains(value) else {
                        throw global.error("parallel_factors", "'\(raw)' is not a parallel factor in 1...256")
                    }
                    return value
                }
                guard factors.contains(1) else { throw global.error("parallel_factors", "must include 1") }
                policy.parallelFactors = Array(Set(factors)).sorted()
            } else {
                _ = try global.optionalStrings("parallel_factors")
            }
            if let basis = try global.optionalString("plan_on") {
                guard let value = LatencyBasis(rawValue: basis) else {
                    throw global.error("plan_on", "unknown latency basis '\(basis)'; use percentile or mean")
                }
                policy.latencyBasis = value
            }
            if let engine = try global.optionalString("engine") {
                guard let kind = EngineKind(rawValue: engine) else {
                    throw global.error(
                        "engine",
                        "unknown engine kind '\(engine)'; use one of \(EngineKind.allCases.map(\.rawValue).joined(separator: ", "))"
                    )
                }
                policy.engine = kind
            }
            if var endpoints = try global.optionalObject("endpoints") {
                for key in endpoints.fieldNames {
                    let url = try endpoints.string(key)
                    guard url.hasPrefix("http://") || url.hasPrefix("https://") || url.hasPrefix("unix:/") else {
                        throw endpoints.error(
                            key,
                            "expected http://HOST:PORT, https://HOST:PORT or unix:/PATH, got '\(url)'"
                        )
                    }
                    policy.endpoints[key] = url
                }
                try endpoints.finish()
            }
            if let ledger = try global.optionalString("ledger") {
                switch ledger {
                case "on": policy.ledger = true
                case "off": policy.ledger = false
                default: throw global.error("ledger", "unknown ledger setting '\(ledger)'; use on or off")
                }
            }
            // explore_max_loss and explore_rate may stay in the file while exploration is off.
            let maxLoss = try global.optionalDouble("explore_max_loss", in: 0...1) ?? 0.05
            let rate = try global.optionalDouble("explore_rate", in: 0...1) ?? 0.1
            if let explore = try global.optionalString("explore") {
                switch explore {
                case "off": policy.explore = .off
                case "thompson": policy.explore = .thompson(maxLoss: maxLoss, rate: rate)
                default: throw global.error("explore", "unknown exploration '\(explore)'; use off or thompson")
                }
            }
            try global.finish()
        }
        if var learning = try root.optionalObject("learning") {
            policy.learning.rememberedPlans =
                try learning.optionalInt("remembered_plans", in: 0...10_000_000) ?? policy.learning.rememberedPlans
            policy.learning.maxEvidencePerPeer =
                try learning.optionalInt("max_evidence_per_peer", in: 1...10_000_000)
                ?? policy.learning.maxEvidencePerPeer
            policy.learning.minPlausibleSuccessRatio =
                try learning.optionalDouble("min_plausible_success_ratio", in: 0...1)
                ?? policy.learning.minPlausibleSuccessRatio
            try learning.finish()
        }
        if var journal = try root.optionalObject("journal") {
            if let level = try journal.optionalString("level") {
                guard let value = JournalPolicy.Level(rawValue: level) else {
                    throw journal.error(
                        "level",
                        "unknown level '\(level)'; use \(JournalPolicy.Level.allCases.map(\.rawValue).joined(separator: ", "))"
                    )
                }
                policy.journal.level = value
            }
            policy.journal.decisionsEvery =
                try journal.optionalInt("decisions_every", in: 1...1_000_000) ?? policy.journal.decisionsEvery
            try journal.finish()
        }
        if var reporting = try root.optionalObject("reporting") {
            policy.reporting = ReportingPolicy(
                users: try reporting.optionalStrings("users") ?? [],
                groups: try reporting.optionalStrings("groups"),
                maxReportsPerSecond: try reporting.optionalDouble("max_reports_per_second", in: 1...1_000_000) ?? 1000
            )
            try reporting.finish()
        }
        if var fleet = try root.optionalObject("fleet") {
            let tls = try fleet.optionalString("tls") ?? "prefer"
            guard ["prefer", "require", "disable"].contains(tls) else {
                throw fleet.error("tls", "unknown TLS mode '\(tls)'; use prefer, require or disable")
            }
            let certificate = try fleet.optionalString("tls_cert_file")
            let key = try fleet.optionalString("tls_key_file")
            if key != nil, certificate == nil {
                throw fleet.error("tls_key_file", "a key without its certificate; give tls_cert_file too")
            }
            if certificate != nil, tls == "disable" {
                throw fleet.error("tls_cert_file", "a client certificate needs TLS; tls is disable")
            }
            if fleet.has("password") {
                throw fleet.error(
                    "password",
                    "a password never goes in the policy; give password_file, or the fleet-password credential"
                )
            }
            policy.fleet = FleetPolicy(
                host: try fleet.string("host"),
                port: try fleet.optionalInt("port", in: 1...65535) ?? 5432,
                database: try fleet.optionalString("database") ?? "edgeplan_fleet",
                user: try fleet.string("user"),
                passwordFile: try fleet.optionalString("password_file"),
                robotID: try fleet.optionalString("robot_id"),
                deviceClass: try fleet.optionalString("device_class"),
                tls: tls,
                tlsCAFile: try fleet.optionalString("tls_ca_file"),
                tlsCertFile: certificate,
                tlsKeyFile: key,
                batchSize: try fleet.optionalInt("batch_size", in: 1...10_000) ?? 500
            )
            try fleet.finish()
        }
        if var defaults = try root.optionalObject("defaults") {
            policy.defaultTask = try decodeTask(&defaults, allowsClassKeys: false)
        }
        if root.has("tasks") {
            for (name, var section) in try root.objectMap("tasks") {
                policy.tasks[name] = try decodeTask(&section, inheriting: policy.defaultTask)
            }
        } else {
            _ = try root.optionalObject("tasks")
        }
        try root.finish()
        return policy
    }

    private static func decodeTask(
        _ object: inout YAMLObject,
        inheriting base: TaskPolicy = TaskPolicy(),
        allowsClassKeys: Bool = true
    ) throws -> TaskPolicy {
        var task = base
        task.like = nil
        if allowsClassKeys {
            task.like = try object.optionalString("like")
        } else if object.has("like") {
            throw object.error("like", "'like' names a task class's benchmark; it belongs under tasks.<class>")
        }
        task.priorWeight = try object.optionalDouble("prior_weight", in: 0.1...1_000_000) ?? task.priorWeight
        task.defaultInputTokens =
            try object.optionalInt("input_tokens", in: 1...PlanRequest.maxInputTokens) ?? task.defaultInputTokens
        if let deadline = try object.optionalString("deadline") {
            do { task.defaultDeadlineS = try QuantityParser.seconds(deadline) } catch let error as EdgePlanError {
                throw object.error("deadline", error.message)
            }
        }
        if let energy = try object.optionalString("energy_budget") {
            do { task.defaultEnergyBudgetJ = try QuantityParser.joules(energy) } catch let error as EdgePlanError {
                throw object.error("energy_budget", error.message)
            }
        }
        if let models = try object.optionalStrings("allowed_models") {
            guard !models.isEmpty else {
                throw object.error("allowed_models", "an empty list allows nothing; leave the key out to allow all")
            }
            task.allowedModels = Set(models)
        }
        if let quants = try object.optionalStrings("allowed_quantizations") {
            task.allowedQuantizations = Set(
                try quants.map { raw in
                    guard let value = Quantization(rawValue: raw) else {
                        throw object.error("allowed_quantizations", Quantization.rule(raw))
                    }
                    return value
                }
            )
        }
        if let modes = try object.optionalStrings("allowed_modes") {
            task.allowedModes = Set(
                try modes.map { raw in
                    guard let value = LengthMode(rawValue: raw) else {
                        throw object.error(
                            "allowed_modes",
                            "unknown mode '\(raw)'; use \(LengthMode.allCases.map(\.rawValue).joined(separator: ", "))"
                        )
                    }
                    return value
                }
            )
        }
        task.maxParallel = try object.optionalInt("max_parallel", in: 1...256) ?? task.maxParallel
        task.priority = try object.optionalInt("priority", in: -100...100) ?? task.priority
        task.minParallel = try object.optionalInt("min_parallel", in: 1...256) ?? task.minParallel
        task.safetyMargin = try object.optionalDouble("safety_margin", in: 0...0.9) ?? task.safetyMargin
        guard task.minParallel <= task.maxParallel else {
            throw object.error(
                "min_parallel",
                "min_parallel \(task.minParallel) is above max_parallel \(task.maxParallel)"
            )
        }
        task.minAccuracy = try object.optionalDouble("min_accuracy", in: 0...1) ?? task.minAccuracy
        if object.holds("chance_margin", word: "off") {
            task.chanceMargin = nil
        } else {
            task.chanceMargin = try object.optionalDouble("chance_margin", in: -1...1) ?? task.chanceMargin
        }
        if let objective = try object.optionalString("objective") {
            guard let value = Objective(rawValue: objective) else {
                throw object.error(
                    "objective",
                    "unknown objective '\(objective)'; use \(Objective.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
            task.objective = value
        }
        try object.finish()
        return task
    }
}
