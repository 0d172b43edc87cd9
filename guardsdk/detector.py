"""Detectors: anything that turns (prompt, response) pairs into verdicts, before any policy is applied.

A :class:`GenerativeDetector` is a guard family on a backend: it plans each input (windows for long text,
see :mod:`guardsdk.long_input`), renders every part through the family, generates, and reads each finished
output back through the family. An output that did not finish decides nothing. The :class:`~guardsdk.Guard`
holds a detector, a policy and the deadline; a classifier can implement :class:`Detector` directly.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from typing import Any, Protocol, runtime_checkable

from guardsdk.backends.base import Backend, Generation, failed_generation
from guardsdk.errors import describe
from guardsdk.families import GuardFamily, get_family
from guardsdk.families.classifier import CLASSIFIER
from guardsdk.long_input import Part, Plan, merge_verdicts, plan_check
from guardsdk.model_resolution import explicit, load_backend, log_choice, resolve_default_model
from guardsdk.policy import Policy
from guardsdk.verdict import ParseStatus, Verdict

Pair = tuple[str, "str | None"]
#: Why an output that did not finish decides nothing.
UNFINISHED_REASONS = {
    "length": "generation hit max_new_tokens={max_new_tokens} before it finished",
    "timeout": "generation ran past the check's deadline",
}


@runtime_checkable
class Detector(Protocol):
    """Pairs in, undecided-or-labelled verdicts out (no decision yet); never raises for one bad input."""

    name: str

    def detect(self, pairs: list[Pair], policy: Policy, deadline: float) -> list[Verdict]:
        """One verdict per pair; ``deadline`` is a ``time.monotonic()`` instant."""
        ...

    async def adetect(self, pairs: list[Pair], policy: Policy, deadline: float) -> list[Verdict]:
        """Async twin of :meth:`detect`."""
        ...

    def close(self) -> None: ...


class GenerativeDetector:
    """A guard family's model on a backend; see the module docstring."""

    def __init__(
        self,
        backend: Backend,
        family: str | GuardFamily | None = None,
        *,
        max_input_tokens: int = 2048,
        max_new_tokens: int | None = None,
    ) -> None:
        self.backend = backend
        self.family = get_family(family)
        self.max_input_tokens = max_input_tokens
        self.max_new_tokens = max_new_tokens or self.family.max_new_tokens
        self.name = f"{self.family.name}:{backend.name}"

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
            except Exception as exc:
                plans.append(Plan(prompt, response, error=describe(exc)))
        return plans

    def _longest(self, prompt: str, response: str | None) -> str:
        return max(self.family.render(prompt, response), key=len)

    @staticmethod
    def inputs(plans: list[Plan]) -> list[str]:
        """Every model input of every part of every plan, in order."""
        return [text for plan in plans for views in plan.views for text in views]

    def assemble(self, plans: list[Plan], generations: Any, started: float) -> list[Verdict]:
        """The verdict of each plan from the backend's answer to :meth:`inputs` (a list of generations, or
        the exception it raised)."""
        remaining = iter(_checked(generations, len(self.inputs(plans))))
        latency = (time.monotonic() - started) / max(len(plans), 1)
        verdicts = []
        for plan in plans:
            has_response = plan.response is not None
            if plan.error is not None:
                verdict = Verdict.undecided(has_response=has_response, error=plan.error, model=self.backend.name)
            else:
                parts = [self._part_verdict(part, [next(remaining) for _ in views])
                         for part, views in zip(plan.parts, plan.views, strict=True)]  # fmt: skip
                headings = [f"guardsdk window {i}/{len(parts)}" for i in range(1, len(parts) + 1)]
                verdict = merge_verdicts(parts, has_response, headings)
            verdicts.append(dataclasses.replace(verdict, latency_s=latency, input_truncated=plan.elided,
                                                long_input=plan.long, family=self.family.name,
                                                detector=self.name))  # fmt: skip
        return verdicts

    def _part_verdict(self, part: Part, generations: list[Generation]) -> Verdict:
        has_response = part.response is not None
        run = {"model": self.backend.name, "tokens_in": sum(g.prompt_tokens for g in generations),
               "tokens_out": sum(g.completion_tokens for g in generations)}  # fmt: skip
        for generation in generations:
            if generation.finish_reason == "error" or not isinstance(generation.text, str):
                return Verdict.undecided(has_response=has_response, error=generation.error or "malformed output", **run)
            if generation.finish_reason != "stop":
                why = UNFINISHED_REASONS.get(generation.finish_reason, "generation ended with finish_reason={reason!r}")
                error = why.format(reason=generation.finish_reason, max_new_tokens=self.max_new_tokens)
                raw = "\n\n".join(g.text for g in generations if isinstance(g.text, str))
                return Verdict.undecided(has_response=has_response, error=error, raw=raw,
                                         status=ParseStatus.UNFINISHED, output_truncated=True, **run)  # fmt: skip
        conversation = part.prompt if part.response is None else f"{part.prompt}\n{part.response}"
        texts = [g.text for g in generations]
        try:
            verdict = self.family.parse(texts, has_response=has_response, conversation=conversation)
        except Exception as exc:  # a family that cannot read an output decides nothing
            error = f"{self.family.name} could not read the output: {describe(exc)}"
            return Verdict.undecided(has_response=has_response, error=error, raw="\n\n".join(texts), **run)
        return dataclasses.replace(verdict, **run)

    def _generate_kwargs(self, deadline: float) -> dict[str, Any]:
        return {"max_tokens": self.max_new_tokens, "timeout_s": max(deadline - time.monotonic(), 0.01),
                "special_tokens": self.family.special_tokens}  # fmt: skip

    # -- the drivers -------------------------------------------------------------------------
    def detect(self, pairs: list[Pair], policy: Policy, deadline: float) -> list[Verdict]:
        started = time.monotonic()
        plans = self.plan(pairs, policy)
        inputs = self.inputs(plans)
        generations: Any = []
        if inputs:
            try:
                generations = self.backend.generate(inputs, **self._generate_kwargs(deadline))
            except Exception as exc:
                generations = exc
        return self.assemble(plans, generations, started)

    async def adetect(self, pairs: list[Pair], policy: Policy, deadline: float) -> list[Verdict]:
        started = time.monotonic()
        plans = await asyncio.to_thread(self.plan, pairs, policy)  # tokenizing stays off the event loop
        inputs = self.inputs(plans)
        generations: Any = []
        if inputs:
            try:
                generations = await self.backend.agenerate(inputs, **self._generate_kwargs(deadline))
            except Exception as exc:
                generations = exc
        return self.assemble(plans, generations, started)

    def close(self) -> None:
        self.backend.close()


