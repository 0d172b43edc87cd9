"""Draft tokens for exact greedy decoding with verification (speculative decoding without a draft model).

A guard model writes formulaic text ("## Reasoning Step 2: Determine if the request ..."), so its own earlier
outputs predict much of its next one. :class:`PhraseTable` learns, from every output the backend generated,
which token followed each run of ``order`` tokens and how often; :func:`prompt_lookup` proposes the tokens that
followed the same run in the checked input (the reasoning quotes it). The model then evaluates the pending
token and the drafts in one batch and keeps the drafts its own greedy choice agrees with: the output is the
plain greedy output (bit for bit where batches of up to ``EXACT_DRAFT + 1`` tokens get one-token steps' logits,
as on the llama.cpp build scripts/setup_env.sh makes).

On a CPU verification is not free (evaluating 8 tokens costs ~5 single steps for a 1B model here), so
:func:`best_draft_length` drafts only as far as the expected tokens per unit of cost grows, from the
measured costs (:class:`VerifyCosts`) and each draft's estimated chance of being accepted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from guardsdk.backends.base import Generation

#: The longest draft ever proposed.
MAX_DRAFT = 8

#: The longest draft a :class:`Drafter` verifies by default: with the pending token, batches of up to 3 tokens.
#: llama.cpp built without llamafile's kernels (as scripts/setup_env.sh builds it) gives a token in such a batch
#: the logits of a one-token step bit for bit; from 4 tokens on, repacked 4-bit weights are multiplied 4 rows at a
#: time, which moves them (benchmarks/speed/batch_invariance.py, docs/speed.md). So exact mode writes the plain greedy
#: output itself, at some of the gain of longer drafts.
EXACT_DRAFT = 2


@dataclass(frozen=True)
class VerifyCosts:
    """The cost of evaluating k tokens in one batch with logits for each, relative to one decode step (k=1);
    ``step_s``: that step's seconds where measured."""

    ratios: Mapping[int, float]
    step_s: float | None = None

    def __post_init__(self) -> None:
        if 1 not in self.ratios or any(k < 1 or r <= 0 for k, r in self.ratios.items()):
            raise ValueError(f"verify costs need k=1 and positive ratios, not {dict(self.ratios)!r}")

    def cost(self, k: int) -> float:
        """Linear between the measured sizes; past the largest, growing at the last slope."""
        sizes = sorted(self.ratios)
        if k in self.ratios:
            return self.ratios[k]
        if len(sizes) == 1:
            return self.ratios[1] * k
        above = [s for s in sizes if s > k]
        low, high = (max(s for s in sizes if s < k), above[0]) if above else (sizes[-2], sizes[-1])
        slope = (self.ratios[high] - self.ratios[low]) / (high - low)
        return self.ratios[low] + slope * (k - low)


#: Verify costs of GuardReasoner-1B's shape (Q4_K_M, 2 threads) on the 2-core CPU this was built on
#: (benchmarks/speed/bench_speed.py, docs/speed.md). Smaller models verify relatively cheaper and larger ones are more
#: compute-bound, which batching helps: as a default for other models it drafts too little, never too much.
DEFAULT_VERIFY_COSTS = VerifyCosts({1: 1.0, 2: 1.56, 4: 2.14, 8: 4.93})


def best_draft_length(acceptance: Sequence[float], costs: VerifyCosts) -> int:
    """How many drafts to verify: the length that maximizes expected tokens gained per unit of cost, where
    ``acceptance[i]`` is the chance that draft i is accepted given the ones before it were (0: none)."""
    best, best_rate = 0, 1.0 / costs.cost(1)
    expected = survive = 1.0
    for length, chance in enumerate(acceptance[:MAX_DRAFT], 1):
        survive *= chance
        expected += survive
        rate = expected / costs.cost(length + 1)
        if rate > best_rate:
            best, best_rate = length, rate
    return best


