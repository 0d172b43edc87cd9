"""guard.wrap(OpenAI(...)): a guarded OpenAI client against a local llama.cpp server (offline).

Starts llama_cpp.server on 127.0.0.1 with the bundled guardreasoner-tiny GGUF standing in for "the LLM"
(any GGUF works; this one is at hand offline), and guards the client with recorded GuardReasoner-8B verdicts.
Run: .venv/bin/python examples/openai_client.py
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request

import openai
from _common import BENIGN_PROMPT, HARMFUL_PROMPT, demo_guard

from guardsdk import GuardBlocked
from guardsdk.detectors.resolve import bundled_tiny_path


def start_server(model: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "llama_cpp.server", "--model", model, "--model_alias", "llm"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}/v1"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{base_url}/models", timeout=1)
            return process, base_url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("llama_cpp.server did not start")


def main() -> None:
    process, base_url = start_server(str(bundled_tiny_path()))
    try:
        client = demo_guard().wrap(openai.OpenAI(base_url=base_url, api_key="none"))
        messages = [{"role": "user", "content": BENIGN_PROMPT}]
        completion = client.chat.completions.create(model="llm", messages=messages, max_tokens=16)
        print("chat   :", type(completion).__name__, [v.decision.reason for v in completion.guard_verdicts])
        stream = client.chat.completions.create(model="llm", messages=messages, max_tokens=16, stream=True)
        print("stream :", sum(1 for _ in stream), "chunks;", stream.guard_verdicts[-1].decision.reason)
        try:
            client.chat.completions.create(
                model="llm", messages=[{"role": "user", "content": HARMFUL_PROMPT}], max_tokens=16
            )
        except GuardBlocked as blocked:
            print("blocked:", blocked, "(no request was sent)")
    finally:
        process.terminate()
        process.wait()


if __name__ == "__main__":
    main()
