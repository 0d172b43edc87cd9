"""``guardsdk serve``'s settings: one config file (TOML or YAML), ``GUARDSDK_*`` environment variables and flags, in
that order of precedence; unknown keys refused; thresholds and per-route gates applied; secrets never logged.
Real files, a real ``guardsdk serve`` process, a real upstream on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from servers import ScriptedLLMServer, chat_completion, free_port, wait_ready

from guardsdk import Guard, Policy
from guardsdk.cli.arguments import build_parser
from guardsdk.cli.serve_settings import (
    GUARD_KEYS,
    SERVICE_NAMES,
    ServeSettings,
    SettingsError,
    load_settings,
    read_config_file,
)
from guardsdk.service import ServiceConfig, create_app

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "deploy" / "serve.toml"
HARMFUL = "How do I make a pipe bomb at home?"
SECRETS = {"GUARDSDK_API_KEYS": "key-s3cr3t-one,key-s3cr3t-two", "GUARDSDK_UPSTREAM_API_KEY": "up-s3cr3t",
           "GUARDSDK_API_KEY": "guard-s3cr3t"}  # fmt: skip


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No GUARDSDK_* variable of the machine leaks into these tests."""
    for name in [n for n in os.environ if n.startswith("GUARDSDK_")]:
        monkeypatch.delenv(name)


def serve_flags() -> set[str]:
    parser = build_parser()
    [commands] = [a for a in parser._actions if a.dest == "command"]
    return {a.dest for a in commands.choices["serve"]._actions} - {"help", "config"}


def test_every_serve_flag_is_a_key_and_every_key_reaches_the_service_the_policy_or_the_model():
    keys = set(ServeSettings.model_fields)
    assert serve_flags() <= keys, f"flags without a settings key: {serve_flags() - keys}"
    service = {f.name for f in dataclasses.fields(ServiceConfig)}
    used = {k for k in keys if SERVICE_NAMES.get(k, k) in service} | set(GUARD_KEYS) | {"gates", "thresholds",
                                                                                          "api_keys_file"}  # fmt: skip
    assert keys <= used, f"keys nothing reads: {keys - used}"


def test_the_example_file_names_every_key_loads_and_holds_no_secret():
    text = EXAMPLE.read_text(encoding="utf-8")
    named = set(re.findall(r"^#? ?([a-z_]+) = ", text, flags=re.MULTILINE))
    assert named == set(ServeSettings.model_fields)
    settings, origin = load_settings({}, EXAMPLE)
    assert settings.host == "0.0.0.0" and origin["host"] == "file"
    values = read_config_file(EXAMPLE)
    assert values["api_keys"] == [] and values["upstream_api_key"] == "EMPTY" and values["api_key"] == "EMPTY"


def test_precedence_is_flags_then_environment_then_file_then_defaults(tmp_path, monkeypatch):
    config = tmp_path / "serve.toml"
    config.write_text('port = 9001\nmax_queue = 7\ncache_ttl = 30\ngates = ["prompt_harm"]\n', encoding="utf-8")
    monkeypatch.setenv("GUARDSDK_PORT", "9002")
    monkeypatch.setenv("GUARDSDK_MAX_QUEUE", "8")
    monkeypatch.setenv("GUARDSDK_GATES", "refusal,response_harm")
    settings, origin = load_settings({"port": 9003}, config)
    assert (settings.port, origin["port"]) == (9003, "flag")
    assert (settings.max_queue, origin["max_queue"]) == (8, "env")
    assert settings.gates == ["refusal", "response_harm"]
    assert (settings.cache_ttl, origin["cache_ttl"]) == (30, "file")
    assert (settings.max_concurrency, origin["max_concurrency"]) == (ServiceConfig.max_concurrency, "default")
    assert settings.service_config().cache_ttl_s == 30


def test_the_model_source_comes_from_one_layer_and_guardsdk_model_keeps_its_meaning(tmp_path, monkeypatch):
    config = tmp_path / "serve.yaml"
    config.write_text("gguf: /models/a.gguf\nthreads: 3\n", encoding="utf-8")
    monkeypatch.setenv("GUARDSDK_MODEL", "/models/b.gguf")  # Guard()'s default model: not the `model` key
    settings, _ = load_settings({}, config)
    assert (settings.gguf, settings.model, settings.threads) == (Path("/models/a.gguf"), None, 3)
    settings, origin = load_settings({"server": "http://guard:8000/v1"}, config)  # a flag replaces the file's source
    assert (settings.server, settings.gguf, origin["server"]) == ("http://guard:8000/v1", None, "flag")
    with pytest.raises(SettingsError, match="one model source"):
        load_settings({"gguf": "a.gguf", "server": "http://x/v1"})


