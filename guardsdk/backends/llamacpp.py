"""llama.cpp backend (llama-cpp-python): a local GGUF file, CPU-first."""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from guardsdk.backends import prefix_state
from guardsdk.backends.base import (
    Generation,
    ThreadedAsyncMixin,
    failed_generation,
    files_fingerprint,
)
from guardsdk.backends.drafting import DEFAULT_VERIFY_COSTS, REDECODE_MARGIN, Drafter, VerifyCosts, near_tie
from guardsdk.backends.llamacpp_build import batches_match_steps, measure_verify_costs
from guardsdk.backends.llamacpp_scoring import LlamaNextTokens, _logprobs
from guardsdk.errors import BackendError, ModelNotFoundError, describe


def _import_llama() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise BackendError("the llama.cpp backend needs llama-cpp-python: pip install 'guardsdk[gguf]'") from exc
    return llama_cpp


def default_threads() -> int:
    """Half the cores, at least one: on 2 cores, 1 thread checks in 0.22 s quiet and 0.23 s with the other
    core busy, where 2 threads take 0.17 s and 0.58 s (benchmarks/speed/bench_threads.py, docs/backends.md)."""
    return max(1, (os.cpu_count() or 1) // 2)


class LlamaCppBackend(LlamaNextTokens, ThreadedAsyncMixin):
    """Runs a GGUF model in-process.

    Decoding is greedy and, by default, drafted (exact mode, :mod:`guardsdk.backends.drafting`): tokens the
    model's earlier outputs or the input predict are verified in one batch with the next one and kept where
    the model's own greedy choice agrees; ``drafting=False`` decodes one token per step, ``"measure"`` times
    this machine's verify costs at load, or pass :class:`~guardsdk.backends.drafting.VerifyCosts`. Verify batches
    hold at most 3 tokens (:data:`~guardsdk.backends.drafting.EXACT_DRAFT`), which llama.cpp built as
    scripts/setup_env.sh builds it evaluates exactly as one-token steps: the output is plain greedy decoding's.
    On a build where they differ (llamafile's kernels), an output whose label word won by less than
    :data:`REDECODE_MARGIN` is decoded again one token per step (counted in ``redecoded``).
    :meth:`warm` (called by the detector) puts the family's shared instruction into the KV cache, restored
    from ``prefix_states`` (a folder; default under ``~/.cache/guardsdk``; None: never on disk) where an
    earlier process saved it (:mod:`guardsdk.backends.prefix_state`).
    The model stays loaded; threads default to half the cores (:func:`default_threads`): llama.cpp's
    threads wait for each other at every step, so one busy core stalls them all.
    Each call keeps the KV cache of the previous one and evaluates only the tokens after the longest common
    prefix, so the shared GuardReasoner instruction is evaluated once, not per call.
    A lock makes concurrent calls safe (tokenizing included); they run one at a time. ``close()`` while
    a call runs stops it at the next token: its inputs end as errors ("backend is closed").
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_batch: int = 512,
        seed: int = 0,
        verbose: bool = False,
        drafting: bool | str | VerifyCosts = True,
        prefix_states: str | os.PathLike[str] | None = "default",
        **llama_kwargs: Any,
    ) -> None:
        path = Path(model_path)
        if not path.is_file():
            raise ModelNotFoundError(f"GGUF file not found: {path} (make one from Hugging Face weights with "
                                     "`guardsdk convert yueliu1999/GuardReasoner-1B --quant Q4_K_M`)")  # fmt: skip
        llama_cpp = _import_llama()
        threads = n_threads or default_threads()
        try:
            self._llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                                        n_batch=n_batch, seed=seed, verbose=verbose, **llama_kwargs)  # fmt: skip
        except (ValueError, RuntimeError) as exc:
            raise ModelNotFoundError(f"could not load GGUF model {path}: {exc}") from exc
        self._llama_cpp = llama_cpp
        self._lock = threading.RLock()
        self._closing = False
        self.name = path.name
        self.path = path
        self.fingerprint = files_fingerprint([path])  # eval runs record it: rows of another file are not reused
        self.context_length = n_ctx
        self.prefix_states = prefix_state.default_folder() if prefix_states == "default" else prefix_states
        self.n_threads = threads
        if drafting not in (True, False, "measure") and not isinstance(drafting, VerifyCosts):
            raise ValueError(f"drafting is True, False, 'measure' or VerifyCosts, not {drafting!r}")
        costs = measure_verify_costs(self) if drafting == "measure" else drafting
        self.drafter = Drafter(DEFAULT_VERIFY_COSTS if costs is True else costs) if costs else None
        self.redecode_near_ties = not batches_match_steps(llama_cpp)
        self.redecoded = 0  # outputs exact mode decoded again one token per step (see REDECODE_MARGIN)

    @classmethod
    def from_pretrained(cls, model_path: str | os.PathLike[str], **kwargs: Any) -> LlamaCppBackend:
        """Load a GGUF file (same as the constructor; named for symmetry with the other backends)."""
        return cls(model_path, **kwargs)

    @property
    def llm(self) -> Any:
        """The loaded ``llama_cpp.Llama``; raises :class:`BackendError` once closed."""
        if self._llm is None or self._closing:
            raise BackendError("backend is closed")
        return self._llm

    def tokenize(self, text: str) -> list[int]:
        with self._lock:
            return list(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def detokenize(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; special tokens are dropped.

        Written out because llama-cpp-python's own ``detokenize`` uses a 32-byte buffer and
        silently drops longer pieces (Llama 3 has tokens of 50+ spaces).
        """
        lib = self._llama_cpp
        buffer = ctypes.create_string_buffer(64)
        pieces = []
        with self._lock:
            vocab = self.llm._model.vocab
            for token in ids:
                n = lib.llama_token_to_piece(vocab, lib.llama_token(token), buffer, len(buffer), 0, False)
                if n < 0:
                    buffer = ctypes.create_string_buffer(-n)
                    n = lib.llama_token_to_piece(vocab, lib.llama_token(token), buffer, len(buffer), 0, False)
                pieces.append(buffer.raw[:n])
        return b"".join(pieces).decode("utf-8", errors="replace")

    def input_ids(self, text: str, special_tokens: bool = False) -> list[int]:
        """The token ids the model is run on: BOS (as the GGUF asks) then the text; control-token text is
        a control token only with ``special_tokens``."""
        with self._lock:
            return list(self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=special_tokens))

    def _generate_one(
        self, text: str, max_tokens: int, stop: Sequence[str] | None, deadline: float | None, special_tokens: bool,
        watch_ids: frozenset[int],
    ) -> Generation:  # fmt: skip
        ids = self.input_ids(text, special_tokens)
        if len(ids) + max_tokens > self.context_length:
            raise BackendError(
                f"input of {len(ids)} tokens plus max_tokens={max_tokens} exceeds n_ctx={self.context_length}"
            )
        if deadline is not None and time.monotonic() > deadline:
            return Generation("", len(ids), 0, "timeout")
        start = self._reuse_point(ids)
        generation = self._decode(ids, start, self.drafter, max_tokens, stop, deadline, watch_ids)
        if self.drafter is not None and self.redecode_near_ties and near_tie(generation, REDECODE_MARGIN):
            # a label word chosen by a hair from batched logits: decide it as one-token steps from the same
            # cached point do (plain greedy decoding)
            self.redecoded += 1
            generation = self._decode(ids, start, None, max_tokens, stop, deadline, watch_ids)
        if self.drafter is not None and generation.token_ids:
            self.drafter.learn(list(generation.token_ids))
        return generation

    def _decode(
        self, ids: list[int], start: int, drafter: Drafter | None, max_tokens: int, stop: Sequence[str] | None,
        deadline: float | None, watch_ids: frozenset[int],
    ) -> Generation:  # fmt: skip
        """Greedy output after ``ids``, evaluated from the cached position ``start`` on."""
        vocab = self.llm._model.vocab
        out: list[int] = []
        watched: dict[int, dict[int, float]] = {}
        finish = "length"
        text_out = ""
        for token, logits in self._greedy(ids, start, drafter):
            if self._closing:
                raise BackendError("backend is closed")
            if self._llama_cpp.llama_vocab_is_eog(vocab, token):
                finish = "stop"
                break
            if token in watch_ids:  # the logits this token was chosen from
                watched[len(out)] = _logprobs(logits, watch_ids)
            out.append(token)
            if stop:
                text_out = self.detokenize(out)
                hit = min((text_out.index(s) for s in stop if s in text_out), default=None)
                if hit is not None:
                    text_out, finish = text_out[:hit], "stop"
                    break
            if len(out) >= max_tokens:
                break
            if deadline is not None and time.monotonic() > deadline:
                finish = "timeout"
                break
        if finish != "stop" or not stop:
            text_out = self.detokenize(out)
        return Generation(text_out, len(ids), len(out), finish, tuple(out), watched=watched)

    def _greedy(self, ids: list[int], start: int, drafter: Drafter | None) -> Iterator[tuple[int, Any]]:
        """Greedy tokens after ``ids``, each with the logits it was chosen from (valid until the next token is
        asked for). The cache is kept up to ``start``; with a drafter, drafts are verified in one batch with the
        pending token and kept as far as the model's own choices agree (see :mod:`guardsdk.backends.drafting`)."""
        import numpy as np

        llm = self.llm
        logits = self._logits_after(ids, start)
        pending = int(np.argmax(logits))
        output: list[int] = []
        while True:
            yield pending, logits
            output.append(pending)
            drafts, from_lookup = drafter.propose(ids, output) if drafter is not None else ([], False)
            drafts = drafts[: max(self.context_length - llm.n_tokens - 1, 0)]  # the context holds them all
            batch = [pending, *drafts]
            past = llm.n_tokens
            rows = self._decode_all(batch)
            choices = [int(np.argmax(row)) for row in rows]
            accepted = 0
            while accepted < len(drafts) and choices[accepted] == drafts[accepted]:
                accepted += 1
            llm.input_ids[past : past + accepted + 1] = batch[: accepted + 1]
            llm.n_tokens = past + accepted + 1
            llm._ctx.kv_cache_seq_rm(-1, llm.n_tokens, -1)  # the rejected drafts
            if drafter is not None:
                drafter.observe(len(drafts), accepted, from_lookup)
            for index in range(accepted):
                yield drafts[index], rows[index]
                output.append(drafts[index])
            pending, logits = choices[accepted], rows[accepted]

    def _decode_all(self, tokens: list[int]) -> list[Any]:
        """Evaluate ``tokens`` after the cached ones in one batch; the logits after each (views, valid until the
        next evaluation)."""
        import numpy as np

        llm = self.llm
        llm._ctx.kv_cache_seq_rm(-1, llm.n_tokens, -1)
        llm._batch.set_batch(batch=tokens, n_past=llm.n_tokens, logits_all=True)
        llm._ctx.decode(llm._batch)
        get = self._llama_cpp.llama_get_logits_ith
        return [np.ctypeslib.as_array(get(llm._ctx.ctx, i), shape=(llm._n_vocab,)) for i in range(len(tokens))]

    def warm(self, prefix: str, special_tokens: bool = False) -> None:
        """Put the state of ``prefix`` (the text every input starts with) into the KV cache now: restored from
        ``prefix_states`` where an earlier process saved it, else evaluated (and saved there)."""
        with self._lock:
            llm = self.llm
            ids = self.input_ids(prefix, special_tokens)[:-1]  # the last token may merge with the text after it
            if len(ids) < 2 or llm._input_ids.tolist()[: len(ids)] == ids:
                return
            folder = Path(self.prefix_states) if self.prefix_states else None
            path = folder and prefix_state.state_file(folder, self.path, self.context_length, ids,
                                                      self._llama_cpp.__version__)  # fmt: skip
            llm.n_tokens = 0
            llm._ctx.kv_cache_seq_rm(-1, 0, -1)
            if path is not None and prefix_state.load(self._llama_cpp, llm._ctx.ctx, path, ids):
                llm.input_ids[: len(ids)] = ids
                llm.n_tokens = len(ids)
            else:
                llm.eval(ids)
                if path is not None:
                    prefix_state.save(self._llama_cpp, llm._ctx.ctx, path, ids)
            llm._requires_eval = True  # no logits come with a restored state

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
        """Generate greedily, one input after another; an input that fails is that input's error (``watch_ids``:
        see :class:`~guardsdk.backends.base.NextTokenScorer`)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        watch = frozenset(watch_ids)
        with self._lock:
            self.llm  # noqa: B018 - raises BackendError once closed
            results = []
            for text in inputs:
                try:
                    results.append(self._generate_one(text, max_tokens, stop, deadline, special_tokens, watch))
                except Exception as exc:
                    results.append(failed_generation(describe(exc)))
            return results

    def close(self) -> None:
        """Free the model; a call in flight stops at its next token, later calls raise :class:`BackendError`."""
        self._closing = True
        with self._lock:
            if self._llm is not None:
                self._llm.close()
                self._llm = None
