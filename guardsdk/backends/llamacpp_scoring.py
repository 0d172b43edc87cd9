"""Next-token probabilities from a loaded llama.cpp model (the :class:`~guardsdk.backends.base.NextTokenScorer` side
of :class:`~guardsdk.backends.llamacpp.LlamaCppBackend`): label-word scores, forced answers, verdict-first."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from guardsdk.backends.base import continuation_tokens
from guardsdk.errors import BackendError


def _logprobs(logits: Any, tokens: Iterable[int]) -> dict[int, float]:
    """log softmax(logits) of each of ``tokens``."""
    import numpy as np

    top = float(logits.max())
    log_z = top + math.log(float(np.exp(logits - top).sum()))
    return {token: float(logits[token]) - log_z for token in tokens}


class LlamaNextTokens:
    """Mixin of :class:`~guardsdk.backends.llamacpp.LlamaCppBackend` (it reads the backend's ``llm``, ``_lock``,
    ``_llama_cpp``, ``input_ids`` and ``context_length``): the KV cache is reused up to the longest shared prefix."""

    llm: Any
    _lock: Any
    _llama_cpp: Any
    context_length: int

    def input_ids(self, text: str, special_tokens: bool = False) -> list[int]: ...

    def _last_logits(self) -> Any:
        """The logits of the last evaluated position (a view into llama.cpp's buffer)."""
        import numpy as np

        llm = self.llm
        return np.ctypeslib.as_array(self._llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(llm._n_vocab,))

    def _reuse_point(self, ids: list[int]) -> int:
        """How many of ``ids`` the KV cache already holds and may keep (the last token is always evaluated anew,
        for its logits)."""
        llm = self.llm
        return min(llm.longest_token_prefix(llm._input_ids, ids), len(ids) - 1)

    def _logits_after(self, ids: list[int], start: int | None = None) -> Any:
        """Evaluate ``ids`` from cached position ``start`` (default: :meth:`_reuse_point`) and return the last
        token's logits."""
        llm = self.llm
        llm.n_tokens = self._reuse_point(ids) if start is None else start
        llm.eval(ids[llm.n_tokens :])
        llm._requires_eval = True  # the logits are read here; llama-cpp-python must not reuse them
        return self._last_logits()

    def next_token_probs(
        self, texts: Sequence[str], candidates: Sequence[str], *, special_tokens: bool = False
    ) -> list[tuple[float, ...]]:
        """See :class:`~guardsdk.backends.base.NextTokenScorer`: one forward pass over the uncached tail."""
        with self._lock:
            results = []
            for text in texts:
                ids, firsts = continuation_tokens(lambda t: self.input_ids(t, special_tokens), text, candidates)
                if len(ids) >= self.context_length:
                    raise BackendError(f"input of {len(ids)} tokens exceeds n_ctx={self.context_length}")
                logprobs = _logprobs(self._logits_after(ids), firsts)
                results.append(tuple(math.exp(logprobs[token]) for token in firsts))
            return results


__all__ = ["LlamaNextTokens"]
