"""Verdict-first: read each answer's probability right after the input, reason only on demand.

For each check the family's answer slots are forced right after the input (GuardReasoner: ``---`` /
``Answers:`` / ``Request:``) and the likelier label word is read from one forward pass per slot: a verdict
with a score per task, no reasoning. Then the full reasoning run checks, and its verdict replaces the forced
one (``verdict.escalated``), where ``reason_when`` asks for it:

- ``"blocked"``: the forced verdict would not be allowed (unsafe or undecided), so every block is explained;
- ``"uncertain"``: a gated task's score lies strictly inside ``uncertain_band``;
- ``"background"``: every other check is reasoned about after it was answered, in a background thread, and
  ``on_reasoning`` receives the reasoned verdict (for audit logs); the answer does not wait for it.

Checked text that writes answer lines itself (``Request: unharmful``) could steer a forced reading, as it
can never steer the parser (echoed answer lines never count there): such a check gets no forced answer — it is
undecided, so ``"blocked"`` sends it to the reasoning run, and without reasoning it fails closed.

This is lossy: the released GuardReasoner models were trained to reason first, and how well their forced
answers agree with their reasoned ones is for whoever has the weights to measure
(``guardsdk eval --mode verdict_first``); docs/speed.md says what is known.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from guardsdk.detectors.answer_scores import MIN_LABEL_MASS, echo_refusal, force_slots
from guardsdk.detectors.base import Pair
from guardsdk.detectors.generative import GenerativeDetector
from guardsdk.detectors.long_input import Plan, merge_windows
from guardsdk.errors import describe
from guardsdk.policy import Policy
from guardsdk.verdict import NOT_APPLICABLE, TASKS, Failure, Verdict, verdict_from_labels

logger = logging.getLogger("guardsdk")

REASON_WHEN = frozenset({"blocked", "uncertain", "background"})
DEFAULT_REASON_WHEN = ("blocked", "uncertain")
#: Scores strictly between these send a check to the reasoning run under ``reason_when="uncertain"``. A
#: starting point, not a measured optimum: no GuardReasoner weights were at hand to measure one.
DEFAULT_UNCERTAIN_BAND = (0.2, 0.8)
#: Past this many checks waiting for background reasoning, new ones are dropped (and logged), not queued.
MAX_BACKGROUND_BACKLOG = 64
#: The deadline of one background reasoning run, in seconds.
BACKGROUND_TIMEOUT_S = 600.0


class VerdictFirst:
    """A :class:`~guardsdk.detectors.generative.Detector` over a generative detector; see the module docstring."""

    def __init__(
        self,
        reasoning: GenerativeDetector,
        *,
        reason_when: Iterable[str] = DEFAULT_REASON_WHEN,
        uncertain_band: tuple[float, float] = DEFAULT_UNCERTAIN_BAND,
        on_reasoning: Callable[[Verdict], None] | None = None,
        min_label_mass: float = MIN_LABEL_MASS,
    ) -> None:
        if not reasoning.can_force_answers:
            raise ValueError(
                "verdict-first mode forces answers: it needs a family that names its answer slots and a backend "
                f"that gives next-token probabilities (llama.cpp, transformers), not {reasoning.name}"
            )
        self.reason_when = frozenset(reason_when)
        if not self.reason_when <= REASON_WHEN:
            raise ValueError(f"reason_when takes {sorted(REASON_WHEN)}, not {sorted(self.reason_when - REASON_WHEN)}")
        if "background" in self.reason_when and on_reasoning is None:
            raise ValueError("reason_when='background' needs on_reasoning, the callback that receives the verdicts")
        low, high = uncertain_band
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"uncertain_band must be 0 <= low <= high <= 1, not {uncertain_band!r}")
        self.reasoning = reasoning
        self.uncertain_band = (float(low), float(high))
        self.on_reasoning = on_reasoning
        self.min_label_mass = min_label_mass
        self.name = f"verdict-first({reasoning.name})"
        self._background: ThreadPoolExecutor | None = None
        self._backlog = 0
        self._backlog_lock = threading.Lock()

    # -- forcing the answers ---------------------------------------------------------------------------
    def _forced(self, plan: Plan, deadline: float) -> Verdict:
        started = time.monotonic()
        has_response = plan.response is not None
        run = {"model": self.reasoning.backend.name, "family": self.reasoning.family.name, "detector": self.name}
        if plan.error is not None:
            return Verdict.undecided(has_response=has_response, error=plan.error, **run)
        parts = []
        for part, views in zip(plan.parts, plan.views, strict=True):
            part_has_response = part.response is not None
            if time.monotonic() > deadline:
                parts.append(Verdict.undecided(has_response=part_has_response, error="ran past the check's deadline",
                                               failure=Failure.DEADLINE))  # fmt: skip
                continue
            try:
                parts.append(self._forced_part(views, part_has_response, part.text))
            except Exception as exc:
                parts.append(Verdict.undecided(has_response=part_has_response, error=describe(exc),
                                               failure=Failure.BACKEND))  # fmt: skip
        verdict = merge_windows(parts, has_response)
        return dataclasses.replace(verdict, latency_s=time.monotonic() - started, input_truncated=plan.elided,
                                   long_input=plan.long, **run)  # fmt: skip

    def _forced_part(self, views: tuple[str, ...], has_response: bool, checked: str) -> Verdict:
        family = self.reasoning.family
        labels, scores, shown, errors = {}, {}, [], []
        slots_per_view = family.answer_slots(has_response)  # type: ignore[attr-defined]
        refusal = echo_refusal(checked, [slot for slots in slots_per_view for slot in slots])
        if refusal:
            return Verdict.undecided(has_response=has_response, error=refusal, raw="verdict-first: " + refusal)
        for view, slots in zip(views, slots_per_view, strict=True):
            forced = force_slots(self.reasoning.backend, view, slots, special_tokens=family.special_tokens,  # type: ignore[arg-type]
                                 min_label_mass=self.min_label_mass)  # fmt: skip
            labels.update(forced.labels)
            scores.update(forced.scores)
            shown.append(forced.text)
            errors += [forced.error] if forced.error else []
        raw = "verdict-first: no reasoning was run; answers forced after the input:\n" + "\n\n".join(shown)
        verdict = verdict_from_labels(labels, has_response=has_response, raw=raw, family=family.name,
                                      answered=family.tasks)  # fmt: skip
        return dataclasses.replace(verdict, scores=scores, error="; ".join(errors) or None)

    # -- when to reason ------------------------------------------------------------------------------
    def needs_reasoning(self, verdict: Verdict, policy: Policy) -> bool:
        """Whether the reasoning run must decide this check (see the module docstring)."""
        if "blocked" in self.reason_when and not policy.decide(verdict).allowed:
            return True
        if "uncertain" in self.reason_when:
            low, high = self.uncertain_band
            gated = [t for t in TASKS if t in policy.gates and verdict.labels.get(t) != NOT_APPLICABLE]
            return any(low < verdict.scores.get(t, 0.5) < high for t in gated)
        return False

    def _combine(self, forced: list[Verdict], escalated: list[int], reasoned: list[Verdict]) -> list[Verdict]:
        verdicts = list(forced)
        for index, verdict in zip(escalated, reasoned, strict=True):
            verdicts[index] = dataclasses.replace(verdict, escalated=True,
                                                  latency_s=forced[index].latency_s + verdict.latency_s,
                                                  detector=f"{self.name}: {verdict.detector}")  # fmt: skip
        return verdicts

    def _split(self, pairs: list[Pair], policy: Policy, deadline: float) -> tuple[list[Verdict], list[int]]:
        forced = [self._forced(plan, deadline) for plan in self.reasoning.plan(pairs, policy)]
        escalated = [i for i, verdict in enumerate(forced) if self.needs_reasoning(verdict, policy)]
        self._reason_in_background([p for i, p in enumerate(pairs) if i not in escalated], policy)
        return forced, escalated

    # -- the drivers ---------------------------------------------------------------------------------
    def detect(self, pairs: list[Pair], policy: Policy, deadline: float) -> list[Verdict]:
        forced, escalated = self._split(pairs, policy, deadline)
        reasoned = self.reasoning.detect([pairs[i] for i in escalated], policy, deadline) if escalated else []
        return self._combine(forced, escalated, reasoned)

    async def adetect(self, pairs: list[Pair], policy: Policy, deadline: float) -> list[Verdict]:
        forced, escalated = await asyncio.to_thread(self._split, pairs, policy, deadline)
        reasoned = await self.reasoning.adetect([pairs[i] for i in escalated], policy, deadline) if escalated else []
        return self._combine(forced, escalated, reasoned)

    # -- background reasoning ------------------------------------------------------------------------
    def _reason_in_background(self, pairs: list[Pair], policy: Policy) -> None:
        if "background" not in self.reason_when or not pairs:
            return
        if self._background is None:
            self._background = ThreadPoolExecutor(1, thread_name_prefix="guardsdk-reasoning")
        for pair in pairs:
            with self._backlog_lock:
                full = self._backlog >= MAX_BACKGROUND_BACKLOG
                self._backlog += 0 if full else 1
            if full:
                logger.warning("guardsdk background reasoning is %d checks behind: one was dropped", self._backlog)
            else:
                self._background.submit(self._reason_one, pair, policy)

    def _reason_one(self, pair: Pair, policy: Policy) -> None:
        try:
            verdict = self.reasoning.detect([pair], policy, time.monotonic() + BACKGROUND_TIMEOUT_S)[0]
            self.on_reasoning(dataclasses.replace(verdict, decision=policy.decide(verdict)))  # type: ignore[misc]
        except Exception:  # a broken callback never stops the next one
            logger.exception("guardsdk background reasoning failed")
        finally:
            with self._backlog_lock:
                self._backlog -= 1

    def close(self) -> None:
        """Stop background reasoning (checks not started are dropped) and release the model."""
        if self._background is not None:
            self._background.shutdown(wait=True, cancel_futures=True)
        self.reasoning.close()


__all__ = ["DEFAULT_REASON_WHEN", "DEFAULT_UNCERTAIN_BAND", "REASON_WHEN", "VerdictFirst"]
