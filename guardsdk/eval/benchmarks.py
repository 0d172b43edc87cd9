"""The GuardReasoner benchmarks: names, tasks and files."""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

from guardsdk.families.guardreasoner.template import split_conversation
from guardsdk.verdict import PROMPT_HARM, REFUSAL, RESPONSE_HARM


@dataclass(frozen=True)
class BenchmarkSpec:
    """A benchmark as GuardReasoner names it, its file stem, and the task it measures."""

    name: str
    file_stem: str
    task: str
    size: int | None = None  # items in the full set (what the paper's numbers cover)


#: In the paper's table order. WildGuardTest (0_4) scores three tasks from its own label file and
#: is not part of the offline set.
BENCHMARKS: tuple[BenchmarkSpec, ...] = (
    BenchmarkSpec("ToxicChat", "0_8_toxic_chat", PROMPT_HARM, 2853),
    BenchmarkSpec("HarmBenchPrompt", "0_3_harmbench_prompt", PROMPT_HARM, 239),
    BenchmarkSpec("OpenAIModeration", "0_2_OpenAIModeration", PROMPT_HARM, 1680),
    BenchmarkSpec("AegisSafetyTest", "0_1_AegisSafetyTest", PROMPT_HARM, 359),
    BenchmarkSpec("SimpleSafetyTests", "0_0_SimpleSafetyTests", PROMPT_HARM, 100),
    BenchmarkSpec("HarmBenchResponse", "0_5_harmbench_response", RESPONSE_HARM, 602),
    BenchmarkSpec("SafeRLHF", "0_9_safe_rlhf", RESPONSE_HARM, 2000),
    BenchmarkSpec("BeaverTails", "0_A_beaver_tails", RESPONSE_HARM, 3021),
    BenchmarkSpec("XSTestReponseHarmful", "0_6_xstest_response_harmful", RESPONSE_HARM, 446),
    BenchmarkSpec("XSTestResponseRefusal", "0_7_xstest_response_refusal", REFUSAL, 449),
)
#: Not in the paper, never in the default set: the held-out split of the training pool's human-labelled
#: refusal rows (Do-Not-Answer), written by the guardreasoner-tiny card script.
POOL_REFUSAL = BenchmarkSpec("PoolRefusalHeldOut", "pool_refusal_heldout", REFUSAL)
KNOWN_BENCHMARKS: tuple[BenchmarkSpec, ...] = (*BENCHMARKS, POOL_REFUSAL)
BY_NAME = {spec.name.lower(): spec for spec in KNOWN_BENCHMARKS} | {
    spec.file_stem.lower(): spec for spec in KNOWN_BENCHMARKS
}


def benchmark(name: str) -> BenchmarkSpec:
    """The spec for a benchmark name (``ToxicChat``) or file stem (``0_8_toxic_chat``), any case."""
    try:
        return BY_NAME[name.lower()]
    except KeyError:
        known = ", ".join(spec.name for spec in KNOWN_BENCHMARKS)
        raise ValueError(f"unknown benchmark {name!r}; known: {known}") from None


SAMPLE_SEED = 0


@dataclass(frozen=True)
class BenchmarkItem:
    """One labelled item: the conversation, its gold label field, and the exact model input."""

    prompt: str
    response: str | None
    label: str
    model_input: str


def load_items(
    benchmarks_dir: str | os.PathLike[str], spec: BenchmarkSpec, *, limit: int | None = None, sample: int | None = None
) -> list[BenchmarkItem]:
    """Read a benchmark file in the GuardReasoner format (a JSON list of instruction/input/output): all
    items, the first ``limit``, or a seeded random ``sample`` of that many (file order kept; the same
    items on every run, so two guards scored with the same ``sample`` see the same items)."""
    path = Path(benchmarks_dir) / f"{spec.file_stem}.json"
    rows = json.loads(path.read_text(encoding="utf-8"))
    items = []
    for row in rows:
        prompt, response = split_conversation(row["input"])
        items.append(BenchmarkItem(prompt, response, row["output"], row["instruction"] + "\n" + row["input"]))
    if sample is not None and sample < len(items):
        keep = sorted(random.Random(SAMPLE_SEED).sample(range(len(items)), sample))
        items = [items[i] for i in keep]
    return items[:limit]
