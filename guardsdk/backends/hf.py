"""Hugging Face transformers backend: a local folder or a hub id."""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from guardsdk.backends.base import (
    Generation,
    ThreadedAsyncMixin,
    continuation_tokens,
    failed_generation,
    files_fingerprint,
)
from guardsdk.backends.devices import placement
from guardsdk.errors import BackendError, ModelNotFoundError, describe

_HOW_TO_GET = (
    "download it first, e.g. `hf download {id}` (or `huggingface-cli download {id}`) on a machine with "
    "network access, then pass the local folder; offline mode is on when HF_HUB_OFFLINE=1"
)


def _logprobs(logits: Any, tokens: Iterable[int]) -> dict[int, float]:
    """log softmax(logits) of each of ``tokens`` (one position's logits)."""
    log_z = logits.float().logsumexp(-1)
    return {token: float(logits[token].float() - log_z) for token in tokens}


class _WatchedLogprobs:
    """A logits processor that changes nothing: at each step whose greedy choice is a watched id, it records
    the log-probability of every watched id (per row of the batch, by step)."""

    def __init__(self, watch_ids: frozenset[int], width: int, rows: int) -> None:
        self.watch_ids = watch_ids
        self.width = width
        self.watched: list[dict[int, dict[int, float]]] = [{} for _ in range(rows)]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        step = input_ids.shape[1] - self.width
        for row, choice in enumerate(scores.argmax(-1).tolist()):
            if choice in self.watch_ids:
                self.watched[row][step] = _logprobs(scores[row], self.watch_ids)
        return scores


