"""Training rows tokenized exactly as the guard sees them, fitted to ``max_length`` by cutting user text.

The prompt is tokenized alone (with the BOS token, as at inference) and each output alone after it (as the
model generates it), so no token merges across the boundary: trl's "tokenized prompt is not a prefix of the
tokenized prompt+completion" warning cannot arise, and training sees the context inference sees. A row
longer than ``max_length`` keeps its whole output (the trace and its answers) and has the middle of its
prompt and response cut (:func:`guardsdk.detectors.truncation.fit_to_budget`, what the guard does to long
inputs at check time); only a row whose output alone leaves no room for the conversation is left out.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from guardsdk.detectors.truncation import fit_to_budget
from guardsdk.families.guardreasoner.template import build_input, split_input

logger = logging.getLogger("guardsdk_trainer")


class TokenizerCodec:
    """A Hugging Face tokenizer as the ``tokenize`` / ``detokenize`` pair ``fit_to_budget`` reads."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def tokenize(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False, split_special_tokens=True).input_ids

    def detokenize(self, ids: Any) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)


@dataclass
class FitReport:
    """How many rows were kept whole, kept with their user text cut, or left out (and why)."""

    max_length: int
    rows: int = 0
    cut: int = 0
    dropped: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def kept(self) -> int:
        return self.rows - self.dropped

    def summary(self) -> dict[str, Any]:
        return {"rows": self.rows, "kept": self.kept, "cut_to_fit": self.cut, "dropped": self.dropped,
                "max_length": self.max_length, "dropped_why": self.reasons}  # fmt: skip

    def log(self, what: str) -> None:
        if self.cut or self.dropped:
            logger.warning(
                "%s: %d of %d rows longer than max_length %d: %d kept with the middle of their user text cut "
                "(as the guard cuts long inputs), %d left out (%s)",
                what, self.cut + self.dropped, self.rows, self.max_length, self.cut, self.dropped,
                ", ".join(f"{n} {why}" for why, n in self.reasons.items()) or "none",
            )  # fmt: skip


def prompt_ids(tokenizer: Any, model_input: str, room: int, report: FitReport) -> list[int] | None:
    """The input's tokens (BOS included), its user text cut to fit ``room`` tokens; None when it cannot fit."""
    ids = tokenizer(model_input, split_special_tokens=True).input_ids
    if len(ids) <= room:
        return ids
    special = len(ids) - len(TokenizerCodec(tokenizer).tokenize(model_input))
    prompt, response = split_input(model_input)
    try:
        fitted = fit_to_budget(prompt, response, room - special, TokenizerCodec(tokenizer))
    except ValueError:
        report.reasons["output alone too long"] = report.reasons.get("output alone too long", 0) + 1
        return None
    ids = tokenizer(build_input(fitted.prompt, fitted.response), split_special_tokens=True).input_ids
    if len(ids) > room:  # re-tokenizing the cut edges can cost a token or two more than counted
        report.reasons["cut did not fit"] = report.reasons.get("cut did not fit", 0) + 1
        return None
    report.cut += 1
    return ids


def output_ids(tokenizer: Any, text: str) -> list[int]:
    """An output's tokens as the model generates them, ending with EOS."""
    return [*TokenizerCodec(tokenizer).tokenize(text), tokenizer.eos_token_id]


def sft_features(rows: Sequence[tuple[str, str]], tokenizer: Any, max_length: int) -> tuple[list[dict], FitReport]:
    """``(model input, trace)`` rows as trl's pre-tokenized ``input_ids`` / ``completion_mask`` rows."""
    report = FitReport(max_length)
    out = []
    for model_input, trace in rows:
        report.rows += 1
        completion = output_ids(tokenizer, trace)
        prompt = prompt_ids(tokenizer, model_input, max_length - len(completion), report)
        if prompt is None:
            report.dropped += 1
            continue
        out.append({"input_ids": prompt + completion, "completion_mask": [0] * len(prompt) + [1] * len(completion)})
    return out, report


def dpo_features(pairs: Sequence[Any], tokenizer: Any, max_length: int) -> tuple[list[dict], FitReport]:
    """Preference pairs as pre-tokenized ``prompt_ids`` / ``chosen_ids`` / ``rejected_ids`` / ``weight`` rows."""
    report = FitReport(max_length)
    out = []
    for pair in pairs:
        report.rows += 1
        chosen, rejected = output_ids(tokenizer, pair.chosen), output_ids(tokenizer, pair.rejected)
        prompt = prompt_ids(tokenizer, pair.prompt, max_length - max(len(chosen), len(rejected)), report)
        if prompt is None:
            report.dropped += 1
            continue
        out.append({"prompt_ids": prompt, "chosen_ids": chosen, "rejected_ids": rejected, "weight": pair.weight})
    return out, report
