import CoreMetrics
import EdgePlanCore
import Foundation
import Metrics
import Prometheus

/// The daemon's metrics, through swift-metrics into a Prometheus registry, written as a node_exporter textfile.
///
/// A textfile rather than an HTTP endpoint: the daemon opens no TCP port (its unit denies IP altogether), and
/// node_exporter's textfile collector is how robot fleets already export host metrics. The file is replaced
/// atomically, so the collector never reads half of it.
public final class DaemonMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let plans: CoreMetrics.Counter
    let infeasible: CoreMetrics.Counter
    let reportsAccepted: CoreMetrics.Counter
    let reportsRefused: CoreMetrics.Counter
    let reportsRateLimited: CoreMetrics.Counter
    let planDuration: CoreMetrics.Timer
    let decisionsSampledOut: CoreMetrics.Counter

    /// Bootstraps swift-metrics with a Prometheus factory (once per process) and creates the daemon's metrics.
    public init() {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // A plan takes tens of microseconds: the default buckets start at 5 ms and would put every plan in the first.
        factory.durationHistogramBuckets["edgeplan_plan_duration_seconds"] = Self.planDurationBuckets
        MetricsSystem.bootstrap(factory)
        self.registry = registry
        plans = CoreMetrics.Counter(label: "edgeplan_plans_total")
        infeasible = CoreMetrics.Counter(label: "edgeplan_infeasible_total")
        reportsAccepted = CoreMetrics.Counter(label: "edgeplan_reports_total", dimensions: [("outcome", "accepted")])
        reportsRefused = CoreMetrics.Counter(label: "edgeplan_reports_total", dimensions: [("outcome", "refused")])
        reportsRateLimited = CoreMetrics.Counter(
            label: "edgeplan_reports_total",
            dimensions: [("outcome", "rate_limited")]
        )
        planDuration = CoreMetrics.Timer(label: "edgeplan_plan_duration_seconds")
        decisionsSampledOut = CoreMetrics.Counter(label: "edgeplan_decisions_sampled_out_total")
    }

    /// 10 µs to 10 ms, three buckets a decade (1, 2.5, 5), and 25 and 100 ms for the rare slow plan.
    static let planDurationBuckets: [Duration] =
        [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 25_000, 100_000].map { .microseconds($0) }

    /// Counts a request answered with an error, by the error's name (`InvalidParameter`, `UnknownTask`, ...).
    func countError(kind: String) {
        CoreMetrics.Counter(label: "edgeplan_errors_total", dimensions: [("kind", kind)]).increment()
    }

    /// Sets the gauges from the service's and the watchdog's state (called before each write).
    func refresh(service: PlannerService, watchdog: Watchdog?) {
        let counters = service.currentCounters
        CoreMetrics.Gauge(label: "edgeplan_connections").record(service.connections.current)
        CoreMetrics.Gauge(label: "edgeplan_journal_dropped").record(service.journal?.counters.dropped ?? 0)
        CoreMetrics.Gauge(label: "edgeplan_oversize_frames").record(counters.oversizeFrames)
        CoreMetrics.Gauge(label: "edgeplan_rejected_connections").record(counters.rejectedConnections)
        // The fleet: the version learned, and what the sync service last found (its lag, and whether it is failing).
        if let fleet = watchdog?.fleetJSON, !fleet.isNull {
            CoreMetrics.Gauge(label: "edgeplan_fleet_version").record(fleet["version"]?.intValue ?? 0)
            CoreMetrics.Gauge(label: "edgeplan_fleet_runs_lag").record(fleet["sync"]?["runsLagBefore"]?.intValue ?? 0)
            CoreMetrics.Gauge(label: "edgeplan_fleet_sync_failing").record(
                fleet["sync"]?["lastError"].map { $0.isNull ? 0 : 1 } ?? 0
            )
        }
        // The ledger (policy's ledger on): the runs admitted on the engine and their sequences now, and the runs
        // forgotten at their predicted end or made to yield since the daemon started.
        if service.planner.policy.ledger {
            let snapshot = service.ledger.snapshot(at: PlannerService.monotonicSeconds())
            CoreMetrics.Gauge(label: "edgeplan_ledger_runs").record(snapshot.entries.count)
            CoreMetrics.Gauge(label: "edgeplan_ledger_sequences").record(
                snapshot.entries.reduce(0) { $0 + $1.sequences }
            )
            CoreMetrics.Gauge(label: "edgeplan_ledger_expired_runs").record(snapshot.expired)
            CoreMetrics.Gauge(label: "edgeplan_ledger_preempted_runs").record(snapshot.preempted)
        }
        guard let watchdog, case let .array(variants)? = watchdog.statusJSON["variants"] else { return }
        for variant in variants {
            let name = variant["variant"]?.stringValue ?? "?"
            CoreMetrics.Gauge(label: "edgeplan_calibration_age_seconds", dimensions: [("variant", name)]).record(
                variant["calibrationAgeS"]?.doubleValue ?? 0
            )
            CoreMetrics.Gauge(label: "edgeplan_prediction_error_ratio", dimensions: [("variant", name)]).record(
                (variant["meanAbsErrorPct"]?.doubleValue ?? 0) / 100
            )
            CoreMetrics.Gauge(label: "edgeplan_drifting", dimensions: [("variant", name)]).record(
                variant["state"]?.stringValue == "drifting" ? 1 : 0
            )
        }
        if let watts = watchdog.statusJSON["rails"]?["totalW"]?.doubleValue {
            CoreMetrics.Gauge(label: "edgeplan_rail_power_watts").record(watts)
        }
    }

    /// Writes the Prometheus text format to `path` atomically.
    public func write(to path: String, service: PlannerService, watchdog: Watchdog?) throws {
        refresh(service: service, watchdog: watchdog)
        try AtomicFile.write(registry.emitToString(), to: path)
    }
}
