"""A backend that replays recorded GuardReasoner outputs: a test double for integration logic.

It answers each input with the output a real model gave for exactly that input, e.g. the published
``generated_predictions.jsonl`` files of GuardReasoner-1B/8B. Inputs it has no record of raise
:class:`BackendError`, so a test can never pass on an invented answer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from guardsdk.backends.base import Generation, files_fingerprint
from guardsdk.errors import BackendError


class ReplayBackend:
    """Replays ``{model input: recorded output}``; token counts are whitespace-split estimates."""

    context_length = 1_000_000
    finish_reason = "stop"  # how every replayed generation ends (a scripted test model may say otherwise)

    def __init__(self, records: Mapping[str, str], *, name: str = "replay", by_prompt: bool = False) -> None:
        self.records = dict(records)
        self.name = name
        self.fingerprint: str | None = None  # of the prediction files, when loaded from them
        self.calls: list[str] = []
        #: With ``by_prompt``, an input without an exact record gets the record of the same prompt
        #: (so partial responses, as in streaming window checks, replay their full item's verdict).
        self.by_prompt = by_prompt
        self._prompt_index = {self._prompt_key(text): text for text in self.records} if by_prompt else {}

    @staticmethod
    def _prompt_key(model_input: str) -> str:
        return model_input.split("\n\nAI assistant:\n", 1)[0]

    def lookup(self, model_input: str) -> str:
        """The recorded output for ``model_input``; raises :class:`BackendError` when there is none."""
        if model_input in self.records:
            return self.records[model_input]
        if self.by_prompt and self._prompt_key(model_input) in self._prompt_index:
            return self.records[self._prompt_index[self._prompt_key(model_input)]]
        raise BackendError("no recorded output for this input")

    @classmethod
    def from_predictions(
        cls, paths: Iterable[str | os.PathLike[str]], *, name: str = "replay", by_prompt: bool = False
    ) -> ReplayBackend:
        """Load GuardReasoner ``generated_predictions.jsonl`` files (``prompt`` → ``predict``)."""
        records: dict[str, str] = {}
        files = [Path(path) for path in paths]
        for path in files:
            with path.open(encoding="utf-8") as handle:
                for line in handle:
                    row = json.loads(line)
                    records[row["prompt"]] = row["predict"]
        backend = cls(records, name=name, by_prompt=by_prompt)
        backend.fingerprint = files_fingerprint(files)
        return backend

    def tokenize(self, text: str) -> list[str]:
        return text.split(" ")

    def detokenize(self, ids: Sequence[str]) -> str:
        return " ".join(ids)

    def generate(
        self,
        inputs: Sequence[str],
        *,
        max_tokens: int,
        stop: Sequence[str] | None = None,
        timeout_s: float | None = None,
        special_tokens: bool = False,
    ) -> list[Generation]:
        out = []
        for text in inputs:
            self.calls.append(text)
            recorded = self.lookup(text)
            out.append(Generation(recorded, len(text.split()), len(recorded.split()), self.finish_reason))
        return out

    async def agenerate(
        self,
        inputs: Sequence[str],
        *,
        max_tokens: int,
        stop: Sequence[str] | None = None,
        timeout_s: float | None = None,
        special_tokens: bool = False,
    ) -> list[Generation]:
        return self.generate(inputs, max_tokens=max_tokens, stop=stop, timeout_s=timeout_s)  # nothing to tokenize

    def close(self) -> None:
        self.records.clear()
