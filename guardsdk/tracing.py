"""OpenTelemetry spans for guard checks: one ``guardsdk.check`` span per check, in-process and in the service.

guardsdk uses the OpenTelemetry *API* only (``pip install guardsdk[tracing]``); spans go wherever the
application's tracer provider sends them, and nowhere when it configured none (the API's no-op default).
A span carries what the check decided and what it cost — family, model, detector, mode, decision, unsafe and
undecided tasks, scores (``guardsdk.score.<task>``), parse status, failure, tokens, latency, cache hit — and never
the checked text, the model's output or its reasoning. :func:`export_otlp` sends them to an OTLP collector in one
call (the service's ``--otlp-endpoint``).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

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
        **{f"guardsdk.score.{task}": float(score) for task, score in verdict.scores.items()},
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


def export_otlp(endpoint: str, service_name: str = "guardsdk") -> Any:
    """Send every span of this process to an OTLP/HTTP (protobuf) collector: ``endpoint`` is its base URL
    (``http://collector:4318``; ``/v1/traces`` is added where no path is given) or the full traces URL. Adds a batching
    span processor to the application's SDK tracer provider, or sets one up (resource ``service.name``) where the
    application configured none; the exporter reads the standard ``OTEL_EXPORTER_OTLP_*`` variables for the rest
    (headers, certificates, compression). Returns the processor: ``shutdown()`` sends what is left.
    Needs ``pip install "guardsdk[tracing]"``. An endpoint with a user name, password or query string is refused
    (``ValueError``): the exporter logs the URL it posts to; credentials go in ``OTEL_EXPORTER_OTLP_HEADERS``."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or parts.username is not None or parts.password is not None or parts.query:
        raise ValueError("the OTLP endpoint must be an http(s) URL without credentials (user info, query string): "
                         "give them in $OTEL_EXPORTER_OTLP_HEADERS")  # fmt: skip
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ImportError('the OTLP exporter needs pip install "guardsdk[tracing]"') from exc
    url = endpoint if urlsplit(endpoint).path.strip("/") else endpoint.rstrip("/") + "/v1/traces"
    processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=url))
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        trace.set_tracer_provider(provider)
    provider.add_span_processor(processor)
    return processor