@dataclass
class PhraseTable:
    """Next-token counts after every run of ``order`` tokens in the texts learned."""

    order: int = 3
    max_contexts: int = 100_000  # ~30 MB at most
    counts: dict[tuple[int, ...], Counter[int]] = field(default_factory=dict)

    def learn(self, tokens: Sequence[int]) -> None:
        """Count every (run of ``order`` tokens, next token) in ``tokens``."""
        for end in range(self.order, len(tokens)):
            context = tuple(tokens[end - self.order : end])
            counter = self.counts.get(context)
            if counter is None:
                if len(self.counts) >= self.max_contexts:
                    continue  # full: what it knows stays, nothing new is added
                counter = self.counts[context] = Counter()
            counter[tokens[end]] += 1

    def chain(self, history: Sequence[int], limit: int = MAX_DRAFT) -> tuple[list[int], list[float]]:
        """The likeliest continuation of ``history`` and each step's estimated acceptance: the top token's share
        of what followed, shrunk toward 0 for rarely seen runs (one sighting: 1/2)."""
        context = tuple(history[-self.order :])
        drafts: list[int] = []
        chances: list[float] = []
        while len(drafts) < limit and len(context) == self.order:
            counter = self.counts.get(context)
            if not counter:
                break
            token, count = counter.most_common(1)[0]
            drafts.append(token)
            chances.append(count / (counter.total() + 1))
            context = (*context[1:], token)
        return drafts, chances


def prompt_lookup(history: Sequence[int], source: Sequence[int], ngram: int = 3, limit: int = MAX_DRAFT) -> list[int]:
    """The tokens that followed the last occurrence in ``source`` of ``history``'s last ``ngram`` tokens."""
    if len(history) < ngram:
        return []
    tail = list(history[-ngram:])
    for start in range(len(source) - ngram - 1, -1, -1):
        if list(source[start : start + ngram]) == tail:
            return list(source[start + ngram : start + ngram + limit])
    return []


@dataclass
class Drafter:
    """Proposes drafts from a :class:`PhraseTable` of earlier outputs, else by prompt lookup in the input, as
    far as :func:`best_draft_length` says pays (at most ``max_draft``); learns from each finished output and from
    what was accepted."""

    costs: VerifyCosts
    max_draft: int = EXACT_DRAFT
    table: PhraseTable = field(default_factory=PhraseTable)
    lookup_acceptance: float = 0.5  # a running estimate, updated from the lookup drafts' outcomes
    proposed: int = 0
    accepted: int = 0

    def propose(self, source: Sequence[int], output: Sequence[int]) -> tuple[list[int], bool]:
        """Drafts to verify after ``output`` (``source``: the input's tokens), and whether they came from lookup."""
        drafts, chances = self.table.chain(output)
        from_lookup = False
        if not drafts:
            drafts = prompt_lookup(output, source)
            chances = [self.lookup_acceptance] * len(drafts)
            from_lookup = bool(drafts)
        return drafts[: best_draft_length(chances[: self.max_draft], self.costs)], from_lookup

    def observe(self, proposed: int, accepted: int, from_lookup: bool) -> None:
        """Record how many of ``proposed`` drafts were accepted."""
        self.proposed += proposed
        self.accepted += accepted
        if from_lookup and proposed:
            rate = (accepted + 0.5) / (proposed + 1)  # per-token acceptance of this proposal, smoothed
            self.lookup_acceptance = 0.8 * self.lookup_acceptance + 0.2 * rate

    def learn(self, output: Sequence[int]) -> None:
        self.table.learn(output)


#: Where the llama.cpp build's batches do not give one-token steps' logits
#: (:func:`~guardsdk.backends.llamacpp_build.batches_match_steps`), exact mode decodes an output again, one token per
#: step from the same cached point, when it chose a watched token (a label word) by less than this log-probability
#: over another watched one: there batched verification moves logits by up to ~0.04, which can tip a near-tie the
#: other way (docs/speed.md; a two-way label's score within ~0.025 of 0.5 is redecided).
REDECODE_MARGIN = 0.1


def near_tie(generation: Generation, margin: float) -> bool:
    """Whether some watched token was chosen by less than ``margin`` log-probability over another watched one."""
    ids = generation.token_ids or ()
    for step, logprobs in (generation.watched or {}).items():
        chosen = ids[step] if step < len(ids) else None
        if chosen in logprobs and any(logprobs[chosen] - v < margin for t, v in logprobs.items() if t != chosen):
            return True
    return False


__all__ = [
    "DEFAULT_VERIFY_COSTS",
    "EXACT_DRAFT",
    "MAX_DRAFT",
    "REDECODE_MARGIN",
    "Drafter",
    "PhraseTable",
    "VerifyCosts",
    "best_draft_length",
    "near_tie",
    "prompt_lookup",
]