class HFBackend(ThreadedAsyncMixin):
    """Runs a causal LM with transformers, batched with left padding: on the best device present by default
    (CUDA, MPS, else CPU; bfloat16 on a GPU, float32 on a CPU)."""

    def __init__(self, model: Any, tokenizer: Any, *, name: str, max_batch_size: int = 8) -> None:
        import torch

        self._torch = torch
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.name = name
        self.fingerprint: str | None = None  # of the model's files, when loaded from a local folder
        self.max_batch_size = max_batch_size
        self.context_length = int(getattr(model.config, "max_position_embeddings", 4096))
        self._lock = threading.Lock()
        # A fast tokenizer sets per-call options (split_special_tokens, padding) on one shared object before
        # encoding: calls at once from several threads could mix them (control-token text read as a control
        # token). Every tokenizer call holds this.
        self._tokenizing = threading.Lock()

    @classmethod
    def from_pretrained(
        cls,
        model_id_or_path: str | os.PathLike[str],
        *,
        dtype: str = "auto",
        device: str = "auto",
        local_files_only: bool | None = None,
        max_batch_size: int = 8,
        **model_kwargs: Any,
    ) -> HFBackend:
        """Load a model and its tokenizer; a missing model raises :class:`ModelNotFoundError`. ``device`` and
        ``dtype`` default to the best device present, bfloat16 on a GPU and float32 on a CPU (logged)."""
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise BackendError(
                "the Hugging Face backend needs torch and transformers: pip install 'guardsdk[hf]'"
            ) from exc
        model_id = str(model_id_or_path)
        device, dtype = placement(device, dtype, what=model_id)
        if local_files_only is None:
            local_files_only = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
        try:
            tokenizer = AutoTokenizer.from_pretrained(model_id, local_files_only=local_files_only)
            model = AutoModelForCausalLM.from_pretrained(
                model_id, dtype=getattr(torch, dtype), local_files_only=local_files_only, **model_kwargs
            ).to(device)
        except OSError as exc:
            raise ModelNotFoundError(
                f"model {model_id!r} was not found locally or could not be fetched; "
                + _HOW_TO_GET.format(id=model_id)
                + f" ({exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            ) from None
        backend = cls(
            model, tokenizer, name=os.path.basename(model_id.rstrip("/")) or model_id, max_batch_size=max_batch_size
        )
        if Path(model_id).is_dir():
            backend.fingerprint = files_fingerprint(list(Path(model_id).iterdir()))
        return backend

    def tokenize(self, text: str) -> list[int]:
        with self._tokenizing:
            return list(self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def input_ids(self, text: str, special_tokens: bool = False) -> list[int]:
        """The token ids the model is run on: BOS (as the tokenizer adds it) then the text; control-token
        text is a control token only with ``special_tokens``."""
        with self._tokenizing:
            encoded = self.tokenizer(text, add_special_tokens=True, split_special_tokens=not special_tokens)
        return list(encoded["input_ids"])

    def _decode_continuation(self, prompt_ids: list[int], new_ids: list[int]) -> str:
        """The text ``new_ids`` add after the prompt (SentencePiece decoders drop a leading space when
        decoding a fragment alone; decoding in context keeps it)."""
        options = {"skip_special_tokens": True, "clean_up_tokenization_spaces": False}
        context = prompt_ids[-8:]
        head = self.tokenizer.decode(context, **options)
        full = self.tokenizer.decode(context + new_ids, **options)
        return full[len(head) :] if full.startswith(head) else self.tokenizer.decode(new_ids, **options)

    def _stop_token_ids(self) -> list[int]:
        eos = self.model.generation_config.eos_token_id
        ids = eos if isinstance(eos, list) else [eos]
        return [i for i in ids if i is not None] or [self.tokenizer.eos_token_id]

    def _generate_batch(
        self,
        inputs: Sequence[str],
        max_tokens: int,
        stop: Sequence[str] | None,
        timeout_s: float | None,
        special_tokens: bool,
        watch_ids: frozenset[int],
    ) -> list[Generation]:
        torch = self._torch
        rows = [self.input_ids(text, special_tokens) for text in inputs]
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=self.model.device)
        attention = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=self.model.device)
        eos_ids = self._stop_token_ids()
        kwargs: dict[str, Any] = {}
        if stop:
            kwargs.update(stop_strings=list(stop), tokenizer=self.tokenizer)
        if timeout_s is not None:
            kwargs["max_time"] = timeout_s
        recorder = _WatchedLogprobs(watch_ids, width, len(rows))
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                max_new_tokens=max_tokens,
                do_sample=False,
                eos_token_id=eos_ids,
                pad_token_id=pad,
                logits_processor=[recorder] if watch_ids else None,
                **kwargs,
            )
        new_tokens = out[:, width:].tolist()
        results = []
        for number, (row, prompt) in enumerate(zip(new_tokens, rows, strict=True)):
            ended = next((i for i, tok in enumerate(row) if tok in eos_ids), None)
            new_ids = row if ended is None else row[:ended]
            text = self._decode_continuation(prompt, new_ids)
            finish = "stop" if ended is not None else "length"
            for s in stop or ():
                if s in text:
                    text, finish = text[: text.index(s)], "stop"
            if finish == "length" and len(new_ids) < max_tokens:
                finish = "timeout" if timeout_s is not None else "stop"
            watched = {step: logprobs for step, logprobs in recorder.watched[number].items() if step < len(new_ids)}
            results.append(Generation(text, len(prompt), len(new_ids), finish, tuple(new_ids), watched=watched))
        return results

    def generate(
        self,
        inputs: Sequence[str],
        *,
        max_tokens: int,
        stop: Sequence[str] | None = None,
        timeout_s: float | None = None,
        special_tokens: bool = False,
        watch_ids: Iterable[int] = (),
    ) -> list[Generation]:
        """Generate greedily in batches of ``max_batch_size``; a batch that fails is its inputs' error
        (``watch_ids``: see :class:`~guardsdk.backends.base.NextTokenScorer`)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        results: list[Generation] = []
        watch = frozenset(watch_ids)
        with self._lock:
            if self.model is None:
                raise BackendError("backend is closed")
            for start in range(0, len(inputs), self.max_batch_size):
                chunk = inputs[start : start + self.max_batch_size]
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    results.extend(Generation("", 0, 0, "timeout") for _ in chunk)
                    continue
                try:
                    results.extend(self._generate_batch(chunk, max_tokens, stop, remaining, special_tokens, watch))
                except Exception as exc:
                    results.extend(failed_generation(describe(exc)) for _ in chunk)
        return results

    def next_token_probs(
        self, texts: Sequence[str], candidates: Sequence[str], *, special_tokens: bool = False
    ) -> list[tuple[float, ...]]:
        """See :class:`~guardsdk.backends.base.NextTokenScorer`: one forward pass per text."""
        torch = self._torch
        results = []
        with self._lock, torch.inference_mode():
            if self.model is None:
                raise BackendError("backend is closed")
            for text in texts:
                ids, firsts = continuation_tokens(lambda t: self.input_ids(t, special_tokens), text, candidates)
                logits = self.model(torch.tensor([ids], device=self.model.device)).logits[0, -1]
                logprobs = _logprobs(logits, firsts)
                results.append(tuple(math.exp(logprobs[token]) for token in firsts))
        return results

    def close(self) -> None:
        """Drop the model; later calls raise :class:`BackendError`."""
        with self._lock:
            self.model = None
