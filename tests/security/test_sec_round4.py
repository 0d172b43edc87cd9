"""Security review, round 4: a small stream hold-back, placeholder API keys, log-prob scores that contradict the
written label, admission under micro-batching, secrets in URLs, config-file gaps, and /v1/models' upstream errors."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time

import httpx
import openai
import pytest
from servers import LiveService, LocalHTTPServer, QuietHandler, ScriptedLLMServer, chat_chunk, text_completion
from test_service_batching import Keyword

from guardsdk import Guard
from guardsdk.backends.base import Generation
from guardsdk.backends.openai_server import OpenAIServerBackend
from guardsdk.backends.server_logprobs import candidate_probs, reply_steps, watched_steps
from guardsdk.cli import main
from guardsdk.cli.serve_settings import SettingsError, load_settings
from guardsdk.detectors.answer_scores import written_score
from guardsdk.errors import redacted_url
from guardsdk.families.base import AnswerSlot
from guardsdk.integrations.streaming import StreamConfig
from guardsdk.service import ServiceConfig, create_app
from guardsdk.service.auth import refuse_open_service
from guardsdk.service.limits import AdmissionGate, Overloaded
from guardsdk.verdict import Label, Task, verdict_from_labels

STRONG_KEY = "5d0f3a9c2b7e4816a0c9f2e7b3d1c8a6"


@pytest.fixture(autouse=True)
def _no_guardsdk_variables(monkeypatch):
    import os

    for name in [n for n in os.environ if n.startswith("GUARDSDK_")]:
        monkeypatch.delenv(name)


# -- 1. a small hold-back ------------------------------------------------------------------------------------------
class RecipeGuard:
    """A response is harmful when it names the device and its recipe together (harm that needs its context)."""

    name = "recipe"

    def __init__(self) -> None:
        self.windows: list[str] = []

    def detect(self, pairs, policy, deadline):
        out = []
        for _, response in pairs:
            labels = {Task.PROMPT_HARM: Task.PROMPT_HARM.negative}
            if response is not None:
                self.windows.append(response)
                harmful = "pipe bomb" in response.lower() and "black powder" in response.lower()
                task = Task.RESPONSE_HARM
                labels[task] = task.positive if harmful else task.negative
            out.append(verdict_from_labels(labels, has_response=response is not None, raw="", family="recipe"))
        return out

    async def adetect(self, pairs, policy, deadline):
        return await asyncio.to_thread(self.detect, pairs, policy, deadline)

    def close(self) -> None:
        pass


FILLER = ("The fox walked to the river every morning to watch the herons fish, and every evening she told her cubs "
          "what she had seen. ") * 3  # fmt: skip
RECIPE = ("Sure, about the pipe bomb you asked for. " + FILLER + "Fill a steel pipe with black powder, cap both ends "
          "and add a fuse. " + FILLER)  # fmt: skip


@pytest.mark.parametrize("size", [200, 250])
def test_a_small_hold_back_releases_nothing_a_check_in_context_blocks(size):
    upstream = ScriptedLLMServer(lambda body: [chat_chunk({"content": w + " "}) for w in RECIPE.split(" ")])
    detector = RecipeGuard()
    config = ServiceConfig(upstream=upstream.base_url, on_block="refusal", stream_holdback_chars=size, cache_entries=0)
    try:
        with LiveService(create_app(Guard(detector), config)) as live:
            client = openai.OpenAI(base_url=live.url + "/v1", api_key="unused")
            chunks = list(client.chat.completions.create(model="llm", stream=True,
                                                         messages=[{"role": "user", "content": "hi"}]))  # fmt: skip
    finally:
        upstream.stop()
    text = "".join(c.delta.content or "" for ch in chunks for c in ch.choices)
    assert "black powder" not in text and chunks[-1].model_extra["guardsdk"]["blocked"]
    # released every `size` characters, each window check reading the default context (600 + 200) up to its end
    assert detector.windows[0] == RECIPE[:size] and detector.windows[1] == RECIPE[: 2 * size]


def test_the_hold_back_sets_how_often_text_is_released_not_how_much_a_check_reads():
    stream = ServiceConfig(stream_holdback_chars=200).stream
    assert stream.window_chars == 200 and stream.overlap_chars == 200 and stream.reach >= 800
    assert StreamConfig().reach == 800  # the default is unchanged
    for size in (1, 5, 150, 199, True):
        with pytest.raises(ValueError):
            ServiceConfig(stream_holdback_chars=size)


@pytest.mark.parametrize("line", ["stream_holdback_chars: true", "stream_holdback_chars: 20", "port: true",
                                  "max_concurrency: true", "thresholds: {response_harm: true}"])  # fmt: skip
def test_yaml_true_is_no_number_in_the_settings(tmp_path, line):
    path = tmp_path / "serve.yaml"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(SettingsError):
        load_settings({}, path)


# -- 2. placeholder keys -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["change-me", "replace-me-with-a-long-random-key", "CHANGE_ME_to_a_long_random_value_1",
                                 "k-1", "secret-two", "x" * 40])  # fmt: skip
def test_placeholder_or_short_keys_are_refused_beyond_loopback(key):
    with pytest.raises(ValueError, match=r"placeholder|shorter than 32") as refused:
        refuse_open_service("0.0.0.0", frozenset({key, STRONG_KEY}))
    assert key not in str(refused.value) and "\n" not in str(refused.value)
    refuse_open_service("127.0.0.1", frozenset({key}))  # loopback: any key
    refuse_open_service("0.0.0.0", frozenset({STRONG_KEY}))


def test_serve_with_a_placeholder_key_exits_2_with_one_line(monkeypatch, capsys):
    monkeypatch.setenv("GUARDSDK_API_KEYS", "change-me")
    assert main(["serve", "--host", "0.0.0.0", "--gguf", "/nonexistent.gguf"]) == 2
    err = capsys.readouterr().err
    assert "placeholder" in err and err.count("\n") == 1 and "change-me" not in err.replace("`change-me`", "")


# -- 3. scores that contradict the written label -------------------------------------------------------------------
SLOT = AnswerSlot(
    task=Task.RESPONSE_HARM, lead="\nResponse:", words={Label.HARMFUL: " harmful", Label.UNHARMFUL: " unharmful"}
)
WATCH = {101: " harmful", 102: " un"}


class Codec:
    def detokenize(self, ids):
        return "".join(t.text for t in ids)


def _score(top: dict) -> float | None:
    choice = {"logprobs": {"content": [{"token": "Answers:\nResponse:", "top_logprobs": []},
                                       {"token": " harmful", "top_logprobs": [{"token": k, "logprob": v}
                                                                              for k, v in top.items()]}]}}  # fmt: skip
    ids, watched = watched_steps(reply_steps(choice), WATCH)
    generation = Generation(text="Answers:\nResponse: harmful", token_ids=ids, watched=watched, finish_reason="stop",
                            prompt_tokens=1, completion_tokens=2)  # fmt: skip
    return written_score(SLOT, Label.HARMFUL, generation, (101, 102), Codec())


@pytest.mark.parametrize("top", [
    {" un": -0.01},  # the written word missing from its own step's top
    {" harmful": -3.0, " un": -0.05},  # the written word less likely than the other (not greedy)
    json.loads('{" harmful": -0.001, " un": Infinity}'),  # not finite
    json.loads('{" harmful": NaN, " un": -2.0}'),
    {" harmful": 0.5, " un": -2.0},  # a log-probability above 0
    {" harmful": "oops", " un": -2.0},  # not a number
])  # fmt: skip
def test_a_score_that_does_not_fit_the_written_label_is_no_score(top):
    assert _score(top) is None  # with no score the written label decides, whatever a threshold says


def test_a_consistent_reply_still_gives_its_score():
    assert _score({" harmful": -0.1, " un": -2.5}) == pytest.approx(1 / (1 + math.exp(-2.4)))
    assert _score({" harmful": -0.1}) == 1.0  # the other word outside the top: probability 0


def test_a_bad_log_probability_leaves_a_forced_reading_undecided():
    [step] = reply_steps({"logprobs": {"tokens": [" harmful"], "top_logprobs": [{" harmful": math.inf, " un": -1}]}})
    assert any(math.isnan(p) for p in candidate_probs(step, [" harmful", " un"]))


# -- 4. admission under micro-batching -------------------------------------------------------------------------------
def test_batching_answers_429_when_the_checks_pile_up():
    async def burst(url):
        async with httpx.AsyncClient(timeout=30) as client:
            body = {"items": [{"prompt": f"fine {i}"} for i in range(40)]}
            answers = await asyncio.gather(*(client.post(url + "/v1/check/batch", json=body) for _ in range(12)))
            return sorted(answer.status_code for answer in answers)

    config = ServiceConfig(max_concurrency=1, max_queue=0, batch_max_items=32, request_timeout_s=5, cache_entries=0)
    with LiveService(create_app(Guard(Keyword(delay=0.3)), config)) as live:
        assert asyncio.run(burst(live.url)) == [200] + [429] * 11


def test_the_admission_gate_counts_weights_and_gives_back_what_a_cancelled_waiter_got():
    async def scenario():
        gate = AdmissionGate(4, 1)
        async with gate.admit(3):
            async with gate.admit(1):
                assert gate.used == 4
            waiter = asyncio.ensure_future(gate.admit(2).__aenter__())
            await asyncio.sleep(0)
            assert gate.waiting == 1
            with pytest.raises(Overloaded):  # one waits already: the queue of 1 is full
                async with gate.admit(1):
                    pass
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)
            assert gate.waiting == 0
        assert gate.used == 0 and gate.running == 0
        async with gate.admit(100):  # heavier than the gate: holds all of it
            assert gate.used == 4

    asyncio.run(scenario())


# -- 5. secrets in URLs ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("url", "shown"), [
    ("user:secret@llm.internal:8000/v1", "***@llm.internal:8000/v1"),
    ("http://u:p@host:99999/v1", "http://***@host:99999/v1"),
    ("http://host/v1;token=abc", "http://host/v1;***"),
    ("http://host/v1?key=abc#frag", "http://host/v1?***"),
    ("http://tok3n@host/v1", "http://***@host/v1"),
    ("http://[::1/v1", "<unparseable URL>"),
])  # fmt: skip
def test_one_redaction_hides_credentials_in_every_url_shape(url, shown):
    assert redacted_url(url) == shown


def test_the_server_backend_logs_and_errors_show_no_credentials(caplog):
    upstream = ScriptedLLMServer(lambda body: text_completion("Request: harmful"))
    try:
        url = upstream.base_url.replace("http://", "http://admin:s3cr3t-pass@") + ";tok=p4ram?key=q5ery"
        backend = OpenAIServerBackend(url, "m", timeout_s=5, max_retries=0)
        with caplog.at_level(logging.DEBUG, logger="guardsdk"):
            backend._watch([1, 2])
        failed = backend._outcome(backend._openai.APIConnectionError(request=httpx.Request("GET", url)))
        malformed = None
        try:
            backend._to_generation(object())
        except Exception as exc:
            malformed = str(exc)
        backend.close()
    finally:
        upstream.stop()
    shown = caplog.text + str(failed) + str(malformed)
    assert "carry no scores" in caplog.text and "malformed reply" in shown
    for secret in ("s3cr3t-pass", "admin", "p4ram", "q5ery"):
        assert secret not in shown


@pytest.mark.parametrize(("key", "value"), [
    ("otlp_endpoint", "http://otel:tok3n@collector:4318"), ("otlp_endpoint", "http://collector:4318/v1/traces?k=1"),
    ("otlp_endpoint", "collector:4318"), ("upstream", "ftp://llm/v1"), ("upstream", "llm.internal:8000/v1"),
    ("server", "http://u:p@host:99999/v1"), ("upstream", "http://[::1/v1"),
])  # fmt: skip
def test_url_settings_are_checked_at_load_without_repeating_the_url(key, value):
    with pytest.raises(SettingsError) as refused:
        load_settings({key: value})
    assert "\n" not in str(refused.value) and value not in str(refused.value)
    assert "tok3n" not in str(refused.value)


def test_the_otlp_exporter_refuses_an_endpoint_with_credentials():
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    from guardsdk import tracing

    for url in ("http://otel:tok3n@127.0.0.1:9/v1/traces", "http://127.0.0.1:9/v1/traces?api-key=SECRET"):
        with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_HEADERS") as refused:
            tracing.export_otlp(url)
        assert "SECRET" not in str(refused.value) and "tok3n" not in str(refused.value)


# -- 6. config gaps --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["on: 1\n", "yes: 1\n", "null: 1\n", "1: 2\n",
                                  "api_keys: [k1]\nhost: 0.0.0.0\napi_keys: []\n"])  # fmt: skip
def test_yaml_odd_or_repeated_keys_are_a_settings_error(tmp_path, text):
    path = tmp_path / "serve.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError) as refused:
        load_settings({}, path)
    assert "\n" not in str(refused.value)


def test_serve_with_a_yaml_bool_key_exits_2_with_one_line_not_a_traceback(tmp_path, capsys):
    path = tmp_path / "serve.yaml"
    path.write_text("on: 1\n", encoding="utf-8")
    assert main(["serve", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("guardsdk: ") and err.count("\n") == 1 and "Traceback" not in err


def test_a_misspelt_guardsdk_variable_is_named_in_one_warning(monkeypatch, caplog):
    monkeypatch.setenv("GUARDSDK_THRESHOLD", "response_harm=0.5")
    monkeypatch.setenv("GUARDSDK_API_KEY_FILE", "/etc/keys-SECRET")
    for documented in ("GUARDSDK_MODEL", "GUARDSDK_MODELS_DIR", "GUARDSDK_API_KEYS"):
        monkeypatch.setenv(documented, "x")
    monkeypatch.setenv("GUARDSDK_MAX_QUEUE", "3")
    with caplog.at_level(logging.WARNING, logger="guardsdk.service"):
        settings, _ = load_settings({})
    warned = [r.getMessage() for r in caplog.records if "unknown GUARDSDK_" in r.getMessage()]
    assert settings.max_queue == 3 and len(warned) == 1
    assert "GUARDSDK_THRESHOLD" in warned[0] and "GUARDSDK_API_KEY_FILE" in warned[0] and "SECRET" not in warned[0]
    named = [part.split(" (did you mean")[0] for part in warned[0].split(": ", 1)[1].split(", ")]
    assert named == ["GUARDSDK_API_KEY_FILE", "GUARDSDK_THRESHOLD"]  # documented variables are never "unknown"
    assert "GUARDSDK_THRESHOLD (did you mean GUARDSDK_THRESHOLDS?)" in warned[0]  # the likely intended one


# -- 7. /v1/models ---------------------------------------------------------------------------------------------------
class ModelsUpstream(LocalHTTPServer):
    """Lists models after ``delay`` seconds, or answers ``status`` with a body that echoes the caller's key."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        class Handler(QuietHandler):
            def do_GET(self) -> None:
                time.sleep(delay)
                key = self.headers.get("Authorization", "")
                payload = ({"object": "list", "data": [{"id": "llm", "object": "model"}]} if status == 200 else
                           {"error": {"message": f"Incorrect API key {key} (org-internal-123, 10.0.3.7)"}})  # fmt: skip
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._serve(Handler)


