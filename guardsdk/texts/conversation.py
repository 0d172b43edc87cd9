"""Presenting a conversation to a single-turn guard, and reading the text of LLM messages and outputs.

Trust: the **leading** ``system``/``developer`` messages (those before any other message) are the app's
own instructions and are not shown to the guard. Every other message is text the LLM will read that the
app did not write, so it is shown: user turns, assistant turns (their tool calls included), ``tool`` /
``function`` results (the usual carrier of indirect prompt injection), and any system message that comes
later. A message whose content cannot be read as text (bytes, an image or audio part, ``text: None``)
raises :class:`~guardsdk.errors.InvalidInputError`: a guard never checks what it cannot see.

The request is presented as the last user message alone when nothing else is shown; otherwise as

```
[Earlier conversation]
User: ...
Assistant: ...
[Current request]
<the last user message>
[After the request]
Tool: <a tool result>
Assistant: <a prefill>
```

(each block only when it has turns). :func:`request_prompt` presents every shown message (before an LLM
call, a trailing assistant message is a prefill the model continues); :func:`conversation_to_pair` takes a
final assistant message as the response to check and presents the rest as the prompt.

Fields: a message's ``name`` is information for the model (OpenAI), so it is shown, as ``[name] ...`` before the
text. In an OpenAI-style message dict every other key the guard does not read — a ``thinking`` or ``documents``
key, an unknown key in a content part or a tool call — is text a chat template may render and the guard would never
see, so it is refused with :class:`~guardsdk.errors.UncheckedFieldError` unless the caller passes it by its scoped
name (``messages.KEY``, ``messages.content.KEY``, ``messages.tool_calls.KEY``; ``passed``). Identifier fields
(``tool_call_id``, a tool call's ``id`` and ``type``) must look like identifiers. A key whose value is ``None`` or
empty counts as absent (SDK objects dumped to dicts carry many).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from guardsdk.errors import InvalidInputError, UncheckedFieldError

EARLIER = "[Earlier conversation]"
CURRENT = "[Current request]"
AFTER = "[After the request]"
_ROLE_NAMES = {"system": "System", "developer": "System", "user": "User", "human": "User", "assistant": "Assistant",
               "ai": "Assistant", "tool": "Tool", "function": "Tool"}  # fmt: skip
_TRUSTED = frozenset({"System"})
#: Content part types that hold text, and the key that holds it.
_TEXT_PARTS = {"text": "text", "input_text": "text", "output_text": "text", "refusal": "refusal"}
_TOOL_PARTS = frozenset({"tool_use", "function_call"})
#: Fields where OpenAI-compatible servers and LangChain put model text beside ``content``.
EXTRA_TEXT_FIELDS = ("refusal", "reasoning_content", "reasoning")
#: The keys of a message dict, a content part and a tool call that the guard reads (or that carry no text).
MESSAGE_KEYS = frozenset({"role", "content", "name", "tool_calls", "function_call", "tool_call_id", *EXTRA_TEXT_FIELDS})
PART_KEYS = frozenset({"type", "text", "refusal", "name", "input", "arguments", "id"})
TOOL_CALL_KEYS = frozenset({"id", "type", "function", "index"})
FUNCTION_KEYS = frozenset({"name", "arguments"})
#: Values that count as an absent field.
EMPTY = (None, "", [], {})
#: What an identifier field may hold: an id, never text for the model.
IDENTIFIER = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def field(obj: Any, name: str, default: Any = None) -> Any:
    """``obj[name]`` for a mapping, else ``obj.name``: dicts and SDK objects alike."""
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def tool_call_text(name: Any, arguments: Any) -> str:
    """How a tool call is shown to the guard: ``[tool call] name(arguments)``."""
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False, default=str)
    return f"[tool call] {name or ''}({arguments})"


def tool_calls_text(message: Any) -> list[str]:
    """The tool calls a message makes (OpenAI ``tool_calls``/``function_call``, LangChain ``tool_calls``,
    ``invalid_tool_calls`` and ``tool_call_chunks``), each as :func:`tool_call_text`."""
    texts = []
    calls = field(message, "tool_calls") or ()
    if not isinstance(calls, Sequence) or isinstance(calls, (str, bytes)):
        raise InvalidInputError(f"tool_calls must be a list of tool calls, not {type(calls).__name__}")
    for call in calls:
        if isinstance(call, (str, bytes)) or (field(call, "function") is None and field(call, "name") is None):
            raise InvalidInputError("a tool call without a function object cannot be checked")
        function = field(call, "function")
        if function is not None and (isinstance(function, (str, bytes)) or field(function, "name", ...) is ...):
            raise InvalidInputError("a tool call's function must be an object with a name and arguments")
        if function is not None:  # OpenAI
            texts.append(tool_call_text(field(function, "name"), field(function, "arguments")))
        else:  # LangChain
            texts.append(tool_call_text(field(call, "name"), field(call, "args")))
    for key in ("invalid_tool_calls", "tool_call_chunks"):
        texts += [tool_call_text(field(c, "name"), field(c, "args")) for c in field(message, key) or ()]
    legacy = field(message, "function_call")
    if isinstance(legacy, (str, bytes)):
        raise InvalidInputError("function_call must be an object with a name and arguments")
    if legacy is not None:
        texts.append(tool_call_text(field(legacy, "name"), field(legacy, "arguments")))
    return texts


def content_text(content: Any) -> str:
    """Text of a message content: a string, or a list of text parts; anything unreadable raises."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence) and not isinstance(content, (bytes, bytearray)):
        return "\n".join(_part_text(part) for part in content)
    raise InvalidInputError(f"message content of type {type(content).__name__} cannot be checked; pass text")


