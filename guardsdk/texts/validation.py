"""Checks on caller input, run before any backend is called."""

from __future__ import annotations

from guardsdk.errors import InvalidInputError


def validate_text(value: object, name: str, *, allow_empty: bool) -> str:
    """Return ``value`` if it is text a guard can check, else raise :class:`InvalidInputError`."""
    if value is None:
        raise InvalidInputError(f"{name} is None; pass a str")
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be str, not {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise InvalidInputError(f"{name} is empty")
    if "\x00" in value:
        raise InvalidInputError(f"{name} contains a NUL character at index {value.index(chr(0))}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"{name} contains a lone surrogate at index {exc.start}") from None
    return value


def validate_pair(prompt: object, response: object) -> tuple[str, str | None]:
    """Validate a prompt and an optional response."""
    checked_prompt = validate_text(prompt, "prompt", allow_empty=False)
    if response is None:
        return checked_prompt, None
    return checked_prompt, validate_text(response, "response", allow_empty=True)
