"""Issue #10, items 12 and 14: released streamed text is always checked; the CLI never says "unsafe" (1)
for its own failures."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from scripted import MARK, ScriptedGuardModel

from guardsdk import Guard
from guardsdk.integrations.streaming import StreamConfig

STREAM_FIRST = StreamConfig(mode="stream_first", window_chars=400, overlap_chars=50)
HARMFUL_CHUNKS = ["Sure. ", f"Step one of making {MARK}: ", "take the ..."]  # shorter than one window


def test_stream_first_text_released_before_an_upstream_error_is_checked_afterwards(caplog):
    guard = Guard(ScriptedGuardModel())

    @guard.protect(stream=STREAM_FIRST)
    def generate(prompt):
        yield from HARMFUL_CHUNKS
        raise ConnectionError("upstream dropped")

    received = []
    with caplog.at_level(logging.WARNING, logger="guardsdk"), pytest.raises(ConnectionError):
        for chunk in generate("hi"):
            received.append(chunk)
    assert received == HARMFUL_CHUNKS
    assert guard.stats["released_unsafe"] == 1 and "stream-first released text" in caplog.text


def test_stream_first_text_released_before_the_caller_stopped_is_checked_afterwards():
    guard = Guard(ScriptedGuardModel())

    @guard.protect(stream=STREAM_FIRST)
    def generate(prompt):
        yield from HARMFUL_CHUNKS
        yield from ["more "] * 10

    stream = generate("hi")
    for chunk, _ in zip(stream, range(2), strict=False):
        assert chunk
    stream.close()  # the caller stops early
    assert guard.stats["released_unsafe"] == 1


async def test_async_stream_first_early_stop_is_checked_afterwards():
    guard = Guard(ScriptedGuardModel())

    @guard.protect(stream=STREAM_FIRST)
    async def generate(prompt):
        for chunk in HARMFUL_CHUNKS:
            yield chunk
        raise ConnectionError("upstream dropped")

    with pytest.raises(ConnectionError):
        async for _ in generate("hi"):
            pass
    assert guard.stats["released_unsafe"] == 1


def test_a_stream_without_its_final_check_cannot_be_configured():
    with pytest.raises(TypeError):
        StreamConfig(final_check=False)  # type: ignore[call-arg]


# -- 14. CLI failures exit 2 with one line ---------------------------------------------------------
def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "guardsdk", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "args",
    [
        ["check", "--prompt-file", "/nonexistent/prompt.txt"],
        ["check", "--prompt-file", "{latin1}"],
        ["check"],  # no prompt
        ["check", "--prompt", "hi", "--prompt-file", "x"],
        ["check", "--server", "http://127.0.0.1:9/v1", "--prompt", "hi"],  # no --server-model
        ["check", "--no-such-option"],
        ["eval"],
        ["check", "--prompt", "hi", "--timeout", "-1", "--gguf", "/nonexistent.gguf"],
    ],
)
def test_cli_failures_exit_2_with_one_line_and_no_traceback(args, tmp_path):
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9".encode("latin-1"))
    result = run_cli(*(a.format(latin1=latin1) for a in args))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.strip()


def test_a_wrapped_stream_closed_early_has_its_released_text_checked():
    import openai
    from servers import ScriptedLLMServer, chat_chunk

    guard = Guard(ScriptedGuardModel())
    server = ScriptedLLMServer(lambda body: [chat_chunk({"content": c}) for c in [*HARMFUL_CHUNKS, *["more "] * 5]])
    try:
        client = guard.wrap(openai.OpenAI(base_url=server.base_url, api_key="x"), stream=STREAM_FIRST)
        with client.chat.completions.create(model="llm", messages=[{"role": "user", "content": "hi"}],
                                            stream=True) as stream:  # fmt: skip
            for _, _chunk in zip(range(3), stream, strict=False):
                pass  # the caller reads the harmful part, then leaves
        assert guard.stats["released_unsafe"] == 1 and stream.guard_verdicts[-1].response_harmful is True
    finally:
        server.stop()


def test_a_chunk_extractor_that_finds_no_text_is_a_typed_error():
    from guardsdk import InvalidInputError

    guard = Guard(ScriptedGuardModel())

    @guard.protect(chunk_text=lambda chunk: None)
    def generate(prompt):
        yield {"text": f"how to make {MARK}"}

    with pytest.raises(InvalidInputError, match="extractor"):
        list(generate("hi"))
