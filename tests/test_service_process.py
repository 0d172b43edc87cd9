"""``guardsdk serve`` as a process (graceful shutdown, refusals), replicas sharing one guard model server,
``guardsdk convert``, ``guardsdk --version``, and the bounded load run (benchmarks/service/load_service.py)."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from servers import LlamaCppServer, free_port, wait_ready

import guardsdk
from guardsdk import Guard
from guardsdk.cli import main
from guardsdk.detectors.resolve import bundled_tiny_path
from guardsdk.service import ServiceConfig, create_app

ROOT = Path(__file__).resolve().parents[1]
GUARDSDK = [sys.executable, "-m", "guardsdk"]


def test_version_is_the_installed_package_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"guardsdk {guardsdk.__version__}" != "guardsdk 0+unknown"


def test_serve_without_keys_beyond_loopback_is_refused_before_any_model_loads(monkeypatch, capsys):
    monkeypatch.delenv("GUARDSDK_API_KEYS", raising=False)
    started = time.monotonic()
    assert main(["serve", "--host", "0.0.0.0", "--gguf", "/nonexistent.gguf"]) == 2
    assert "without API keys" in capsys.readouterr().err and time.monotonic() - started < 5


@pytest.mark.slow
def test_sigterm_lets_the_checks_in_flight_finish_then_exits_cleanly(tmp_path):
    """A batch of 8 reasoning checks (the bundled guardreasoner-tiny: about 2 s) is in flight when SIGTERM comes:
    it is answered in full, then the process ends."""
    port = free_port()
    keys = tmp_path / "keys"
    keys.write_text("k-123\n", encoding="utf-8")
    command = [*GUARDSDK, "serve", "--gguf", str(bundled_tiny_path()), "--port", str(port), "--threads", "2",
               "--api-keys-file", str(keys), "--cache-entries", "0"]  # fmt: skip
    log = (tmp_path / "serve.log").open("w+", encoding="utf-8")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, text=True)
    url, auth = f"http://127.0.0.1:{port}", {"Authorization": "Bearer k-123"}
    try:
        wait_ready(url, process, tmp_path / "serve.log", timeout=60)
        answers: list[httpx.Response] = []
        items = [{"prompt": f"How do I plant tomatoes, part {i}?"} for i in range(8)]
        sender = threading.Thread(target=lambda: answers.append(
            httpx.post(url + "/v1/check/batch", json={"items": items}, headers=auth, timeout=120)))  # fmt: skip
        sender.start()
        time.sleep(0.7)  # the batch is running
        process.send_signal(signal.SIGTERM)
        sender.join(120)
        assert process.wait(60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after its graceful exit
        [answer] = answers
        assert answer.status_code == 200 and len(answer.json()["verdicts"]) == 8
        assert all(v["failure"] is None for v in answer.json()["verdicts"])
        logs = (tmp_path / "serve.log").read_text(encoding="utf-8")
        assert '"path": "/v1/check/batch", "status": 200' in logs and "How do I plant" not in logs
        assert logs.index('"path": "/v1/check/batch"') < logs.index("Finished server process")
        lines = [json.loads(line) for line in logs.splitlines()]  # structured: every line one JSON object
        assert all({"time", "level", "logger"} <= set(line) for line in lines)
        assert any(line["logger"].startswith("uvicorn") for line in lines)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_replicas_share_one_guard_model_server(tmp_path):
    """Stateless replicas: two services whose guard runs on one llama.cpp server (``--guard-server``) both answer,
    and the model server did the work for both."""
    server = LlamaCppServer(bundled_tiny_path(), alias="guard")
    try:
        replicas = [create_app(Guard.from_server(server.base_url, "guard"), ServiceConfig(cache_entries=0))
                    for _ in range(2)]  # fmt: skip
        verdicts = []
        for app in replicas:
            with TestClient(app) as client:
                verdicts.append(client.post("/v1/check", json={"prompt": "How do I bake banana bread?"}).json())
                assert client.get("/readyz").json() == {"status": "ready"}
        assert all(v["tokens_out"] > 0 and v["model"] == "guard" for v in verdicts)
        assert verdicts[0]["labels"] == verdicts[1]["labels"] and verdicts[0]["raw"] == verdicts[1]["raw"]
        with TestClient(create_app(Guard.from_server(server.base_url, "guard"))) as client:
            client.app.state.service.servers.every_s = 0
            assert client.get("/readyz").status_code == 200
            server.stop()  # the shared server goes away: the replicas leave the rotation
            answer = client.get("/readyz")
            assert answer.status_code == 503 and server.base_url in answer.json()["reason"]
    finally:
        server.stop()


@pytest.mark.slow
def test_convert_writes_a_gguf_the_guard_loads_and_never_overwrites(tiny_hf_dir, tmp_path, capsys):
    target = tmp_path / "tiny-Q8_0.gguf"
    assert main(["convert", str(tiny_hf_dir), "--quant", "Q8_0", "--out", str(target)]) == 0
    assert Path(capsys.readouterr().out.strip()) == target and target.stat().st_size > 0
    with Guard.from_gguf(target, max_new_tokens=4) as guard:
        assert guard.check_batch(["hello"])[0].tokens_out == 4
    assert main(["convert", str(tiny_hf_dir), "--quant", "Q8_0", "--out", str(target)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "missing"), "--out", str(tmp_path / "x.gguf")]) == 2


@pytest.mark.slow
def test_a_thousand_checks_and_proxied_calls_at_concurrency_32_lose_nothing():
    """The bounded load run of docs/service.md: no request lost, no 5xx; a proxied call is answered (200) or blocked
    (400 content_blocked: the upstream is the tiny model, whose text is noise the classifier sometimes flags)."""
    spec = importlib.util.spec_from_file_location("load_service", ROOT / "benchmarks" / "service" / "load_service.py")
    load = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(load)  # type: ignore[union-attr]
    for row in load.run(requests=1000, concurrency=32, proxy_requests=300):
        assert row["lost"] == 0 and sum(row["statuses"].values()) == row["requests"], row
        assert set(row["statuses"]) <= ({"200"} if row["route"] == "/v1/check" else {"200", "400"}), row