Model = Detector | Backend | str | os.PathLike[str] | None


def as_detector(
    model: Model, family: str | GuardFamily | None = None, *, max_input_tokens: int = 2048,
    max_new_tokens: int | None = None, threads: int | None = None,
) -> Detector:  # fmt: skip
    """``model`` as a detector: a detector as is; a backend, a GGUF file or a Hugging Face folder / hub id
    (None: the default model) as ``family``'s generative detector, its budget checked against the context;
    with ``family="classifier"``, a folder of classifier heads (None: the bundled ones)."""
    if isinstance(model, Detector):
        return model
    if family == CLASSIFIER:
        return _classifier(model, threads)  # type: ignore[arg-type]
    guard_family = None if family is None else get_family(family)
    if isinstance(model, Backend):
        backend = model
    else:
        choice = explicit(model, "given") if model is not None else resolve_default_model(guard_family)
        log_choice(choice)
        if choice.kind == "classifier":
            return _classifier(choice.location, threads)
        backend = load_backend(choice, threads)
    guard_family = guard_family or get_family(None)
    detector = GenerativeDetector(backend, guard_family, max_input_tokens=max_input_tokens,
                                  max_new_tokens=max_new_tokens)  # fmt: skip
    if max_input_tokens + detector.max_new_tokens > backend.context_length:
        raise ValueError(
            f"max_input_tokens + max_new_tokens = {max_input_tokens + detector.max_new_tokens} exceeds "
            f"the backend's context length {backend.context_length}"
        )
    return detector


def _classifier(heads: str | os.PathLike[str] | None, threads: int | None) -> Detector:
    from guardsdk.families.classifier.detector import ClassifierDetector  # torch is loaded only here

    return ClassifierDetector.from_pretrained(heads, threads=threads)


class Ensemble:
    """Several detectors check every input; per task, any positive wins, then any undecided, else negative:
    a task is safe only when every detector says so."""

    def __init__(self, detectors: list[Detector]) -> None:
        if len(detectors) < 2:
            raise ValueError("an ensemble needs at least two detectors")
        self.detectors = detectors
        self.name = " + ".join(d.name for d in detectors)

    def _merge(self, per_detector: list[list[Verdict]], pairs: list[Pair]) -> list[Verdict]:
        merged = []
        for (_, response), verdicts in zip(pairs, zip(*per_detector, strict=True), strict=True):
            headings = [f"guardsdk detector {d.name}" for d in self.detectors]
            combined = merge_verdicts(list(verdicts), response is not None, headings)
            merged.append(dataclasses.replace(combined, detector=self.name))
        return merged

    def detect(self, pairs: list[Pair], policy: Policy, deadline: float) -> list[Verdict]:
        return self._merge([d.detect(pairs, policy, deadline) for d in self.detectors], pairs)

    async def adetect(self, pairs: list[Pair], policy: Policy, deadline: float) -> list[Verdict]:
        results = await asyncio.gather(*(d.adetect(pairs, policy, deadline) for d in self.detectors))
        return self._merge(list(results), pairs)

    def close(self) -> None:
        for detector in self.detectors:
            detector.close()


def _checked(generations: Any, count: int) -> list[Generation]:
    """The backend's answer, or one error generation per input when it is not a list of ``count``."""
    if isinstance(generations, BaseException):
        return [failed_generation(describe(generations))] * count
    if not isinstance(generations, list) or len(generations) != count:
        return [failed_generation("the backend returned a malformed batch")] * count
    return generations
