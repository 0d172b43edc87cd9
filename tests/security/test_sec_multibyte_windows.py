"""Long Chinese and emoji input on llama-cpp-python's server: token windows are cut on character boundaries.

Llama 3's byte-level BPE tokens can hold part of a multi-byte UTF-8 character, so a window's edge can fall
inside one; llama-cpp-python's server decodes ``/extras/detokenize`` strictly and answers 500 for such a
slice, which left the whole check undecided. Everything here runs against a real ``python -m llama_cpp.server``
on 127.0.0.1 serving a GGUF with the real Llama 3 tokenizer.
"""

from __future__ import annotations

import codecs
import functools
from typing import Any

import httpx
import pytest
from servers import FlakyProxy, LlamaCppServer, free_port

from guardsdk import Guard, Policy
from guardsdk.backends.openai_server import OpenAIServerBackend
from guardsdk.backends.server_tokens import ServerTokens
from guardsdk.detectors.long_input import token_windows, window_ranges
from guardsdk.errors import BackendError
from guardsdk.families.guardreasoner.template import build_input
from guardsdk.tools.tiny_model import llama3_tokenizer

CHINESE = (
    "人工智能安全防护系统需要在用户输入到达大型语言模型之前进行检查，识别潜在的有害请求，例如制造危险物品、"
    "网络攻击或者诈骗。罕见的汉字如龘、靐、齉、爩、饕餮、魑魅魍魉也会被拆分成多个字节级别的词元。"
) * 25
EMOJI = "🙂🚀🌍🎉👍🔥💡🍕🐍🧪 👨‍👩‍👧‍👦 🏳️‍🌈 🇯🇵🇨🇳 🫠🪿🦩 " * 60
SHORT = "🙂🚀 龘靐 日本語 👨‍👩‍👧 end"


@pytest.fixture(scope="module")
def llama_server(tiny_gguf):
    server = LlamaCppServer(tiny_gguf)
    yield server
    server.stop()


@pytest.fixture
def tokens(llama_server):
    codec = ServerTokens(llama_server.base_url, llama_server.alias, {})
    assert codec.dialect == "llama-cpp-python"
    yield codec
    codec.close()


@functools.cache
def tokenizer() -> Any:
    return llama3_tokenizer()


def pieces(ids: list[int]) -> list[bytes]:
    """The UTF-8 bytes of each Llama 3 token of ``ids`` (the byte-level BPE alphabet read back to bytes)."""
    shown = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    hidden = [b for b in range(256) if b not in shown]
    to_byte = {chr(b): b for b in shown} | {chr(256 + n): b for n, b in enumerate(hidden)}
    return [bytes(to_byte[c] for c in token) for token in tokenizer().convert_ids_to_tokens(ids)]


def boundaries(ids: list[int]) -> list[int]:
    """The token indices that fall between two characters (no character is split there)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    found = [0]
    for k, piece in enumerate(pieces(ids), 1):
        decoder.decode(piece)
        if decoder.getstate()[0] == b"":
            found.append(k)
    return found


def expected(ids: list[int], start: int, end: int, cuts: list[int]) -> str | None:
    """The text of ``ids[start:end]`` with the tokens of a character cut at either edge dropped: from the first
    character boundary at or after ``start`` to the last at or before ``end``; None where that needs more than 3
    tokens dropped at an edge, or leaves no character."""
    first = min(k for k in cuts if k >= start)
    last = max(k for k in cuts if k <= end)
    if first >= last or first - start > 3 or end - last > 3:
        return None
    return b"".join(pieces(ids[first:last])).decode("utf-8")


def server_refuses(server: LlamaCppServer, ids: list[int]) -> bool:
    """Whether the server itself will not decode ``ids`` (asked directly, not through guardsdk)."""
    url = f"http://127.0.0.1:{server.port}/extras/detokenize"
    status = httpx.post(url, json={"model": server.alias, "tokens": ids}, timeout=30).status_code
    assert status in (200, 500)
    return status == 500


@pytest.mark.slow
def test_a_slice_cut_inside_a_character_drops_only_that_character(llama_server, tokens):
    ids = list(tokens.tokenize(SHORT))
    assert ids == tokenizer()(SHORT, add_special_tokens=False)["input_ids"] and b"".join(pieces(ids)) == SHORT.encode()
    cuts = boundaries(ids)
    inside = [k for k in range(len(ids)) if k not in cuts]
    assert inside and server_refuses(llama_server, ids[inside[0] :]) and server_refuses(llama_server, ids[: inside[0]])
    for start in range(len(ids)):
        for end in range(start + 1, len(ids) + 1):
            want = expected(ids, start, end, cuts)
            if want is None:  # inside one character, or farther from a boundary than is ever trimmed
                with pytest.raises(BackendError, match="trimmed"):
                    tokens.detokenize(ids[start:end])
            else:
                shown = tokens.detokenize(ids[start:end])
                assert shown == want and shown in SHORT and "\ufffd" not in shown


@pytest.mark.slow
@pytest.mark.parametrize("text", [CHINESE, EMOJI], ids=["chinese", "emoji"])
def test_long_chinese_and_emoji_input_is_checked_in_windows_without_a_backend_failure(llama_server, text):
    backend = OpenAIServerBackend(llama_server.base_url, llama_server.alias)
    try:
        ids = list(backend.tokenize(text))
        size = 160
        ranges = window_ranges(len(ids), size)
        cuts = boundaries(ids)
        cut = [(a, b) for a, b in ranges if a not in cuts or b not in cuts]
        assert len(ranges) > 4 and cut and server_refuses(llama_server, ids[slice(*cut[0])])  # the bug's trigger
        windows = token_windows(ids, size, backend)
        assert text.startswith(windows[0]) and text.endswith(windows[-1])
        for (a, b), window in zip(ranges, windows, strict=True):
            assert window == expected(ids, a, b, cuts) and window in text and "\ufffd" not in window
        overhead = len(backend.tokenize(build_input("", None)))
        guard = Guard(backend, max_input_tokens=overhead + 200, max_new_tokens=16,
                      policy=Policy(on_undecided="fail_open", max_windows=64))  # fmt: skip
        verdict = guard.check(text)
        assert verdict.windows > 4 and verdict.long_input
        assert verdict.failure is None and "detokenize" not in (verdict.error or ""), verdict.error
    finally:
        backend.close()


@pytest.mark.slow
def test_a_server_refusing_every_slice_costs_a_bounded_number_of_requests(llama_server, tokens):
    ids = list(tokens.tokenize(SHORT))
    proxy = FlakyProxy(f"http://127.0.0.1:{llama_server.port}", fail_every=1)  # answers every request with 503
    try:
        tokens.root = proxy.base_url.removesuffix("/v1")
        with pytest.raises(BackendError, match="trimmed"):
            tokens.detokenize(ids)
        assert proxy.requests == 16  # the slice, then 15 trims of up to 3 tokens at each edge
    finally:
        proxy.stop()


@pytest.mark.slow
def test_a_connection_error_is_never_retried_with_trims(tokens, monkeypatch):
    ids = list(tokens.tokenize(SHORT))
    sent = []
    post = tokens._http.post
    monkeypatch.setattr(tokens._http, "post", lambda *args, **kwargs: sent.append(args) or post(*args, **kwargs))
    tokens.root = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(BackendError, match="ConnectError") as caught:
        tokens.detokenize(ids[1:])
    assert len(sent) == 1 and "trimmed" not in str(caught.value)
