"""Fitting long prompts and responses into the guard's input budget."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from guardsdk.families.guardreasoner.template import build_input

#: Shown in place of the cut-out middle of a long text.
ELISION_MARKER = "\n[... {n} tokens elided by guardsdk ...]\n"


class Tokenizes(Protocol):
    def tokenize(self, text: str) -> list[Any]: ...
    def detokenize(self, ids: Any) -> str: ...


@dataclass(frozen=True)
class Fitted:
    """A prompt and response that fit the budget, and whether either was cut."""

    prompt: str
    response: str | None
    truncated: bool


def marker_cost(codec: Tokenizes) -> int:
    """Tokens an elision marker takes, plus slack for re-tokenizing the cut edges."""
    return len(codec.tokenize(ELISION_MARKER.format(n=10**6))) + 4


def cut_middle(text: str, tokens: list[Any], keep: int, codec: Tokenizes) -> str:
    """Keep the first and last ``keep // 2`` tokens of ``text`` with a visible marker between."""
    head = keep - keep // 2
    tail = keep // 2
    marker = ELISION_MARKER.format(n=len(tokens) - keep)
    return codec.detokenize(tokens[:head]) + marker + (codec.detokenize(tokens[-tail:]) if tail else "")


def split_budget(prompt_len: int, response_len: int | None, budget: int) -> tuple[int, int]:
    """Token allowances for prompt and response: half each, the shorter one's spare to the other."""
    if response_len is None:
        return budget, 0
    half = budget // 2
    if prompt_len <= half:
        return prompt_len, budget - prompt_len
    if response_len <= budget - half:
        return budget - response_len, response_len
    return half, budget - half


def fit_to_budget(
    prompt: str,
    response: str | None,
    max_input_tokens: int,
    codec: Tokenizes,
    template: Callable[[str, str | None], str] = build_input,
) -> Fitted:
    """Cut prompt and response so the whole model input (``template(prompt, response)``, GuardReasoner's by
    default) stays within ``max_input_tokens``.

    The budget covers the instruction and template too; the elision marker's own tokens are
    counted against the text it shortens.
    """
    overhead = len(codec.tokenize(template("", "" if response is not None else None)))
    cost = marker_cost(codec)
    budget = max_input_tokens - overhead
    if budget <= 2 * cost + 2:
        raise ValueError(f"max_input_tokens={max_input_tokens} leaves no room for the conversation")
    prompt_tokens = codec.tokenize(prompt)
    response_tokens = codec.tokenize(response) if response is not None else None
    if len(prompt_tokens) + len(response_tokens or ()) <= budget:
        return Fitted(prompt, response, False)
    prompt_keep, response_keep = split_budget(
        len(prompt_tokens), None if response_tokens is None else len(response_tokens), budget
    )
    if len(prompt_tokens) > prompt_keep:
        prompt = cut_middle(prompt, prompt_tokens, prompt_keep - cost, codec)
    if response is not None and response_tokens is not None and len(response_tokens) > response_keep:
        response = cut_middle(response, response_tokens, response_keep - cost, codec)
    return Fitted(prompt, response, True)
