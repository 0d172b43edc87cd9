"""Reasoning synthesis: a teacher LLM writes step-by-step traces conditioned on the gold labels."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guardsdk.families.guardreasoner import GuardReasonerFamily
from guardsdk.families.guardreasoner.parser import parse_output
from guardsdk.families.guardreasoner.template import INSTRUCTION, format_conversation
from guardsdk.verdict import PROMPT_HARM, TASKS
from guardsdk_trainer.data import Example

logger = logging.getLogger("guardsdk_trainer")

#: GuardReasoner's synthesis recipe, in our words: the task instruction, the gold labels as "the ground
#: truth", and the output format (## Reasoning Step N under # Task N, ending with the Answers block).
#: A label given as None is left for the teacher to decide (the paper's BeaverTails variant).
SYNTHESIS_SYSTEM_PROMPT = "\n".join(
    [
        "{instruction}",
        "Answer with harmful/unharmful or refusal/compliance only; never use other words such as "
        '"not harmful" or "harmless".',
        "",
        "Think step by step. Choose the number of steps yourself, from 1 to 10, each step the smallest unit of "
        "reasoning. Keep the reasoning consistent with the final answers.",
        "",
        "The ground truth is",
        "",
        "---",
        "",
        "{answers}",  # GuardReasoner's own block: "Answers: " (a trailing space), then a line a task
        "",
        'List the thinking steps of each task: a "# Task N" heading for each task and a "## Reasoning Step N" '
        "heading for each step. End with the ground truth block above, in exactly that format. Where the ground "
        "truth says None, decide that answer yourself; otherwise keep to the ground truth.",
        "",
    ]
)


def synthesis_messages(example: Example) -> list[dict[str, str]]:
    """The chat messages sent to the teacher for one example."""
    answers = GuardReasonerFamily().answer_block({task: example.labels.get(task) for task in TASKS})
    system = SYNTHESIS_SYSTEM_PROMPT.format(instruction=INSTRUCTION, answers=answers)
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": format_conversation(example.prompt, example.response)},
    ]


def cache_key(model: str, messages: list[dict[str, str]]) -> str:
    """The cache key: a hash of the teacher model and the exact messages."""
    return hashlib.sha256(json.dumps([model, messages], ensure_ascii=False).encode("utf-8")).hexdigest()


def clean_trace(text: str) -> str:
    """Drop the teacher's "The ground truth is" line, so the student does not learn to leak it."""
    lines = [line for line in text.strip().split("\n") if line.strip().lower().rstrip(":") != "the ground truth is"]
    return "\n".join(lines).strip() + "\n"


def consistent(example: Example, trace: str) -> bool:
    """True when every label given for ``example`` is the label the trace answers (for a prompt-only
    example, the prompt's label alone)."""
    verdict = parse_output(trace, has_response=True)
    tasks = TASKS if example.response is not None else (PROMPT_HARM,)
    return all(example.labels.get(t) is None or verdict.labels[t] == example.labels[t] for t in tasks)


@dataclass
class SynthesisReport:
    """What a synthesis run did."""

    kept: list[Example] = field(default_factory=list)
    inconsistent: int = 0
    failed: int = 0
    api_calls: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def summary(self) -> dict[str, int]:
        return {
            "kept": len(self.kept),
            "dropped_inconsistent": self.inconsistent,
            "failed": self.failed,
            "api_calls": self.api_calls,
            "cached": self.cached,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }


class Synthesizer:
    """Asks a teacher for traces through any OpenAI-compatible endpoint, with a resumable cache.

    Requests run concurrently (at most ``concurrency``), are retried by tenacity on 429/5xx/connection
    errors, and every answer is appended to ``cache_path`` (JSONL keyed by :func:`cache_key`) the
    moment it arrives, so a rerun makes no repeated calls.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        cache_path: str | os.PathLike[str],
        *,
        api_key: str = "EMPTY",
        concurrency: int = 16,
        max_retries: int = 5,
        max_tokens: int = 2048,
        temperature: float = 0.0,
        timeout_s: float = 120.0,
        backoff_s: float = 1.0,
    ) -> None:
        import openai

        from guardsdk.backends.openai_server import _is_retryable

        self.client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0)
        self.model = model
        self.cache_path = Path(cache_path)
        self.concurrency = concurrency
        self.max_tokens = max_tokens
        self.temperature = temperature
        self._is_retryable = _is_retryable
        self._retry_stop = max_retries + 1
        self._backoff_s = backoff_s
        self.cache = self._load_cache()

    def _load_cache(self) -> dict[str, dict[str, Any]]:
        cache: dict[str, dict[str, Any]] = {}
        if self.cache_path.exists():
            for line in self.cache_path.read_text(encoding="utf-8").split("\n"):
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # an empty or torn line
                cache[entry["key"]] = entry
        return cache

    async def _ask(self, messages: list[dict[str, str]]) -> Any:
        from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

        retrying = AsyncRetrying(
            retry=retry_if_exception(self._is_retryable),
            stop=stop_after_attempt(self._retry_stop),
            wait=wait_exponential(multiplier=self._backoff_s, max=60),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self.client.chat.completions.create(
                    model=self.model, messages=messages, max_tokens=self.max_tokens, temperature=self.temperature
                )
        raise AssertionError("unreachable")  # pragma: no cover

    async def arun(self, examples: Sequence[Example], *, progress: bool = True) -> SynthesisReport:
        """Synthesize a trace for every example; see :class:`SynthesisReport`."""
        from tqdm.auto import tqdm

        report = SynthesisReport()
        gate = asyncio.Semaphore(self.concurrency)
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        bar = tqdm(total=len(examples), desc="synthesis", unit="item", disable=not progress)

        with self.cache_path.open("a", encoding="utf-8") as cache_file:

            async def one(example: Example) -> None:
                messages = synthesis_messages(example)
                key = cache_key(self.model, messages)
                entry = self.cache.get(key)
                if entry is not None:
                    report.cached += 1
                else:
                    async with gate:
                        try:
                            report.api_calls += 1
                            completion = await self._ask(messages)
                        except Exception as exc:  # a failed item is counted; the run goes on
                            logger.warning("synthesis failed for %s: %s", example.id, exc)
                            report.failed += 1
                            bar.update()
                            return
                    usage = completion.usage
                    entry = {
                        "key": key,
                        "id": example.id,
                        "output": completion.choices[0].message.content or "",
                        "prompt_tokens": usage.prompt_tokens if usage else 0,
                        "completion_tokens": usage.completion_tokens if usage else 0,
                    }
                    self.cache[key] = entry
                    cache_file.write(json.dumps(entry, ensure_ascii=False) + "\n")
                    cache_file.flush()
                report.prompt_tokens += entry["prompt_tokens"]
                report.completion_tokens += entry["completion_tokens"]
                trace = clean_trace(entry["output"])
                if consistent(example, trace):
                    report.kept.append(Example(example.prompt, example.response, example.labels, example.source, trace))
                else:
                    report.inconsistent += 1
                bar.update()

            await asyncio.gather(*(one(example) for example in examples))
        bar.close()
        order = {example.id: i for i, example in enumerate(examples)}
        report.kept.sort(key=lambda e: order[e.id])
        logger.info("synthesis: %s", report.summary())
        return report

    def run(self, examples: Sequence[Example], *, progress: bool = True) -> SynthesisReport:
        """Sync twin of :meth:`arun`."""
        return asyncio.run(self.arun(examples, progress=progress))
