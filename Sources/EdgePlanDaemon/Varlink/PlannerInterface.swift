/// The Varlink interface description of `io.edgeplan.Planner`, served as is by `GetInterfaceDescription`.
public enum PlannerInterface {
    public static let name = "io.edgeplan.Planner"

    public static let description = """
        # Deployment planner for reasoning LLMs on edge GPUs: which model, quantization,
        # length-control mode, token budget and parallel factor meet a request's deadline
        # and energy budget with the highest predicted accuracy.
        interface io.edgeplan.Planner

        # Predictions for a configuration. Energy is checked against the budget at the same percentile as
        # latency, for all samples. accuracySource is measured, interpolated, modeled or learned;
        # accuracyLow..accuracyHigh is its 80 % credible interval; observations counts the reports behind a
        # learned figure. lengthSource is fitted, prior, learned or assumed.
        type Prediction (
          latencyMs: float,
          latencyPercentileMs: float,
          percentile: float,
          energyJ: float,
          energyPercentileJ: float,
          accuracy: float,
          accuracyLow: float,
          accuracyHigh: float,
          accuracySource: string,
          observations: int,
          costUsdPerMTok: float,
          memoryGiB: float,
          missProbability: float,
          meanOutputTokens: float,
          percentileOutputTokens: float,
          capProbability: float,
          lengthSource: string
        )

        # A chosen configuration (a plan); request holds the OpenAI-compatible body and its aggregation. load is
        # the load it was planned against with the policy's ledger on (null otherwise): runsBeside and
        # sequencesBeside admitted before it, peakSequences and meanSequences decoding while it does (its own
        # included), waitMs for free slots, idleLatencyPercentileMs on an idle engine, preempts (request ids of
        # lower-priority runs that must yield) and delayed (admitted runs it makes later: their new ends in ms from
        # now); predicted then holds its latency and its own energy share beside them.
        type Decision (
          task: string,
          requestId: ?string,
          model: string,
          quantization: string,
          mode: string,
          tokenBudget: ?int,
          capped: bool,
          parallel: int,
          inputTokens: int,
          deadlineMs: float,
          energyBudgetJ: ?float,
          predicted: Prediction,
          objective: string,
          explored: bool,
          request: object,
          profileVersion: string,
          policyVersion: string,
          load: ?object
        )

        # One point of a Pareto front.
        type FrontPoint (
          model: string,
          quantization: string,
          mode: string,
          tokenBudget: ?int,
          capped: bool,
          parallel: int,
          accuracy: float,
          accuracyLow: float,
          accuracyHigh: float,
          accuracySource: string,
          observations: int,
          latencyMs: float,
          latencyPercentileMs: float,
          energyJ: float,
          energyPercentileJ: float,
          costUsdPerMTok: float,
          memoryGiB: float,
          meanOutputTokens: float
        )

        # Chooses a configuration for one request. task is any task class of the policy; deadlineMs,
        # energyBudgetJ, inputTokens, minAccuracy and objective default to the policy's values for it
        # (minAccuracy can raise the policy's floor, never lower it). objective is max-accuracy,
        # max-accuracy-lower-bound or min-energy. Without requestId the daemon assigns one; the plan is
        # remembered under it so that Report can name only the id. inputTokens is the prompt as the engine
        # counts it, after its chat template. contextTokens is the engine's context for one sequence (a
        # llama-server slot's n_ctx): the prompt and the request's max_tokens fit in it, or the answer is
        # Infeasible with limit context; without it, the model's context in the profile.
        method Plan(
          task: string,
          deadlineMs: ?float,
          energyBudgetJ: ?float,
          inputTokens: ?int,
          minAccuracy: ?float,
          objective: ?string,
          requestId: ?string,
          contextTokens: ?int
        ) -> (plan: Decision)

        # The accuracy / latency / energy Pareto front of a task at exactly this input length, each point's
        # figures as Plan gives them for a request of that input.
        method Frontier(task: string, inputTokens: int) -> (task: string, inputTokens: int, points: []FrontPoint)

        # Reports the outcome of a plan that ran; only root, the daemon's user and the policy's reporters may
        # (others get org.varlink.service.PermissionDenied). For a remembered plan, requestId and what happened suffice
        # (latencyMs, and any of outputTokens, sampleOutputTokens, correct, energyJ; without output tokens the
        # latency is not judged and predictedLatencyMs is null); other fields, when given,
        # must match the plan. For an unknown id every field is needed and only latency and energy are
        # judged: accuracy and output length are learned from remembered plans only, each once.
        # outputTokens is the longest sample, sampleOutputTokens every sample's length. startedAt is Unix
        # time in seconds; without energyJ the daemon attributes energy from its power rails over
        # [startedAt, startedAt + latency]; attributedEnergyJ is that energy when the rails already cover the window,
        # and null when they cover it only with their next samples: the reply does not wait for them, and the
        # energy is stored with the run once they come. accepted means stored: the reply goes out once the run (and, for a
        # remembered plan, its outcome) is committed to the observation store, so a crash after it loses
        # nothing; judging and refits follow off the request path. learning says what became of the outcome
        # (learned, refused and why, nothing to learn). accepted is false when the queue is full (10,000
        # reports), the peer reports faster than the policy's reporting.max_reports_per_second (dropped and
        # counted; send it again later), or the store could not be written (reason says why). cut says the run
        # was stopped at its deadline: its latency is judged at the lengths streamed by then, which only bound the
        # true ones from below, so they teach no output length. A run that could not have happened (faster than
        # the memory bandwidth allows or 4 times the prediction, or slower than 20 times it: lengths and latency
        # disagree) is stored and counted but teaches nothing. warnings names what was set aside and why: such a
        # latency, or a startedAt outside the plan's window or the last day (then no energy is attributed).
        # ranBeside (with the ledger on): the sequences that decoded on the engine while the run did, its own
        # included (meanSequences, peakSequences); its latency is judged at them, so load this daemon planned is
        # not taken for drift, and energy attributed from the rails (which measure the whole engine) is the run's
        # share of it: its sequences over the mean that decoded. preempted says a higher-priority plan made the run
        # yield (a preempt event named it) and its holder stopped it: it leaves the ledger, is acknowledged, and nothing
        # learns from it, neither latency nor length nor accuracy.
        method Report(
          requestId: string,
          model: ?string,
          quantization: ?string,
          mode: ?string,
          tokenBudget: ?int,
          parallel: ?int,
          inputTokens: ?int,
          outputTokens: ?int,
          sampleOutputTokens: ?[]int,
          latencyMs: float,
          energyJ: ?float,
          startedAt: ?float,
          correct: ?bool,
          cut: ?bool,
          preempted: ?bool
        ) -> (accepted: bool, predictedLatencyMs: ?float, latencyErrorPct: ?float, attributedEnergyJ: ?float, learning: string, reason: ?string,
          warnings: ?[]string, ranBeside: ?object)

        # Version, uptime, loaded profile and policy, counters (errorsByKind: errors by the error's name);
        # fleet: the fleet version learned as the prior (version, priorOutcomes; ownRows: this robot's own rows
        # left out of it, pooledWithout groups pooled from the other robots only, dropped groups only it made)
        # and what `edgeplan fleet sync` last wrote (sync: lastSuccess, lastError, what it sent and the lag
        # before); absent without a fleet.
        # exploration: the policy's (mode, maxLoss, rate, expectedLossCap) and what it did (explored plans,
        # exploredShare of all plans, meanLossPerPlan: expected accuracy given up, a fraction); calibration
        # state, age and error per model; learning: posteriors per task class and model-and-mode group (each
        # group's singleSampleAccuracy is one sample's, at its smallest budget; a plan's accuracy is after
        # its vote; observations counts its outcomes, fleetObservations those of them the fleet's prior gave),
        # refused outcomes, ignored peers. ledger (with the policy's ledger on): the runs admitted on
        # the engine (requestId, task, model, sequences, priority, endInMs and deadlineInMs from now), their
        # sequences, and the runs forgotten at their predicted end and margin (expired) or preempted.
        method Status() -> (
          version: string,
          uptimeS: float,
          device: string,
          profileVersion: string,
          policyVersion: string,
          lastReloadError: ?string,
          plans: int,
          infeasible: int,
          errors: int,
          errorsByKind: object,
          reports: int,
          refusedReports: int,
          rateLimitedReports: int,
          oversizeFrames: int,
          connections: int,
          rejectedConnections: int,
          idleClosed: int,
          reloads: int,
          cachedFronts: int,
          journalDropped: int,
          journalFailed: int,
          exploration: object,
          fleet: ?object,
          calibration: ?object,
          learning: object,
          ledger: ?object
        )

        # The effective policy (defaults filled in) with its version, a hash of its content.
        method GetPolicy() -> (policy: object)

        # Re-reads policy and profile as SIGHUP does. The new policy is checked first: on any error the
        # daemon keeps the last good one and answers ReloadFailed. For the peers that may Report.
        method Reload() -> (profileVersion: string, policyVersion: string)

        # Streams what happens as it happens; call it with "more": true (else org.varlink.service.ExpectedMore). kinds
        # picks among decision, infeasible, report, recalibration, rollback, drift, reload and preempt (default:
        # all). A preempt event names the admitted runs (requestIds) a higher-priority plan (by) made yield: their
        # holders stop them and report them as preempted. The first
        # reply, of kind watching, confirms the subscription. event holds the kind's fields (a decision is a Decision).
        # A watcher that reads too slowly loses events instead of slowing the daemon; dropped counts those it lost
        # since its previous reply, and once it reads again a reply of kind dropped says so at once.
        method Watch(kinds: ?[]string) -> (kind: string, time: float, event: object, dropped: int)

        # A reload found an error; policyVersion is the one still in force.
        error ReloadFailed (message: string, policyVersion: string)
        # No configuration meets the request's limits; limit names which one (deadline, energyBudget, minAccuracy,
        # context, busy, memory or policy), closest the nearest miss. busy: with the ledger on, nothing fits beside
        # the admitted runs; fitsAfterRequestId and fitsAfterMs say after which admitted run's predicted end, and in
        # how long, it would. How far it misses and what was asked are given in the
        # limit's unit: missByMs and requestedMs (the deadline less the safety margin), missByJ and requestedJ,
        # missByAccuracy and requestedAccuracy (fractions), or missByTokens and requestedTokens (the context);
        # the others are absent.
        error Infeasible (task: string, limit: string, message: string, missByMs: ?float, requestedMs: ?float, missByJ: ?float,
          requestedJ: ?float, missByAccuracy: ?float, requestedAccuracy: ?float, missByTokens: ?float,
          requestedTokens: ?float, fitsAfterRequestId: ?string, fitsAfterMs: ?float, closest: object)
        # The task is no task class of the loaded policy and profile; known lists those there are.
        error UnknownTask (task: string, known: []string, message: string)
        # The daemon already serves its limit of connections, in all or for this user; try again later.
        error TooManyConnections (limit: int)
        # The model or quantization is not in the loaded profile.
        error UnknownModel (model: string, message: string)
        # A parameter of the right type whose value is wrong (out of range, inconsistent), or a message that is not
        # Varlink at all (parameter is then empty); message says what is wrong. A missing, unknown or mistyped parameter
        # is org.varlink.service.InvalidParameter.
        error InvalidInput (parameter: string, message: string)
        """
}
