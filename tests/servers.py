"""Real HTTP servers on 127.0.0.1 for tests: llama_cpp.server, and a small OpenAI-compatible one."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(base: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    """Wait until the ``guardsdk serve`` ``process`` at ``base`` answers ``/readyz``; an ``AssertionError`` with the
    tail of its ``log`` if it exits or is not ready within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, log.read_text(encoding="utf-8")[-2000:]
        assert time.monotonic() < deadline, "guardsdk serve did not become ready: " + log.read_text()[-2000:]
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.3)


class LlamaCppServer:
    """``python -m llama_cpp.server`` serving a GGUF file; started and stopped by the tests."""

    def __init__(self, model: Path, alias: str = "tiny", n_ctx: int = 4096) -> None:
        self.port = free_port()
        self.alias = alias
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", alias,
                   "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(n_ctx)]  # fmt: skip
        # Its log goes to a file: a pipe nobody reads fills up after ~100 requests and stalls the server.
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - open for the life of the server; closed by stop()
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"llama_cpp.server exited: {self.log.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("llama_cpp.server did not start within 120 s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


Reply = tuple  # (status, payload) or (status, payload, headers); header x-test-trickle-s trickles the body


class QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


class LocalHTTPServer:
    """Serves a request handler class on 127.0.0.1 in a daemon thread; ``base_url`` ends in ``/v1``."""

    def _serve(self, handler: type[BaseHTTPRequestHandler], port: int = 0) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class CompletionsServer(LocalHTTPServer):
    """A small OpenAI-compatible ``/v1/completions`` server whose replies come from ``answer(prompt)``.

    With a ``tokenizer`` (a transformers tokenizer) it also answers as vLLM does: ``POST /tokenize``,
    ``POST /detokenize`` and ``max_model_len`` in ``GET /v1/models``; without one, those are 404.
    """

    def __init__(
        self, answer: Callable[[str], Reply], tokenizer: Any = None, max_model_len: int = 8192, port: int = 0
    ) -> None:
        self.requests: list[dict] = []
        outer = self

        def vllm_extras(path: str, body: dict) -> dict | None:
            if tokenizer is None:
                return None
            if path == "/v1/models":
                return {"object": "list", "data": [{"id": "replay", "object": "model", "max_model_len": max_model_len}]}
            if path == "/tokenize":
                ids = tokenizer(body["prompt"], add_special_tokens=body.get("add_special_tokens", True))["input_ids"]
                return {"tokens": ids, "count": len(ids), "max_model_len": max_model_len}
            if path == "/detokenize":
                return {"prompt": tokenizer.decode(body["tokens"])}
            return None

        class Handler(QuietHandler):
            def reply(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            def do_GET(self) -> None:
                extra = vllm_extras(self.path, {})
                self.reply(*((200, extra) if extra is not None else error(404, "not found")))

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if not self.path.endswith("/completions"):
                    extra = vllm_extras(self.path, body)
                    self.reply(*((200, extra) if extra is not None else error(404, "not found")))
                    return
                outer.requests.append(body)
                status, payload, *extra = answer(body["prompt"])
                headers = dict(extra[0]) if extra else {}
                trickle_s = float(headers.pop("x-test-trickle-s", 0))
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    if not trickle_s:
                        self.wfile.write(data)
                    for i in range(len(data) if trickle_s else 0):  # one byte at a time: a trickled reply
                        self.wfile.write(data[i : i + 1])
                        self.wfile.flush()
                        time.sleep(trickle_s)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

        self._serve(Handler, port)


def completion(text: str, prompt_tokens: int = 100) -> dict:
    """An OpenAI completions response body."""
    return {
        "id": "cmpl-test",
        "object": "text_completion",
        "created": 0,
        "model": "replay",
        "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(text.split()), "total_tokens": 0},
    }


def error(status: int, message: str) -> Reply:
    return status, {"error": {"message": message, "type": "test", "code": status}}


class FlakyProxy(LocalHTTPServer):
    """Forwards POSTs to ``upstream`` but answers every ``fail_every``-th request with a 503."""

    def __init__(self, upstream: str, fail_every: int = 2) -> None:
        self.requests = 0
        self.failed = 0
        outer = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests += 1
                if outer.requests % fail_every == 0:
                    outer.failed += 1
                    status, data = 503, json.dumps({"error": {"message": "injected failure"}}).encode()
                else:
                    request = urllib.request.Request(
                        upstream.rstrip("/") + self.path.removeprefix("/v1"), data=body,
                        headers={"Content-Type": "application/json"},
                    )  # fmt: skip
                    with urllib.request.urlopen(request, timeout=300) as reply:
                        status, data = reply.status, reply.read()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._serve(Handler)


class ScriptedLLMServer(LocalHTTPServer):
    """An OpenAI-compatible LLM (``/v1/chat/completions``, ``/v1/completions``) whose replies are scripted:
    ``reply(body)`` returns the completion object, or for ``stream=True`` the list of chunk objects (sent as
    server-sent events). It stands in for an upstream model whose output an attacker controls."""

    def __init__(self, reply: Callable[[dict], Any]) -> None:
        self.requests: list[dict] = []
        outer = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                answer = reply(body)
                self.send_response(200)
                if body.get("stream"):
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    for chunk in answer:
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.write(b"data: [DONE]\n\n")
                    return
                data = json.dumps(answer).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._serve(Handler)


def chat_completion(*messages: dict) -> dict:
    """A chat completion with one choice per message (``{"content": ..., "tool_calls": ...}``)."""
    choices = [
        {"index": i, "message": {"role": "assistant", **m}, "finish_reason": "stop"} for i, m in enumerate(messages)
    ]
    return {"id": "c", "object": "chat.completion", "created": 0, "model": "llm", "choices": choices}


def chat_chunk(delta: dict, index: int = 0) -> dict:
    """One streamed chat completion chunk."""
    return {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "llm",
            "choices": [{"index": index, "delta": delta, "finish_reason": None}]}  # fmt: skip


def text_completion(*texts: str) -> dict:
    """A legacy completion with one choice per text."""
    choices = [{"index": i, "text": t, "finish_reason": "stop", "logprobs": None} for i, t in enumerate(texts)]
    return {"id": "c", "object": "text_completion", "created": 0, "model": "llm", "choices": choices}


def tool_call(name: str, arguments: str, call_id: str = "call_1") -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


class LiveService:
    """A guardsdk service app served by uvicorn on 127.0.0.1 in a daemon thread (lifespan included)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the guard service did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)

    def __enter__(self) -> LiveService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