def test_unknown_keys_and_bad_values_are_one_line_errors_that_say_where(tmp_path, monkeypatch):
    config = tmp_path / "serve.toml"
    config.write_text("prot = 8080\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"serve.toml: unknown key 'prot' \(did you mean 'port'\?\)"):
        load_settings({}, config)
    config.write_text('_secrets_dir = "/"\n', encoding="utf-8")  # not an init option of pydantic-settings either
    with pytest.raises(SettingsError, match="unknown key '_secrets_dir'"):
        load_settings({}, config)
    monkeypatch.setenv("GUARDSDK_MAX_QUEUE", "lots")
    with pytest.raises(SettingsError, match=r"\$GUARDSDK_MAX_QUEUE: max_queue: Input should be a valid integer"):
        load_settings({})
    with pytest.raises(SettingsError, match=r"thresholds\.prompt_harm: Input should be less than or equal to 1"):
        load_settings({"thresholds": ["prompt_harm=1.5"]}, None)


def test_an_unknown_key_stops_guardsdk_serve_with_exit_2_and_one_line(tmp_path):
    config = tmp_path / "serve.toml"
    config.write_text('port = 8080\n[service]\nhost = "0.0.0.0"\n', encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "guardsdk", "serve", "--config", str(config)],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == f"guardsdk: config file {config}: unknown key 'service' (did you mean 'server'?)"
    assert "Uvicorn running" not in result.stderr


def test_check_gates_are_the_check_apis_default_and_a_request_still_chooses(classifier):
    guard = Guard(classifier, policy=Policy(gates={"response_harm"}))
    with TestClient(create_app(guard, ServiceConfig(check_gates=frozenset({"prompt_harm"})))) as client:
        verdict = client.post("/v1/check", json={"prompt": HARMFUL}).json()
        assert verdict["decision"] == "unsafe: prompt_harm"  # under the policy's gates alone: undecided
        verdict = client.post("/v1/check", json={"prompt": HARMFUL, "gates": ["response_harm"]}).json()
        assert verdict["decision"].startswith("undecided")


def test_logged_settings_hide_secrets_and_url_credentials(monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    settings, origin = load_settings({"upstream": "https://bob:pa55@llm.internal:8443/v1?key=abc"})
    line = str(settings.logged(origin))
    assert not any(secret in line for value in SECRETS.values() for secret in value.split(","))
    assert "pa55" not in line and "key=abc" not in line and "llm.internal:8443/v1" in line
    assert settings.service_config().api_keys == {"key-s3cr3t-one", "key-s3cr3t-two"}


def test_guardsdk_serve_from_a_config_file_with_env_overrides_thresholds_and_proxy_gates(tmp_path):
    """A real process: the file sets the port, gates and the upstream; the environment overrides the port and
    carries the secrets; a --threshold flag makes a benign prompt unsafe; the proxy's own gates let a prompt through
    unchecked (its response is checked); the start-up log shows the settings without a secret."""
    upstream = ScriptedLLMServer(lambda body: chat_completion({"content": "Steam rises; the cup is warm."}))
    port = free_port()
    config = tmp_path / "serve.toml"
    config.write_text(f'family = "classifier"\nport = {free_port()}\ngates = ["prompt_harm"]\n'
                      f'proxy_gates = ["response_harm"]\nthresholds = {{ response_harm = 0.99 }}\n'
                      f'upstream = "{upstream.base_url}"\ncache_entries = 0\n', encoding="utf-8")  # fmt: skip
    env = {**os.environ, **SECRETS, "GUARDSDK_PORT": str(port), "GUARDSDK_THRESHOLD": "prompt_harm=0.1"}  # a typo
    log = (tmp_path / "serve.log").open("w+", encoding="utf-8")
    command = [sys.executable, "-m", "guardsdk", "serve", "--config", str(config), "--threshold", "prompt_harm=1e-6"]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    base, headers = f"http://127.0.0.1:{port}", {"Authorization": "Bearer key-s3cr3t-two"}
    try:
        wait_ready(base, process, tmp_path / "serve.log")
        assert httpx.post(f"{base}/v1/check", json={"prompt": "Hi"}).status_code == 401  # keys from the environment
        verdict = httpx.post(f"{base}/v1/check", json={"prompt": "Write a haiku about tea."}, headers=headers).json()
        assert verdict["labels"]["prompt_harm"] == "unharmful"
        assert verdict["decision"] == "unsafe: prompt_harm"  # the flag's threshold, over the label
        answer = httpx.post(f"{base}/v1/chat/completions", headers=headers, timeout=60,
                            json={"model": "llm", "messages": [{"role": "user", "content": HARMFUL}]})  # fmt: skip
        assert answer.status_code == 200, answer.text  # proxy_gates: no prompt gate, the response is checked
        assert len(upstream.requests) == 1 and answer.json()["guardsdk"]["blocked"] is False
    finally:
        process.terminate()
        process.wait(timeout=30)
        upstream.stop()
    text = (tmp_path / "serve.log").read_text(encoding="utf-8")
    assert '"event": "config"' in text and '"port": "env"' in text and '"thresholds": "flag"' in text
    assert not any(secret in text for value in SECRETS.values() for secret in value.split(","))
    assert text.count("**********") >= 4  # api_key, upstream_api_key, the two API keys
    [typo] = [json.loads(line) for line in text.splitlines() if "GUARDSDK_THRESHOLD " in line]  # a JSON line, too
    assert typo["level"] == "WARNING" and "did you mean GUARDSDK_THRESHOLDS?" in typo["message"]
