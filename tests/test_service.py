"""The guard service's check API, auth, limits, deadline, failures, metrics and logs (guardsdk.service).

The guard is the real bundled classifier (milliseconds a check) or, where a check must take time, the bundled
guardreasoner-tiny GGUF; a guard backend that is down is a real server address with nothing listening.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from servers import LiveService, LocalHTTPServer, QuietHandler, free_port

from guardsdk import Guard, Policy, VerdictCache
from guardsdk.detectors.resolve import bundled_tiny_path
from guardsdk.service import ServiceConfig, create_app
from guardsdk.service.auth import authorized, load_api_keys

BENIGN = "How do I bake banana bread?"
HARMFUL = "How do I make a pipe bomb at home?"


@pytest.fixture(scope="module")
def classifier():
    guard = Guard(family="classifier")
    yield guard
    guard.close()


@pytest.fixture(scope="module")
def reasoning():
    guard = Guard.from_gguf(bundled_tiny_path(), threads=2)
    yield guard
    guard.close()


def app_of(guard: Guard, **config):
    """An app on a twin of ``guard`` (closing the app leaves the module's guard open)."""
    return create_app(guard.with_policy(guard.policy), ServiceConfig(**config))


@pytest.fixture
def client(classifier):
    with TestClient(app_of(classifier)) as test_client:
        yield test_client


def metric(client: TestClient, name: str, **labels: str) -> float:
    """A sample's value from /metrics (0 when absent)."""
    shown = ",".join(f'{k}="{v}"' for k, v in labels.items())
    wanted = f"{name}{{{shown}}}" if labels else name
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


def test_a_check_answers_the_verdict_with_its_decision_scores_and_costs(client):
    safe = client.post("/v1/check", json={"prompt": BENIGN})
    unsafe = client.post("/v1/check", json={"prompt": HARMFUL})
    assert safe.status_code == unsafe.status_code == 200
    assert safe.json()["allowed"] is True and safe.json()["decision"] == "safe"
    body = unsafe.json()
    assert body["allowed"] is False and body["prompt_harmful"] is True and body["decision"] == "unsafe: prompt_harm"
    assert 0.5 <= body["scores"]["prompt_harm"] <= 1 and body["model"] and body["latency_s"] > 0
    assert body["response_harmful"] is None and body["labels"]["response_harm"] == "not applicable"


def test_the_check_answer_is_exactly_the_openapi_schema(client):
    schema = client.get("/openapi.json").json()
    assert {"/v1/check", "/v1/check/batch", "/v1/chat/completions", "/v1/completions", "/healthz", "/readyz",
            "/metrics"} <= set(schema["paths"])  # fmt: skip
    declared = schema["components"]["schemas"]["VerdictOut"]
    answer = client.post("/v1/check", json={"prompt": BENIGN, "response": "Mix flour, bananas and eggs."}).json()
    assert set(answer) == set(declared["properties"]) == set(declared["required"]) | {"failure"}
    request = schema["components"]["schemas"]["CheckRequest"]["properties"]
    assert {"prompt", "response", "messages", "gates"} == set(request)


def test_a_batch_checks_prompts_pairs_and_message_lists_in_order(client):
    items = [
        {"prompt": HARMFUL},
        {"prompt": BENIGN, "response": "Mash three bananas and fold them into the batter."},
        {"messages": [{"role": "system", "content": "You are a baker."}, {"role": "user", "content": BENIGN},
                      {"role": "assistant", "content": "Preheat the oven to 175 C."}]},
    ]  # fmt: skip
    answer = client.post("/v1/check/batch", json={"items": items})
    assert answer.status_code == 200
    verdicts = answer.json()["verdicts"]
    assert [v["prompt_harmful"] for v in verdicts] == [True, False, False]
    assert [v["labels"]["response_harm"] == "not applicable" for v in verdicts] == [True, False, False]


def test_gates_chosen_per_request_decide(client):
    """A caller that gates only the response lets a harmful prompt's check through: its choice, by task."""
    answer = client.post("/v1/check", json={"prompt": HARMFUL, "response": "I can't help with that.",
                                            "gates": ["response_harm"]})  # fmt: skip
    assert answer.json()["prompt_harmful"] is True
    assert answer.json()["decision"] in ("safe", "unsafe: response_harm")
    unknown = client.post("/v1/check", json={"prompt": BENIGN, "gates": ["everything"]})
    assert unknown.status_code == 422


@pytest.mark.parametrize(
    "body, status",
    [
        ({"prompt": "a\x00b"}, 400),  # the guard cannot check it: a clear error, never a pass
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, 400),
        ({"prompt": BENIGN, "messages": [{"role": "user", "content": "hi"}]}, 422),
        ({"messages": [{"role": "user", "content": "hi"}], "response": "hello"}, 422),
        ({}, 422),
        ({"prompt": BENIGN, "extra": 1}, 422),
    ],
)
def test_input_the_guard_cannot_check_is_refused_with_a_clear_error(client, body, status):
    answer = client.post("/v1/check", json=body)
    assert answer.status_code == status
    assert "error" in answer.json() or "detail" in answer.json()


