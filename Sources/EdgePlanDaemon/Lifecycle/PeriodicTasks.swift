import ServiceLifecycle

/// Work the daemon repeats at fixed intervals (calibration ticks, metrics files, systemd watchdog pings),
/// each on its own schedule, until a graceful shutdown.
struct PeriodicTasks: Service, CustomStringConvertible {
    struct Task: Sendable {
        let interval: Duration
        let body: @Sendable () -> Void
    }

    let tasks: [Task]
    var description: String { "periodic" }

    func run() async {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for task in tasks {
                    group.addTask {
                        while !_Concurrency.Task.isCancelled {
                            task.body()
                            try? await _Concurrency.Task.sleep(for: task.interval)
                        }
                    }
                }
            }
        }
    }
}