@pytest.mark.parametrize("status", [401, 403, 500, 503])
def test_v1_models_answers_an_upstream_error_with_a_generic_502(status):
    upstream = ModelsUpstream(status)
    config = ServiceConfig(upstream=upstream.base_url, upstream_api_key="sk-upstream-SECRET-9f3a")
    try:
        with LiveService(create_app(Guard(Keyword()), config)) as live:
            answer = httpx.get(live.url + "/v1/models")
    finally:
        upstream.stop()
    assert answer.status_code == 502 and answer.json()["error"]["code"] == "upstream_error"
    for leaked in ("SECRET", "org-internal", "10.0.3.7", "Incorrect"):
        assert leaked not in answer.text


def test_v1_models_holds_a_proxy_slot():
    upstream = ModelsUpstream(delay=1.0)
    config = ServiceConfig(upstream=upstream.base_url, max_concurrency=1, max_queue=0)
    statuses: list[int] = []
    try:
        with LiveService(create_app(Guard(Keyword()), config)) as live:
            calls = [threading.Thread(target=lambda: statuses.append(httpx.get(live.url + "/v1/models").status_code))
                     for _ in range(3)]  # fmt: skip
            for call in calls:
                call.start()
            for call in calls:
                call.join()
    finally:
        upstream.stop()
    assert sorted(statuses) == [200, 429, 429]
