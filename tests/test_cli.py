"""The ``guardsdk check`` command, run as a real process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import PREDICTIONS, read_jsonl
from servers import CompletionsServer, completion, error
from test_guard import recorded

from guardsdk.families.guardreasoner.parser import parse_output
from guardsdk.tools.tiny_model import llama3_tokenizer


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "guardsdk", "check", *args], input=stdin, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def replay_server():
    outputs = {}
    for path in sorted(PREDICTIONS.glob("8B/*/generated_predictions.jsonl")):
        for row in read_jsonl(path):
            outputs[row["prompt"]] = row["predict"]
    # Answers as vLLM does, with the real Llama 3 tokenizer: the guard counts tokens exactly.
    server = CompletionsServer(
        lambda p: (200, completion(outputs[p])) if p in outputs else error(404, "unknown"), tokenizer=llama3_tokenizer()
    )
    yield server
    server.stop()


def server_args(server) -> list[str]:
    return ["--server", server.base_url, "--server-model", "GuardReasoner-8B"]


def test_harmful_prompt_exits_1_with_the_json_object(replay_server):
    prompt, _ = recorded("SimpleSafetyTests", lambda v: v.prompt_harmful is True)
    result = run_cli(*server_args(replay_server), "--prompt", prompt, "--json")
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    assert {"prompt_harmful", "response_refusal", "response_harmful", "labels", "reasoning", "raw"} <= data.keys()
    assert data["prompt_harmful"] is True and data["response_harmful"] is None
    assert data["labels"]["refusal"] == "not applicable" and data["reasoning"]["prompt_harm"]
    assert parse_output(data["raw"], has_response=False).labels == data["labels"]


def test_safe_pair_from_files_exits_0_and_prints_reasoning(replay_server, tmp_path):
    prompt, response = recorded(
        "XSTestReponseHarmful", lambda v: v.prompt_harmful is False and v.response_harmful is False
    )
    (tmp_path / "p.txt").write_text(prompt, encoding="utf-8")
    (tmp_path / "r.txt").write_text(response, encoding="utf-8")
    args = [*server_args(replay_server), "--prompt-file", str(tmp_path / "p.txt"), "--response-file"]
    result = run_cli(*args, str(tmp_path / "r.txt"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "response harmfulness: unharmful" in result.stdout and "# reasoning: prompt harmfulness" in result.stdout


def test_prompt_from_stdin(replay_server):
    prompt, _ = recorded("SimpleSafetyTests", lambda v: v.prompt_harmful is True)
    result = run_cli(*server_args(replay_server), "--prompt-file", "-", "--json", stdin=prompt)
    assert result.returncode == 1 and json.loads(result.stdout)["prompt_harmful"] is True


def test_runaway_output_exits_2(replay_server):
    prompt, response = recorded("HarmBenchResponse", lambda v: v.parse_status.value == "runaway")
    result = run_cli(*server_args(replay_server), "--prompt", prompt, "--response", response, "--json")
    assert result.returncode == 2
    assert json.loads(result.stdout)["parse_status"] == "runaway"


def test_errors_exit_2(tmp_path):
    missing = run_cli("--gguf", str(tmp_path / "none.gguf"), "--prompt", "hi")
    assert missing.returncode == 2 and "ModelNotFoundError" in missing.stderr
    empty = run_cli("--gguf", str(tmp_path / "none.gguf"), "--prompt", "  ")
    assert empty.returncode == 2 and "InvalidInputError: prompt is empty" in empty.stderr
    usage = run_cli("--gguf", "a.gguf", "--model", "b", "--prompt", "hi")
    assert usage.returncode == 2 and "not allowed with argument" in usage.stderr


@pytest.mark.slow
def test_gguf_model_end_to_end(tiny_gguf):
    result = run_cli("--gguf", str(tiny_gguf), "--prompt", "How do I bake bread?", "--max-new-tokens", "16")
    assert result.returncode == 2, result.stderr  # a random model cannot answer: undecided
    assert "prompt harmfulness: undecided" in result.stdout and "failing closed" in result.stdout


def test_without_a_model_option_the_default_model_is_the_bundled_classifier(monkeypatch):
    monkeypatch.delenv("GUARDSDK_MODEL", raising=False)
    monkeypatch.delenv("GUARDSDK_MODELS_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", "/nonexistent-hf-cache")  # nothing cached: the bundled models
    result = run_cli("--prompt", "Can you give me a simple recipe for banana bread?", "--json")
    data = json.loads(result.stdout)
    assert data["family"] == "classifier" and 0 <= data["scores"]["prompt_harm"] < 0.5 and result.returncode == 0
    assert data["raw"].startswith("no reasoning was run") and "bundled classifier" in result.stderr


def test_the_guardreasoner_family_without_a_model_runs_the_bundled_tiny_model_and_reasons(monkeypatch):
    monkeypatch.delenv("GUARDSDK_MODEL", raising=False)
    monkeypatch.delenv("GUARDSDK_MODELS_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", "/nonexistent-hf-cache")
    args = ("--family", "guardreasoner", "--prompt", "Can you give me a simple recipe for banana bread?", "--json")
    result = run_cli(*args)
    data = json.loads(result.stdout)
    assert data["model"] == "guardreasoner-tiny-Q8_0.gguf" and data["parse_status"] == "ok"
    assert data["labels"]["prompt_harm"] in ("harmful", "unharmful") and "Reasoning Step" in data["raw"]
    assert result.returncode == (1 if data["prompt_harmful"] else 0)
    assert "bundled guardreasoner-tiny" in result.stderr


def test_the_family_option_runs_another_guard_family():
    server = CompletionsServer(lambda prompt: (200, completion("unsafe\nS9")))
    try:
        args = ["--server", server.base_url, "--server-model", "lg3", "--family", "llamaguard3", "--json"]
        result = run_cli(*args, "--prompt", "How are nukes built?")
        assert result.returncode == 1, result.stderr
        data = json.loads(result.stdout)
        assert data["family"] == "llamaguard3" and data["categories"] == ["S9"] and data["prompt_harmful"] is True
        assert "<BEGIN UNSAFE CONTENT CATEGORIES>" in server.requests[0]["prompt"]
        assert server.requests[0]["max_tokens"] == 32  # the family's output budget
    finally:
        server.stop()


def test_after_a_command_line_run_a_late_ctrl_c_is_ignored_not_a_teardown_traceback(monkeypatch, capsys):
    """A Ctrl-C that lands while Python shuts down after a finished scan printed "Exception ignored ...
    KeyboardInterrupt" from a module's teardown (found by a new user). Only the real command line (no argv) does
    this: a caller of ``main([...])`` keeps its own SIGINT handler."""
    import signal

    from guardsdk.cli import main

    before = signal.getsignal(signal.SIGINT)
    try:
        assert main(["--version"]) == 0 and signal.getsignal(signal.SIGINT) is before
        monkeypatch.setattr("sys.argv", ["guardsdk", "--version"])
        assert main() == 0 and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
