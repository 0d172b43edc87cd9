"""The generative detector: a guard family's model on a backend.

A :class:`GenerativeDetector` it plans each input (windows for long text,
see :mod:`guardsdk.detectors.long_input`), renders every part through the family, generates, and reads each finished
output back through the family. An output that did not finish decides nothing. The :class:`~guardsdk.Guard`
holds a detector (see :mod:`guardsdk.detectors`), a policy and the deadline.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import time
from typing import Any

from guardsdk.backends.base import Backend, Generation, NextTokenScorer, Warmable, failed_generation
from guardsdk.detectors.answer_scores import echo_refusal, force_slots, slot_word_ids, written_score
from guardsdk.detectors.base import Pair
from guardsdk.detectors.long_input import Part, Plan, merge_windows, plan_check
from guardsdk.detectors.reasoning_audit import reasoning_conflicts
from guardsdk.errors import BackendError, describe
from guardsdk.families import GuardFamily, get_family
from guardsdk.families.base import ForcedAnswers, StopsReasoning
from guardsdk.policy import Policy
from guardsdk.verdict import TASKS, Failure, Label, ParseStatus, Task, Verdict, verdict_from_labels

#: Why an output that did not finish decides nothing.
UNFINISHED_REASONS = {
    "length": "generation hit max_new_tokens={max_new_tokens} before it finished",
    "timeout": "generation ran past the check's deadline",
}


class GenerativeDetector:
    """A guard family's model on a backend; see the module docstring.

    Every verdict carries a score per task the model answered where the backend gives token probabilities
    (the probability of the label word it wrote; see :mod:`guardsdk.detectors.answer_scores`). ``needed_tasks_only``
    (lossy, GuardReasoner): reasoning stops after the last task the policy needs for a check (Task 1 for a
    prompt check) and that task's answer is forced and read by probability.
    """

    def __init__(
        self,
        backend: Backend,
        family: str | GuardFamily | None = None,
        *,
        max_input_tokens: int = 2048,
        max_new_tokens: int | None = None,
        needed_tasks_only: bool = False,
    ) -> None:
        self.backend = backend
        self.family = get_family(family)
        self.max_input_tokens = max_input_tokens
        self.max_new_tokens = max_new_tokens or self.family.max_new_tokens
        self.needed_tasks_only = needed_tasks_only
        if needed_tasks_only and not self.can_force_answers:
            raise ValueError(
                f"needed-tasks mode forces answers: it needs a family that names its answer slots and a backend that "
                f"gives next-token probabilities (llama.cpp, transformers), not {self.family.name} on {backend.name}"
            )
        self.name = f"{self.family.name}:{backend.name}"
        if isinstance(backend, Warmable):  # the first check then skips the shared instruction (LlamaCppBackend.warm)
            backend.warm(shared_prefix(self.family), self.family.special_tokens)

    @functools.cached_property
    def _word_ids(self) -> dict[tuple[Task, str], tuple[int, int]]:
        """Each answer slot's two label words as first token ids, by (task, key): tokenized once, not per check."""
        if not self.can_force_answers:
            return {}
        slots = [slot for view in self.family.answer_slots(True) for slot in view]  # type: ignore[attr-defined]
        return {(slot.task, slot.key): ids for slot in slots if (ids := slot_word_ids(slot, self.backend))}

    @functools.cached_property
    def _watch(self) -> dict[str, Any]:
        """``watch_ids`` for the backend: both words of every answer slot, so each written label gets a score."""
        return {"watch_ids": sorted({i for ids in self._word_ids.values() for i in ids})} if self._word_ids else {}

    @property
    def can_force_answers(self) -> bool:
        """Whether answers can be forced and read by probability (verdict-first, needed-tasks modes)."""
        return isinstance(self.family, ForcedAnswers) and isinstance(self.backend, NextTokenScorer)

    # -- the pure steps ----------------------------------------------------------------------
    def plan(self, pairs: list[Pair], policy: Policy) -> list[Plan]:
        """Tokenize and cut each input into the parts the model checks, each rendered once into its model
        inputs (``plan.views``); a failure is that input's error."""
        plans = []
        for prompt, response in pairs:
            try:
                plan = plan_check(prompt, response, policy, self.max_input_tokens, self.backend, self._longest)
                views = tuple(tuple(self.family.render(part.prompt, part.response)) for part in plan.parts)
                plans.append(dataclasses.replace(plan, views=views))
            except Exception as exc:  # a backend that cannot tokenize is a backend failure (503 in the service)
                plans.append(Plan(prompt, response, error=describe(exc), backend_failed=isinstance(exc, BackendError)))
        return plans

    def _longest(self, prompt: str, response: str | None) -> str:
        return max(self.family.render(prompt, response), key=len)

    @staticmethod
    def inputs(plans: list[Plan]) -> list[str]:
        """Every model input of every part of every plan, in order."""
        return [text for plan in plans for views in plan.views for text in views]

    def assemble(
        self, plans: list[Plan], generations: list[Generation], started: float, policy: Policy
    ) -> list[Verdict]:
        """The verdict of each plan from the backend's generations for :meth:`inputs` (one per input)."""
        remaining = iter(generations)
        latency = (time.monotonic() - started) / max(len(plans), 1)
        verdicts = []
        for plan in plans:
            has_response = plan.response is not None
            if plan.error is not None:
                verdict = Verdict.undecided(has_response=has_response, error=plan.error, model=self.backend.name,
                                            failure=Failure.BACKEND if plan.backend_failed else None)  # fmt: skip
            else:
                parts = [self._part_verdict(part, views, [next(remaining) for _ in views], policy)
                         for part, views in zip(plan.parts, plan.views, strict=True)]  # fmt: skip
                verdict = merge_windows(parts, has_response)
            verdicts.append(dataclasses.replace(verdict, latency_s=latency, input_truncated=plan.elided,
                                                long_input=plan.long, family=self.family.name,
                                                detector=self.name))  # fmt: skip
        return verdicts

    def _part_verdict(
        self, part: Part, views: tuple[str, ...], generations: list[Generation], policy: Policy
    ) -> Verdict:
        has_response = part.response is not None
        stop, needed = self.reasoning_stop(has_response, policy)
        run = {"model": self.backend.name, "tokens_in": sum(g.prompt_tokens for g in generations),
               "tokens_out": sum(g.completion_tokens for g in generations)}  # fmt: skip
        for generation in generations:
            if generation.finish_reason == "error" or not isinstance(generation.text, str):
                return Verdict.undecided(has_response=has_response, error=generation.error or "malformed output",
                                         failure=Failure.BACKEND, **run)  # fmt: skip
            if generation.finish_reason != "stop":
                why = UNFINISHED_REASONS.get(generation.finish_reason, "generation ended with finish_reason={reason!r}")
                error = why.format(reason=generation.finish_reason, max_new_tokens=self.max_new_tokens)
                raw = "\n\n".join(g.text for g in generations if isinstance(g.text, str))
                failure = Failure.DEADLINE if generation.finish_reason == "timeout" else None
                return Verdict.undecided(has_response=has_response, error=error, raw=raw, failure=failure,
                                         status=ParseStatus.UNFINISHED, output_truncated=True, **run)  # fmt: skip
        conversation = part.text
        texts = [g.text for g in generations]
        try:
            verdict = self.family.parse(texts, has_response=has_response, conversation=conversation)
            if stop is not None and any(verdict.labels[t] is None for t in needed):
                verdict = self._forced_rest(verdict, views, texts, needed, conversation)
            else:
                verdict = dataclasses.replace(verdict, scores=self._written_scores(verdict, generations))
        except Exception as exc:  # a family that cannot read an output decides nothing
            error = f"{self.family.name} could not read the output: {describe(exc)}"
            return Verdict.undecided(has_response=has_response, error=error, raw="\n\n".join(texts), **run)
        conflict = reasoning_conflicts(verdict.labels, verdict.reasoning)  # an audit flag: the labels stay
        return dataclasses.replace(verdict, reasoning_conflict=conflict, **run)

    def _written_scores(self, verdict: Verdict, generations: list[Generation]) -> dict[str, float]:
        """The score behind each label the model wrote, where its output and the backend show it."""
        if not isinstance(self.family, ForcedAnswers):
            return {}
        scores = {}
        for slots, generation in zip(self.family.answer_slots(verdict.has_response), generations, strict=False):
            for slot in slots:
                label = verdict.labels.get(slot.task)
                score = None if label in (None, Label.NOT_APPLICABLE) else written_score(
                    slot, label, generation, self._word_ids.get((slot.task, slot.key)), self.backend)  # fmt: skip
                if score is not None:
                    scores[slot.task] = score
        return scores

    def _forced_rest(
        self, verdict: Verdict, views: tuple[str, ...], texts: list[str], needed: list[Task], conversation: str
    ) -> Verdict:
        """Needed-tasks mode: the reasoning stopped after the last needed task; force the answers to those tasks
        after it (the labels and scores come from the answer words' probabilities), unless the checked text writes
        answer lines itself (then they stay undecided)."""
        [view], [text], [slots] = views, texts, self.family.answer_slots(verdict.has_response)  # type: ignore[attr-defined]
        refusal = echo_refusal(conversation, slots)
        if refusal:
            return dataclasses.replace(verdict, error=refusal)
        forced = force_slots(self.backend, view + text, [s for s in slots if s.task in needed],  # type: ignore[arg-type]
                             special_tokens=self.family.special_tokens)  # fmt: skip
        labels = {**{t: verdict.labels[t] for t in TASKS if t not in needed}, **forced.labels}
        shown = f"{text}{forced.text}\n\n[guardsdk needed-tasks mode: the answers above were forced after reasoning]"
        rebuilt = verdict_from_labels(labels, has_response=verdict.has_response, raw=shown, family=self.family.name,
                                      reasoning=verdict.reasoning)  # fmt: skip
        return dataclasses.replace(rebuilt, scores=forced.scores, error=forced.error)

    def reasoning_stop(self, has_response: bool, policy: Policy) -> tuple[str | None, list[Task]]:
        """Needed-tasks mode: where to stop reasoning for a check, and the tasks it must answer; (None, [])
        when the whole output is needed."""
        needed = [Task(t) for t in TASKS if t in policy.gates and (has_response or t == Task.PROMPT_HARM)]
        if not self.needed_tasks_only or not needed or not isinstance(self.family, StopsReasoning):
            return None, []
        stop = self.family.reasoning_stop(needed[-1])
        return stop, needed if stop is not None else []

    def _calls(self, plans: list[Plan], policy: Policy, deadline: float) -> list[tuple[list[int], dict[str, Any]]]:
        """The backend calls :meth:`inputs` needs: the indices of the inputs of each call and its arguments (one
        call, or one per reasoning stop in needed-tasks mode)."""
        parts = [(part, views) for plan in plans for part, views in zip(plan.parts, plan.views, strict=True)]
        stops = [self.reasoning_stop(part.response is not None, policy)[0] for part, views in parts for _ in views]
        calls = []
        for stop in dict.fromkeys(stops):
            kwargs = {"max_tokens": self.max_new_tokens, "timeout_s": max(deadline - time.monotonic(), 0.01),
                      "special_tokens": self.family.special_tokens,
                      "stop": None if stop is None else [stop], **self._watch}  # fmt: skip
            calls.append(([i for i, s in enumerate(stops) if s == stop], kwargs))
        return calls

    @staticmethod
    def _place(generations: list[Generation], indices: list[int], answer: Any) -> None:
        for index, generation in zip(indices, _checked(answer, len(indices)), strict=True):
            generations[index] = generation

    # -- the drivers -------------------------------------------------------------------------
    def detect(self, pairs: list[Pair], policy: Policy, deadline: float) -> list[Verdict]:
        started = time.monotonic()
        plans = self.plan(pairs, policy)
        inputs = self.inputs(plans)
        generations: list[Any] = [None] * len(inputs)
        for indices, kwargs in self._calls(plans, policy, deadline):
            try:
                answer: Any = self.backend.generate([inputs[i] for i in indices], **kwargs)
            except Exception as exc:
                answer = exc
            self._place(generations, indices, answer)
        return self.assemble(plans, generations, started, policy)

    async def adetect(self, pairs: list[Pair], policy: Policy, deadline: float) -> list[Verdict]:
        started = time.monotonic()
        plans = await asyncio.to_thread(self.plan, pairs, policy)  # tokenizing stays off the event loop
        inputs = self.inputs(plans)
        generations: list[Any] = [None] * len(inputs)
        for indices, kwargs in self._calls(plans, policy, deadline):
            try:
                answer: Any = await self.backend.agenerate([inputs[i] for i in indices], **kwargs)
            except Exception as exc:
                answer = exc
            self._place(generations, indices, answer)
        # reading scores and forcing answers may run the model again: off the event loop too
        return await asyncio.to_thread(self.assemble, plans, generations, started, policy)

    def close(self) -> None:
        self.backend.close()


def shared_prefix(family: GuardFamily) -> str:
    """The text every prompt check of ``family`` starts with."""
    texts = [family.render("a", None)[0], family.render("b", None)[0]]
    return os.path.commonprefix(texts)  # noqa: RUF071 - a prefix of two texts, not of paths


def _checked(generations: Any, count: int) -> list[Generation]:
    """The backend's answer, or one error generation per input when it is not a list of ``count``."""
    if isinstance(generations, BaseException):
        return [failed_generation(describe(generations))] * count
    if not isinstance(generations, list) or len(generations) != count:
        return [failed_generation("the backend returned a malformed batch")] * count
    return generations
