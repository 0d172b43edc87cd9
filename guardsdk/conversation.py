"""Presenting a multi-turn conversation to a single-turn guard.

GuardReasoner judges one request and one response. A conversation is shown to it as:

- prompt: the earlier turns as a transcript (``System:``, ``User:``, ``Assistant:`` lines under
  ``[Earlier conversation]``), then ``[Current request]`` and the last user message — so both the last
  user turn and what led up to it are seen;
- response: the last assistant message if it comes after the last user message, else none.

With a long history the input budget keeps the head and the tail (the current request) of the prompt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from guardsdk.errors import InvalidInputError

EARLIER = "[Earlier conversation]"
CURRENT = "[Current request]"
_ROLE_NAMES = {"system": "System", "developer": "System", "user": "User", "human": "User", "assistant": "Assistant",
               "ai": "Assistant", "tool": "Tool", "function": "Tool"}  # fmt: skip


def message_role_and_text(message: Any) -> tuple[str, str]:
    """The role and text of an OpenAI-style dict or a LangChain message."""
    if isinstance(message, Mapping):
        role, content = message.get("role", ""), message.get("content", "")
    else:
        role, content = getattr(message, "type", "") or getattr(message, "role", ""), getattr(message, "content", "")
    return str(role).lower(), content_text(content)


def content_text(content: Any) -> str:
    """Text of a message content: a string, or a list of parts (text parts joined)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
        return "\n".join(parts)
    raise InvalidInputError(f"unsupported message content of type {type(content).__name__}")


def conversation_to_pair(messages: Sequence[Any]) -> tuple[str, str | None]:
    """The (prompt, response) a guard checks for ``messages`` (see the module docstring)."""
    turns = [message_role_and_text(m) for m in messages]
    user_positions = [i for i, (role, _) in enumerate(turns) if _ROLE_NAMES.get(role) == "User"]
    if not user_positions:
        raise InvalidInputError("the conversation has no user message")
    last_user = user_positions[-1]
    after = [text for role, text in turns[last_user + 1 :] if _ROLE_NAMES.get(role) == "Assistant"]
    response = after[-1] if after else None
    history = turns[:last_user]
    current = turns[last_user][1]
    if not history:
        return current, response
    lines = [EARLIER] + [f"{_ROLE_NAMES.get(role, role.title() or 'Unknown')}: {text}" for role, text in history]
    return "\n".join([*lines, "", CURRENT, current]), response
