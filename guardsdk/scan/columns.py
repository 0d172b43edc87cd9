"""Which columns of a scanned row the guard reads: a prompt and a response, or an OpenAI ``messages`` list."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from guardsdk.errors import InvalidInputError, UncheckedFieldError
from guardsdk.texts.conversation import conversation_to_pair

#: The prefix of every column a scan writes; an input that already has such columns is refused.
PREFIX = "guard_"
#: The key a source puts in a row that could not be read (a bad JSON line, a CSV row of the wrong length), its value
#: why: not a string, so that no input (JSON keys, CSV headers and Arrow fields are strings) can hold it.
BAD_ROW: Any = ("guard", "bad_row")
#: The key of what a bad row's input held that no column keeps (a CSV row's extra cells), for its ``guard_error``.
BAD_DETAIL: Any = ("guard", "bad_detail")


class RowError(ValueError):
    """A row the guard cannot check (a missing column, a value of the wrong type): it becomes an undecided row."""


def _type_name(value: Any) -> str:
    return type(value).__name__


@dataclass(frozen=True)
class ColumnMap:
    """Where a row's texts are. ``messages`` (a column of OpenAI-style message lists, or JSON strings of them)
    wins over ``prompt`` / ``response``: a final assistant message is the response. ``response=None`` checks
    prompts only; a row whose response is missing, null or empty (blank) is a prompt-only check unless
    ``response_required`` (then it is a bad row that says why)."""

    prompt: str = "prompt"
    response: str | None = "response"
    messages: str | None = None
    response_required: bool = False

    def __post_init__(self) -> None:
        named = [name for name in (self.prompt, self.response, self.messages) if name]
        if not self.messages and not self.prompt:
            raise ValueError("name a prompt column or a messages column")
        if any(name.startswith(PREFIX) for name in named):
            raise ValueError(f"columns starting with {PREFIX!r} are the scan's own; rename the input's")

    def needed(self) -> list[str]:
        """The columns every row must have."""
        if self.messages:
            return [self.messages]
        return [self.prompt, *([self.response] if self.response and self.response_required else [])]

    def settings(self) -> dict[str, Any]:
        """What a resumed scan must read the same way."""
        return {"prompt": self.prompt, "response": self.response, "messages": self.messages,
                "response_required": self.response_required}  # fmt: skip

    def pair(self, row: Mapping[str, Any]) -> tuple[str, str | None]:
        """The (prompt, response) of ``row``; raises :class:`RowError` saying why there is none."""
        if self.messages:
            return self._from_messages(row)
        prompt = _text(row, self.prompt, required=True)
        assert prompt is not None
        response = _text(row, self.response, required=self.response_required) if self.response else None
        if response is not None and not response.strip() and not self.response_required:
            response = None  # an optional response left empty: a prompt-only check, as a null one
        return prompt, response

    def _from_messages(self, row: Mapping[str, Any]) -> tuple[str, str | None]:
        assert self.messages is not None
        if self.messages not in row:
            raise RowError(f"missing column {self.messages!r}")
        messages = row[self.messages]
        if isinstance(messages, str):
            try:
                messages = json.loads(messages)
            except ValueError as exc:
                raise RowError(f"column {self.messages!r} is text but not a JSON message list ({exc})") from None
        if not isinstance(messages, (list, tuple)):
            raise RowError(f"column {self.messages!r} is {_type_name(messages)}, not a message list")
        if not messages:
            raise RowError(f"column {self.messages!r} is an empty message list")
        try:
            return conversation_to_pair([_plain_message(m) for m in messages])
        except UncheckedFieldError as exc:  # its advice names the proxy's options; a scan has none to give
            said = str(exc).split(", and ")[0]
            raise RowError(f"column {self.messages!r}: {said}, and a model may read them: the row is undecided "
                           "(move their text into content, or drop them, to have it checked)") from None  # fmt: skip
        except InvalidInputError as exc:
            raise RowError(f"column {self.messages!r}: {exc}") from None


def _plain_message(message: Any) -> Any:
    """A message dict without the keys Arrow adds as nulls (a struct column has every message's keys)."""
    return {k: v for k, v in message.items() if v is not None} if isinstance(message, Mapping) else message


def _text(row: Mapping[str, Any], column: str, *, required: bool) -> str | None:
    if column not in row:
        if required:
            raise RowError(f"missing column {column!r}")
        return None
    value = row[column]
    if value is None:
        if required:
            raise RowError(f"column {column!r} is null")
        return None
    if not isinstance(value, str):
        raise RowError(f"column {column!r} is {_type_name(value)}, not text")
    return value


__all__ = ["BAD_DETAIL", "BAD_ROW", "PREFIX", "ColumnMap", "RowError"]