def _part_text(part: Any) -> str:
    if isinstance(part, str):
        return part
    kind = field(part, "type")
    if kind in _TEXT_PARTS:
        text = field(part, _TEXT_PARTS[kind])
        if not isinstance(text, str):
            raise InvalidInputError(f"a {kind!r} content part has {type(text).__name__} text; pass text")
        return text
    if kind in _TOOL_PARTS:
        return tool_call_text(field(part, "name"), field(part, "input", field(part, "arguments")))
    raise InvalidInputError(f"a {kind!r} content part cannot be checked by a text guard")


def extra_texts(message: Any) -> list[str]:
    """Model-written text a message carries outside ``content``: a ``refusal``, a reasoning trace
    (``reasoning_content``, ``reasoning``), on the message itself or in LangChain's ``additional_kwargs``."""
    sources = (message, field(message, "additional_kwargs") or {})
    values = [field(source, key) for source in sources for key in EXTRA_TEXT_FIELDS]
    # An SDK object's fields beyond its schema (an upstream's "thinking", "reasoning_details"): model text too.
    extra = getattr(message, "model_extra", None)
    if isinstance(extra, Mapping) and not isinstance(message, Mapping):
        values += [value for key, value in extra.items() if key not in EXTRA_TEXT_FIELDS and value not in EMPTY]
    # A structured value (a dict of reasoning details, say) is checked as its JSON text, never skipped.
    return [
        v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str) for v in values if v is not None
    ]


def name_text(message: Any) -> str:
    """How a message's ``name`` is shown to the guard: ``[name] ...`` (empty when it has none)."""
    name = field(message, "name")
    if name is None or name == "":
        return ""
    if not isinstance(name, str):
        raise InvalidInputError(f"a message name must be text to be checked, not {type(name).__name__}")
    return f"[name] {name}"


def message_text(message: Any) -> str:
    """Everything a message says: its name, content, refusal and reasoning texts, and its tool calls."""
    texts = (name_text(message), content_text(field(message, "content")), *extra_texts(message),
             *tool_calls_text(message))  # fmt: skip
    return "\n".join(t for t in texts if t)


def _present_keys(obj: Mapping[str, Any], known: frozenset[str], scope: str) -> list[str]:
    return [f"{scope}.{key}" for key, value in obj.items() if key not in known and value not in EMPTY]


def _identifier(value: Any, what: str) -> None:
    if value is not None and not (isinstance(value, str) and IDENTIFIER.fullmatch(value)):
        raise InvalidInputError(f"{what} must be an identifier ({IDENTIFIER.pattern}), not text the guard would skip")


