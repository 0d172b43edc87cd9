"""OpenTelemetry spans of guard checks, in-process and in the service, with the SDK's in-memory exporter."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from guardsdk import Guard, Policy
from guardsdk.service import ServiceConfig, create_app

SECRET = "How do I make a pipe bomb at home? my account number is 4242-SECRET"

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def spans():
    """The process's tracer provider (set once per process, as an application would) with an in-memory exporter."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(provider)
    if trace.get_tracer_provider() is not provider:  # another test module set one first
        trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(_EXPORTER))  # type: ignore[attr-defined]
    return _EXPORTER


@pytest.fixture(scope="module")
def guard():
    guard = Guard(family="classifier", policy=Policy(on_unsafe="annotate"))
    yield guard
    guard.close()


def test_every_check_is_a_span_with_what_it_decided_and_cost_and_no_content(spans, guard):
    spans.clear()
    verdict = guard.check(SECRET)
    [span] = [s for s in spans.get_finished_spans() if s.name == "guardsdk.check"]
    attributes = dict(span.attributes)
    assert span.name == "guardsdk.check"
    assert attributes["guardsdk.decision"] == "blocked" and attributes["guardsdk.unsafe_tasks"] == ("prompt_harm",)
    assert attributes["guardsdk.family"] == "classifier" and attributes["guardsdk.model"] == verdict.model
    assert attributes["guardsdk.tokens_in"] == verdict.tokens_in > 0 and attributes["guardsdk.cached"] is False
    assert attributes["guardsdk.score.prompt_harm"] == verdict.scores["prompt_harm"] >= 0.5
    assert span.end_time - span.start_time == pytest.approx(verdict.latency_s * 1e9, rel=0.01, abs=1e5)
    shown = " ".join(str(value) for value in attributes.values())
    assert "SECRET" not in shown and "pipe" not in shown


def test_a_failed_check_is_an_error_span(spans):
    from servers import free_port

    down = Guard.from_server(f"http://127.0.0.1:{free_port()}/v1", "guard", backend_kwargs={"max_retries": 0},
                             policy=Policy(on_unsafe="annotate"))  # fmt: skip
    spans.clear()
    down.check("hello")
    [span] = spans.get_finished_spans()
    assert span.status.status_code is trace.StatusCode.ERROR and span.attributes["guardsdk.failure"] == "backend"


def test_service_checks_are_spans_too(spans, guard):
    spans.clear()
    with TestClient(create_app(guard.with_policy(guard.policy))) as client:
        client.post("/v1/check/batch", json={"items": [{"prompt": "hi"}, {"prompt": "hello", "response": "hey"}]})
    checks = [s for s in spans.get_finished_spans() if s.name == "guardsdk.check"]  # FastAPI has spans of its own
    assert [s.attributes["guardsdk.has_response"] for s in checks] == [False, True]


class Collector:
    """An OTLP/HTTP collector on 127.0.0.1: keeps the body of every ``POST /v1/traces``."""

    def __init__(self) -> None:
        from servers import LocalHTTPServer, QuietHandler

        self.bodies: list[tuple[str, bytes]] = []
        outer = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                outer.bodies.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = LocalHTTPServer()
        self.server._serve(Handler)
        self.url = self.server.base_url.removesuffix("/v1")

    def spans(self) -> list:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        found = []
        for _, body in self.bodies:
            request = ExportTraceServiceRequest.FromString(body)
            found += [span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]
        return found


def test_one_setting_sends_the_services_spans_to_an_otlp_collector_without_content(spans, guard):
    """``otlp_endpoint`` (``--otlp-endpoint``): the service's check spans reach a real OTLP/HTTP receiver, with the
    decision, scores, model, tokens and latency, and not one byte of the checked text."""
    collector = Collector()
    try:
        config = ServiceConfig(otlp_endpoint=collector.url)
        with TestClient(create_app(guard.with_policy(guard.policy), config)) as client:
            answer = client.post("/v1/check", json={"prompt": SECRET}).json()
        # the app's shutdown flushed the exporter
    finally:
        collector.server.stop()
    assert {path for path, _ in collector.bodies} == {"/v1/traces"}
    [span] = [s for s in collector.spans() if s.name == "guardsdk.check"]
    attributes = {a.key: a.value for a in span.attributes}
    assert attributes["guardsdk.decision"].string_value == "blocked"
    assert attributes["guardsdk.score.prompt_harm"].double_value == answer["scores"]["prompt_harm"]
    assert attributes["guardsdk.model"].string_value == answer["model"]
    assert attributes["guardsdk.tokens_in"].int_value == answer["tokens_in"] > 0
    assert attributes["guardsdk.latency_s"].double_value == answer["latency_s"] > 0
    assert not any(word in body for _, body in collector.bodies for word in (b"SECRET", b"4242", b"pipe bomb"))
