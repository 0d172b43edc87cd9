"""OpenTelemetry spans for guard checks: one ``guardsdk.check`` span per check, in-process and in the service.

guardsdk uses the OpenTelemetry *API* only (``pip install guardsdk[tracing]``); spans go wherever the
application's tracer provider sends them, and nowhere when it configured none (the API's no-op default).
A span carries what the check decided and what it cost — family, model, detector, mode, decision, unsafe and
undecided tasks, parse status, failure, tokens, latency, cache hit — and never the checked text, the model's
output or its reasoning.
"""

from __future__ import annotations

import time
from typing import Any

from guardsdk.verdict import Verdict

try:
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode
except ImportError:  # tracing is optional
    trace = None  # type: ignore[assignment]

#: The API's proxy tracer: it follows whichever provider the application sets, before or after this import.
_TRACER = trace.get_tracer("guardsdk") if trace is not None else None

SPAN_NAME = "guardsdk.check"


def span_attributes(verdict: Verdict, mode: str) -> dict[str, Any]:
    """The attributes of a check's span: no content."""
    decision = verdict.decision
    return {
        "guardsdk.family": verdict.family,
        "guardsdk.model": verdict.model,
        "guardsdk.detectors.generative": verdict.detector,
        "guardsdk.mode": mode,
        "guardsdk.decision": "none" if decision is None else "allowed" if decision.allowed else "blocked",
        "guardsdk.fail_open": bool(decision and decision.fail_open),
        "guardsdk.unsafe_tasks": list(decision.unsafe) if decision else [],
        "guardsdk.undecided_tasks": list(decision.undecided) if decision else [],
        "guardsdk.parse_status": verdict.parse_status.value,
        "guardsdk.failure": "" if verdict.failure is None else verdict.failure.value,
        "guardsdk.tokens_in": verdict.tokens_in,
        "guardsdk.tokens_out": verdict.tokens_out,
        "guardsdk.latency_s": verdict.latency_s,
        "guardsdk.cached": verdict.cached,
        "guardsdk.has_response": verdict.has_response,
        "guardsdk.reasoning_conflict": list(verdict.reasoning_conflict),
    }


def record_check(verdict: Verdict, mode: str) -> None:
    """Emit the span of one decided check (ending now, starting ``latency_s`` ago) under the current context."""
    if _TRACER is None:
        return
    end = time.time_ns()
    span = _TRACER.start_span(SPAN_NAME, start_time=end - int(verdict.latency_s * 1e9),
                             attributes=span_attributes(verdict, mode))  # fmt: skip
    if verdict.failure is not None:
        span.set_status(Status(StatusCode.ERROR, verdict.failure.value))
    span.end(end_time=end)