def unchecked_fields(messages: Sequence[Any]) -> list[str]:
    """The scoped names of the fields of OpenAI-style message dicts that the guard does not read (see the module
    docstring), in order, once each; identifier fields that hold anything but an identifier raise."""
    found: list[str] = []
    for message in messages:
        if not isinstance(message, Mapping):  # SDK and LangChain objects: their fields are read by name, but an
            extra = getattr(message, "model_extra", None)  # SDK object's fields beyond its schema are not
            found += _present_keys(extra, MESSAGE_KEYS, "messages") if isinstance(extra, Mapping) else []
            continue
        found += _present_keys(message, MESSAGE_KEYS, "messages")
        _identifier(message.get("tool_call_id"), "a message's tool_call_id")
        content = message.get("content")
        for part in content if isinstance(content, list) else ():
            if isinstance(part, Mapping):
                found += _present_keys(part, PART_KEYS, "messages.content")
                _identifier(part.get("id"), "a content part's id")
        for call in message.get("tool_calls") or ():
            if isinstance(call, Mapping):
                found += _present_keys(call, TOOL_CALL_KEYS, "messages.tool_calls")
                _identifier(call.get("id"), "a tool call's id")
                _identifier(call.get("type"), "a tool call's type")
                function = call.get("function")
                if isinstance(function, Mapping):
                    found += _present_keys(function, FUNCTION_KEYS, "messages.tool_calls.function")
    return list(dict.fromkeys(found))


def refuse_unchecked(messages: Sequence[Any], passed: Collection[str] = ()) -> list[str]:
    """The unchecked fields of ``messages`` that ``passed`` lets through (for the caller to count); raises
    :class:`UncheckedFieldError` for any other."""
    fields = unchecked_fields(messages)
    refused = [name for name in fields if name not in passed]
    if refused:
        why = (
            "a model may read them; send that text in content, or pass the fields by name "
            "(guard.wrap(..., pass_fields=...), guardsdk serve --pass-field)"
        )
        raise UncheckedFieldError(f"message fields {refused} are not checked by the guard, and {why}")
    return fields


def message_role(message: Any) -> str:
    """The display role of an OpenAI-style dict, an SDK message or a LangChain message."""
    role = field(message, "role") if isinstance(message, Mapping) else field(message, "type") or field(message, "role")
    role = str(role or "").lower()
    return _ROLE_NAMES.get(role, role.title() or "Unknown")


def _shown_turns(messages: Any, passed: Collection[str]) -> list[tuple[str, str]]:
    if messages is None or isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise InvalidInputError(f"messages must be a list of messages, not {type(messages).__name__}")
    turns = [(message_role(m), message_text(m)) for m in messages]
    refuse_unchecked(messages, passed)
    first_untrusted = next((i for i, (role, _) in enumerate(turns) if role not in _TRUSTED), len(turns))
    shown = turns[first_untrusted:]
    if not any(text.strip() for _, text in shown):
        raise InvalidInputError("the conversation has nothing to check: no message after the system prompt")
    return shown


def _present(turns: list[tuple[str, str]]) -> str:
    users = [i for i, (role, _) in enumerate(turns) if role == "User"]
    if len(turns) == 1 and users:
        return turns[0][1]
    if not users:
        return "\n".join(f"{role}: {text}" for role, text in turns)
    last = users[-1]
    blocks = []
    if last:
        blocks.append("\n".join([EARLIER, *(f"{role}: {text}" for role, text in turns[:last])]))
    blocks.append(f"{CURRENT}\n{turns[last][1]}")
    if last + 1 < len(turns):
        blocks.append("\n".join([AFTER, *(f"{role}: {text}" for role, text in turns[last + 1 :])]))
    return "\n\n".join(blocks)


def request_prompt(messages: Sequence[Any], passed: Collection[str] = ()) -> str:
    """The prompt a guard checks before an LLM call on ``messages``: every shown message (``passed``: unchecked
    fields let through, see the module docstring)."""
    return _present(_shown_turns(messages, passed))


def conversation_to_pair(messages: Sequence[Any], passed: Collection[str] = ()) -> tuple[str, str | None]:
    """The (prompt, response) a guard checks for a finished conversation: a final assistant message is
    the response, the rest the prompt (see the module docstring)."""
    turns = _shown_turns(messages, passed)
    if len(turns) > 1 and turns[-1][0] == "Assistant":
        return _present(turns[:-1]), turns[-1][1]
    return _present(turns), None
