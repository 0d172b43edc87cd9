"""Prometheus metrics of a guard service, fed by the guard's observers (every decided check) and the app."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from guardsdk.verdict import Failure, Verdict

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def _decision(verdict: Verdict) -> str:
    decision = verdict.decision
    if decision is None:
        return "none"
    if decision.fail_open:
        return "failed_open"
    if decision.allowed:
        return "allowed"
    return "blocked_unsafe" if decision.unsafe else "blocked_undecided"


class ServiceMetrics:
    """The service's metrics, in a registry of its own (so several apps can live in one process)."""

    def __init__(self, queue_depth: Callable[[], float], in_flight: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.checks = Counter("guardsdk_checks", "Decided checks, by decision and by the checked text",
                              ["decision", "task"], registry=r)  # fmt: skip
        self.unsafe = Counter("guardsdk_unsafe_findings", "Gated tasks found unsafe", ["task"], registry=r)
        self.undecided = Counter("guardsdk_undecided", "Checks with a gated task left undecided", registry=r)
        self.failed_open = Counter("guardsdk_failed_open", "Undecided checks allowed by fail-open", registry=r)
        self.truncated = Counter("guardsdk_truncated", "Checks with a cut input or output", registry=r)
        self.cache_hits = Counter("guardsdk_cache_hits", "Checks answered from the verdict cache", registry=r)
        self.backend_errors = Counter("guardsdk_backend_errors", "Checks whose backend failed", registry=r)
        self.deadlines = Counter("guardsdk_deadlines", "Checks or requests past their deadline", registry=r)
        self.tokens = Counter("guardsdk_tokens", "Guard model tokens", ["direction"], registry=r)
        self.check_latency = Histogram("guardsdk_check_latency_seconds", "Latency of one check",
                                       buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.requests = Counter("guardsdk_requests", "HTTP requests by route and status", ["route", "status"],
                                registry=r)  # fmt: skip
        self.request_latency = Histogram("guardsdk_request_latency_seconds", "Latency of one request", ["route"],
                                         buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.overloaded = Counter("guardsdk_overloaded", "Requests refused with 429", registry=r)
        self.unchecked_fields = Counter("guardsdk_unchecked_fields", "Proxy body fields passed on unchecked (opt-in)",
                                        ["field"], registry=r)  # fmt: skip
        self.reasoning_conflicts = Counter("guardsdk_reasoning_conflicts", "Verdicts whose reasoning argues against "
                                           "their label (an audit flag)", ["task"], registry=r)  # fmt: skip
        self.batch_size = Histogram("guardsdk_batch_size", "Checks per coalesced detector call (micro-batching)",
                                    buckets=BATCH_BUCKETS, registry=r)  # fmt: skip
        self.batch_isolations = Counter("guardsdk_batch_isolations", "Batches that failed as a whole and were "
                                        "rerun request by request", registry=r)  # fmt: skip
        self.disconnects = Counter("guardsdk_stream_disconnects", "Streams the client left early", registry=r)
        Gauge("guardsdk_queue_depth", "Requests waiting for a slot", registry=r).set_function(queue_depth)
        Gauge("guardsdk_in_flight", "Requests holding a slot", registry=r).set_function(in_flight)

    def observe(self, verdict: Verdict) -> None:
        """Count one decided check (a guard observer)."""
        decision = verdict.decision
        self.checks.labels(_decision(verdict), "response" if verdict.has_response else "prompt").inc()
        for task in decision.unsafe if decision else ():
            self.unsafe.labels(task).inc()
        if decision is not None and decision.undecided:
            self.undecided.inc()
        if decision is not None and decision.fail_open:
            self.failed_open.inc()
        if verdict.truncated:
            self.truncated.inc()
        for task in verdict.reasoning_conflict:
            self.reasoning_conflicts.labels(task).inc()
        if verdict.cached:
            self.cache_hits.inc()
            return  # a hit ran no model: no tokens, no model latency
        if verdict.failure is Failure.BACKEND:
            self.backend_errors.inc()
        elif verdict.failure is Failure.DEADLINE:
            self.deadlines.inc()
        self.tokens.labels("in").inc(verdict.tokens_in)
        self.tokens.labels("out").inc(verdict.tokens_out)
        self.check_latency.observe(verdict.latency_s)

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
