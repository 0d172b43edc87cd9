"""Reading what an LLM returned: every choice's text, tool calls included, and streamed chunks.

A result a guard cannot read raises :class:`~guardsdk.errors.InvalidInputError`; it is never checked
as an empty response. Tool calls (name and arguments) are model output, shown as
``[tool call] name(arguments)`` (see :func:`guardsdk.texts.conversation.tool_call_text`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from guardsdk.errors import InvalidInputError
from guardsdk.texts.conversation import content_text, extra_texts, field, message_text


def _choice_text(choice: Any) -> str:
    message = field(choice, "message")
    if message is not None:
        return message_text(message)
    text = field(choice, "text")
    if not isinstance(text, str):
        raise InvalidInputError(f"a completion choice has {type(text).__name__} text; cannot check it")
    return text


def output_texts(value: Any) -> list[str]:
    """The text of every output in an LLM result: a str, an OpenAI (chat) completion's choices, a
    LangChain message, or a ``{"content": ...}`` dict."""
    if isinstance(value, str):
        return [value]
    choices = field(value, "choices")
    if choices is not None:
        if not choices:
            raise InvalidInputError("the completion has no choices to check")
        return [_choice_text(choice) for choice in choices]
    if hasattr(value, "content") or (isinstance(value, Mapping) and "content" in value):
        return [message_text(value)]
    raise InvalidInputError(f"cannot find the response text in a {type(value).__name__}; pass response=<extractor>")


def _delta_tool_text(delta: Any) -> str:
    """Streamed tool-call fragments: a name opens ``[tool call] name(``, argument pieces follow (OpenAI
    ``tool_calls`` and legacy ``function_call``, LangChain ``tool_call_chunks``)."""
    calls = [(field(field(c, "function"), "name"), field(field(c, "function"), "arguments"))
             for c in field(delta, "tool_calls") or ()]  # fmt: skip
    calls += [(field(c, "name"), field(c, "args")) for c in field(delta, "tool_call_chunks") or ()]
    legacy = field(delta, "function_call")
    if legacy is not None:
        calls.append((field(legacy, "name"), field(legacy, "arguments")))
    return "".join((f"\n[tool call] {name}(" if name else "") + _as_text(arguments) for name, arguments in calls)


def _as_text(value: Any) -> str:
    """A streamed fragment as text; a structured one as its JSON, never dropped."""
    if value is None or isinstance(value, str):
        return value or ""
    return json.dumps(value, ensure_ascii=False, default=str)


def chunk_text(chunk: Any) -> str:
    """The text a streamed chunk adds: content and tool-call fragments (of the one choice a guarded
    stream may have); a usage-only chunk adds nothing."""
    if isinstance(chunk, str):
        return chunk
    choices = field(chunk, "choices")
    if choices is not None:
        if not choices:
            return ""
        if len(choices) > 1 or (field(choices[0], "index") or 0) != 0:
            raise InvalidInputError("a guarded stream has one choice; several (n > 1) cannot be checked as a stream")
        delta = field(choices[0], "delta")
        if delta is None:
            return _choice_text(choices[0])
        return content_text(field(delta, "content")) + "".join(extra_texts(delta)) + _delta_tool_text(delta)
    if hasattr(chunk, "content") or (isinstance(chunk, Mapping) and "content" in chunk):
        return content_text(field(chunk, "content")) + "".join(extra_texts(chunk)) + _delta_tool_text(chunk)
    raise InvalidInputError(f"cannot find the text of a streamed {type(chunk).__name__}; pass chunk_text=<extractor>")