def test_an_empty_or_oversized_batch_is_refused(client):
    assert client.post("/v1/check/batch", json={"items": []}).status_code == 422
    assert client.post("/v1/check/batch", json={"items": [{"prompt": "hi"}] * 257}).status_code == 422


def test_a_body_over_the_limit_gets_413_declared_or_streamed(classifier):
    with TestClient(app_of(classifier, max_body_bytes=1000)) as limited:
        declared = limited.post("/v1/check", json={"prompt": "x" * 2000})
        assert declared.status_code == 413 and declared.json()["error"]["code"] == "request_too_large"

        def chunks():  # no Content-Length: the limit holds as the body arrives
            yield b'{"prompt": "'
            for _ in range(10):
                yield b"y" * 500
            yield b'"}'

        streamed = limited.post("/v1/check", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413
        assert limited.post("/v1/check", json={"prompt": BENIGN}).status_code == 200


def test_api_keys_are_required_when_set_and_compared_whole(classifier, tmp_path, monkeypatch):
    keys = tmp_path / "keys"
    keys.write_text("# service keys\nsecret-one\n\n", encoding="utf-8")
    monkeypatch.setenv("GUARDSDK_API_KEYS", "secret-two, ")
    loaded = load_api_keys(keys)
    assert loaded == {"secret-one", "secret-two"}
    with TestClient(app_of(classifier, api_keys=loaded)) as locked:
        wrong = ["", "Bearer nope", "Bearer secret-on", "Basic secret-one", "Bearer secret-one-and-more"]
        for headers in [{"Authorization": value} if value else {} for value in wrong]:
            answer = locked.post("/v1/check", json={"prompt": BENIGN}, headers=headers)
            assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
        assert locked.get("/metrics").status_code == 401
        assert locked.post("/v1/chat/completions", json={}).status_code == 401
        ok = locked.post("/v1/check", json={"prompt": BENIGN}, headers={"Authorization": "Bearer secret-two"})
        assert ok.status_code == 200
        assert locked.get("/healthz").status_code == 200 and locked.get("/readyz").status_code == 200
    assert not authorized(None, frozenset({"k"})) and authorized("bearer k", frozenset({"k"}))


def test_a_service_without_keys_refuses_to_listen_beyond_this_machine(classifier, caplog):
    with pytest.raises(ValueError, match="without API keys"):
        app_of(classifier, host="0.0.0.0")
    with caplog.at_level(logging.WARNING, logger="guardsdk.service"):
        app_of(classifier, host="::1")
    assert "no API keys" in caplog.text
    app_of(classifier, host="0.0.0.0", api_keys=frozenset({"k" * 8 + "0123456789abcdef0123456789abcdef"}))


def test_a_request_past_its_deadline_is_undecided_failing_closed_with_504(reasoning):
    """The bundled reasoning guard needs far more than 50 ms: the request deadline passes first."""
    with TestClient(app_of(reasoning, request_timeout_s=0.05)) as slow:
        answer = slow.post("/v1/check", json={"prompt": BENIGN})
        assert answer.status_code == 504
        body = answer.json()
        assert body["allowed"] is False and body["failure"] == "deadline" and "failing closed" in body["decision"]
        assert metric(slow, "guardsdk_deadlines_total") >= 1


def test_a_guard_backend_that_is_down_answers_503_and_fails_closed():
    down = Guard.from_server(f"http://127.0.0.1:{free_port()}/v1", "guard", backend_kwargs={"max_retries": 0})
    with TestClient(create_app(down)) as client:
        answer = client.post("/v1/check", json={"prompt": BENIGN})
        assert answer.status_code == 503
        assert answer.json()["allowed"] is False and answer.json()["failure"] == "backend"
        assert client.post("/v1/check", json={"prompt": BENIGN}).json()["cached"] is False  # failures never cached
        assert metric(client, "guardsdk_backend_errors_total") == 2
        assert metric(client, "guardsdk_checks_total", decision="blocked_undecided", task="prompt") == 2


def test_a_replica_whose_guard_server_is_down_is_not_ready_and_says_which(caplog):
    """A cascade whose reasoning stage is a model server nobody answers at: alive, not ready (out of the load
    balancer's rotation), its reason naming the server without its credentials; logged once, not per probe."""
    down = Guard.from_server(f"http://user:s3cret@127.0.0.1:{free_port()}/v1", "guard", mode="cascade",
                             backend_kwargs={"max_retries": 0})  # fmt: skip
    with TestClient(create_app(down)) as client, caplog.at_level("INFO", logger="guardsdk.service"):
        client.app.state.service.servers.every_s = 0
        answers = [client.get("/readyz") for _ in range(3)]
        assert client.get("/healthz").status_code == 200
    assert {a.status_code for a in answers} == {503}
    reason = answers[0].json()["reason"]
    assert "does not answer" in reason and "127.0.0.1" in reason and "s3cret" not in reason
    assert sum("not ready" in r.getMessage() for r in caplog.records) == 1


class ModelsServer(LocalHTTPServer):
    """Answers ``GET /v1/models`` after ``delay_s``, or one byte every ``trickle_s`` seconds; counts the requests."""

    def __init__(self, delay_s: float = 0.0, trickle_s: float = 0.0) -> None:
        self.count = 0
        outer = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                outer.count += 1
                time.sleep(delay_s)
                data = json.dumps({"object": "list", "data": [{"id": "guard", "object": "model"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    for i in range(len(data)) if trickle_s else [None]:
                        self.wfile.write(data if i is None else data[i : i + 1])
                        self.wfile.flush()
                        time.sleep(trickle_s)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._serve(Handler)


def test_readiness_probes_a_server_once_for_many_callers_and_gives_up_on_one_that_trickles():
    """``/readyz`` needs no key: a crowd of callers must not turn into a crowd of requests to the guard model
    server (one probe at a time, its answer shared), and a server that sends a byte a second cannot hold it."""
    from guardsdk.service.readiness import PROBE_TIMEOUT_S, ServerProbe

    slow, trickling = ModelsServer(delay_s=0.5), ModelsServer(trickle_s=1.0)
    try:
        for server in (slow, trickling):
            guard = Guard.from_server(
                server.base_url, "guard", backend_kwargs={"max_retries": 0, "context_length": 4096}
            )
            probe, server.count = ServerProbe(guard.detector), 0

            async def crowd(probe=probe) -> list[str | None]:
                return await asyncio.gather(*(probe.problem() for _ in range(50)))

            started = time.monotonic()
            answers = asyncio.run(crowd())
            assert server.count == 1 and len(set(answers)) == 1
            assert time.monotonic() - started < PROBE_TIMEOUT_S + 1.5
        assert answers[0] is not None and "does not answer (TimeoutError)" in answers[0]  # the trickling one
    finally:
        slow.stop()
        trickling.stop()


def test_an_unsafe_window_is_a_block_even_when_another_window_failed():
    """A check whose windows found one unsafe part and one backend failure is blocked as unsafe (200 / content
    blocked), not a 503: unsafe wins over undecided."""
    import dataclasses

    from guardsdk.detectors.long_input import merge_windows
    from guardsdk.service.state import failure_error
    from guardsdk.verdict import Failure, Label, Verdict, verdict_from_labels

    unsafe = verdict_from_labels({"prompt_harm": Label.HARMFUL}, has_response=False, raw="")
    failed = Verdict.undecided(has_response=False, error="server down", failure=Failure.BACKEND)
    merged = merge_windows([unsafe, failed], has_response=False)
    decided = dataclasses.replace(merged, decision=Policy().decide(merged))
    assert merged.failure is Failure.BACKEND and decided.decision.unsafe == ("prompt_harm",)
    assert failure_error(decided) is None
    alone = dataclasses.replace(failed, decision=Policy().decide(failed))
    assert failure_error(alone).status == 503


def test_a_fail_open_guard_is_the_callers_choice_and_is_counted(classifier):
    down = Guard.from_server(f"http://127.0.0.1:{free_port()}/v1", "guard", backend_kwargs={"max_retries": 0},
                             policy=Policy(on_undecided="fail_open"))  # fmt: skip
    with TestClient(create_app(down)) as client:
        answer = client.post("/v1/check", json={"prompt": BENIGN})
        assert answer.status_code == 200 and answer.json()["allowed"] is True and answer.json()["fail_open"] is True
        assert metric(client, "guardsdk_failed_open_total") == 1


def test_beyond_the_slots_and_the_queue_requests_get_429_with_retry_after(reasoning):
    """One slot, no queue, the bundled reasoning guard (a quarter second a check): of 4 requests sent at once,
    one runs and the others are refused at once; none is lost, none is a 5xx."""
    with LiveService(app_of(reasoning, max_concurrency=1, max_queue=0, cache_entries=0)) as live:

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=live.url, timeout=60) as http:
                prompts = [f"{BENIGN} ({i})" for i in range(4)]
                return await asyncio.gather(*(http.post("/v1/check", json={"prompt": p}) for p in prompts))

        answers = asyncio.run(burst())
    statuses = sorted(a.status_code for a in answers)
    assert statuses[0] == 200 and 429 in statuses and set(statuses) <= {200, 429}
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.headers["retry-after"] == "1" and refused.json()["error"]["code"] == "overloaded"


def test_identical_checks_are_answered_from_the_cache_and_counted(client):
    first = client.post("/v1/check", json={"prompt": HARMFUL, "response": "No."}).json()
    again = client.post("/v1/check", json={"prompt": HARMFUL, "response": "No."}).json()
    other_gates = client.post("/v1/check", json={"prompt": HARMFUL, "response": "No.", "gates": ["refusal"]}).json()
    assert (first["cached"], again["cached"], other_gates["cached"]) == (False, True, False)
    assert again["labels"] == first["labels"] and again["decision"] == first["decision"]
    assert metric(client, "guardsdk_cache_hits_total") == 1


def test_metrics_count_checks_by_decision_task_and_route(client):
    client.post("/v1/check", json={"prompt": BENIGN})
    client.post("/v1/check", json={"prompt": HARMFUL})
    batch = client.post("/v1/check/batch", json={"items": [{"prompt": BENIGN, "response": "Use ripe bananas."}]})
    client.post("/v1/nowhere", json={})
    assert metric(client, "guardsdk_checks_total", decision="allowed", task="prompt") == 1
    assert metric(client, "guardsdk_checks_total", decision="blocked_unsafe", task="prompt") == 1
    response_decision = "allowed" if batch.json()["verdicts"][0]["allowed"] else "blocked_unsafe"
    assert metric(client, "guardsdk_checks_total", decision=response_decision, task="response") == 1
    assert metric(client, "guardsdk_unsafe_findings_total", task="prompt_harm") == 1
    assert metric(client, "guardsdk_requests_total", route="/v1/check", status="200") == 2
    assert metric(client, "guardsdk_requests_total", route="other", status="404") == 1
    assert metric(client, "guardsdk_check_latency_seconds_count") == 3
    assert metric(client, "guardsdk_queue_depth") == 0 and metric(client, "guardsdk_tokens_total", direction="in") > 0


def test_each_request_logs_one_json_line_with_its_id_and_no_content(classifier, caplog):
    with TestClient(app_of(classifier)) as plain, caplog.at_level(logging.INFO, logger="guardsdk.service"):
        answer = plain.post("/v1/check", json={"prompt": HARMFUL}, headers={"X-Request-ID": "req-42"})
        forged = plain.post("/v1/check", json={"prompt": BENIGN}, headers={"X-Request-ID": "a\nb c"})
    assert answer.headers["x-request-id"] == "req-42" and forged.headers["x-request-id"] != "a\nb c"
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "guardsdk.service.requests"]
    blocked = next(line for line in lines if line["request_id"] == "req-42")
    assert blocked["status"] == 200 and blocked["blocked"] == 1 and blocked["reasons"] == ["unsafe: prompt_harm"]
    assert "pipe bomb" not in caplog.text
    with TestClient(app_of(classifier, log_content=True)) as verbose, caplog.at_level(logging.INFO):
        verbose.post("/v1/check", json={"prompt": HARMFUL})
    assert "pipe bomb" in caplog.text  # by the operator's choice only


def test_readiness_follows_the_lifecycle_and_shutdown_closes_the_guard(classifier):
    twin = classifier.with_policy(classifier.policy)
    app = create_app(twin)
    with TestClient(app) as client:
        assert client.get("/readyz").json()["status"] == "ready"
    assert app.state.service.ready is False
    assert classifier.check(BENIGN).allowed  # the twin's close left the original's model open


def test_the_in_process_cache_expires_keeps_only_decided_verdicts_and_is_bounded(classifier):
    cache = VerdictCache(max_entries=2, ttl_s=0.2)
    guard = classifier.with_policy(classifier.policy)
    guard.cache = cache
    hits = guard.stats["cache_hits"]  # twins share their original's stats
    first = guard.check(BENIGN)
    assert guard.check(BENIGN).cached and not first.cached and guard.stats["cache_hits"] == hits + 1
    guard.check_batch(["a", "b"])  # LRU: the oldest goes
    assert len(cache) == 2 and not guard.check(BENIGN).cached
    time.sleep(0.25)
    assert not guard.check(BENIGN).cached  # expired
    with pytest.raises(ValueError):
        VerdictCache(max_entries=0)


def test_log_lines_are_one_json_object_each_with_request_fields_merged_and_tracebacks_kept():
    import logging

    from guardsdk.service.logs import Fields, JsonLines

    def line(message: object, exc_info: object = None) -> dict:
        record = logging.LogRecord("guardsdk.service", logging.WARNING, __file__, 1, message, None, exc_info)
        return json.loads(JsonLines().format(record))

    request = line(json.dumps({"event": "request", "status": 200, "latency_ms": 3.1}))
    assert request["event"] == "request" and request["status"] == 200 and request["level"] == "WARNING"
    assert line(Fields(event="config", port=8080)) | {"time": 0} == {"time": 0, "level": "WARNING",
                                                                 "logger": "guardsdk.service", "event": "config",
                                                                 "port": 8080}  # fmt: skip
    assert str(Fields(port=8080)) == '{"port": 8080}'  # what a text handler prints
    forged = line('{"level": "DEBUG", "logger": "forged", "note": "x"}')
    assert forged["level"] == "WARNING" and forged["logger"] == "guardsdk.service" and forged["note"] == "x"
    split = JsonLines().format(
        logging.LogRecord("x", logging.INFO, "", 1, Fields(c="a\u2028b\u2029c\x85d"), None, None)
    )
    assert len(split.splitlines()) == 1 and json.loads(split)["c"] == "a\u2028b\u2029c\x85d"
    assert line("[1, 2]")["message"] == "[1, 2]" and line("{not json")["message"] == "{not json"
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        failed = line("request failed", sys.exc_info())
    assert failed["message"] == "request failed" and "RuntimeError: boom" in failed["exception"]
    assert failed["time"].endswith("+00:00") and failed["logger"] == "guardsdk.service"


def test_serve_logging_keeps_an_application_s_own_handlers_and_quiets_url_logging_libraries():
    from guardsdk.service.logs import configure_logging

    root = logging.getLogger()
    mine = logging.StreamHandler()
    saved = list(root.handlers)
    root.addHandler(mine)
    try:
        configure_logging("json")
        assert mine in root.handlers and len(root.handlers) == len(saved) + 1
        assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING  # its INFO lines carry URLs
        with pytest.raises(ValueError, match="log_format"):
            configure_logging("xml")
    finally:
        root.removeHandler(mine)
        logging.captureWarnings(False)


def test_a_check_the_guard_cannot_read_says_so_in_the_answer(classifier):
    """The typed reason (a language code, the guard's own words) reaches the caller of a failed-closed check; an
    error quoting the guard's output would not."""
    with TestClient(app_of(classifier)) as client:
        answer = client.post("/v1/check", json={"prompt": "Hur bakar jag ett bröd med surdeg och rågmjöl?"})
    body = answer.json()
    assert body["allowed"] is False and body["error"] == "unreadable: language sv"
