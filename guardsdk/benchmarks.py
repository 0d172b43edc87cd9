"""The GuardReasoner benchmarks: names, tasks and files."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from guardsdk.protocol import split_conversation
from guardsdk.verdict import PROMPT_HARM, REFUSAL, RESPONSE_HARM


@dataclass(frozen=True)
class BenchmarkSpec:
    """A benchmark as GuardReasoner names it, its file stem, and the task it measures."""

    name: str
    file_stem: str
    task: str


#: In the paper's table order. WildGuardTest (0_4) scores three tasks from its own label file and
#: is not part of the offline set.
BENCHMARKS: tuple[BenchmarkSpec, ...] = (
    BenchmarkSpec("ToxicChat", "0_8_toxic_chat", PROMPT_HARM),
    BenchmarkSpec("HarmBenchPrompt", "0_3_harmbench_prompt", PROMPT_HARM),
    BenchmarkSpec("OpenAIModeration", "0_2_OpenAIModeration", PROMPT_HARM),
    BenchmarkSpec("AegisSafetyTest", "0_1_AegisSafetyTest", PROMPT_HARM),
    BenchmarkSpec("SimpleSafetyTests", "0_0_SimpleSafetyTests", PROMPT_HARM),
    BenchmarkSpec("HarmBenchResponse", "0_5_harmbench_response", RESPONSE_HARM),
    BenchmarkSpec("SafeRLHF", "0_9_safe_rlhf", RESPONSE_HARM),
    BenchmarkSpec("BeaverTails", "0_A_beaver_tails", RESPONSE_HARM),
    BenchmarkSpec("XSTestReponseHarmful", "0_6_xstest_response_harmful", RESPONSE_HARM),
    BenchmarkSpec("XSTestResponseRefusal", "0_7_xstest_response_refusal", REFUSAL),
)
BY_NAME = {spec.name.lower(): spec for spec in BENCHMARKS} | {spec.file_stem.lower(): spec for spec in BENCHMARKS}


def benchmark(name: str) -> BenchmarkSpec:
    """The spec for a benchmark name (``ToxicChat``) or file stem (``0_8_toxic_chat``), any case."""
    try:
        return BY_NAME[name.lower()]
    except KeyError:
        known = ", ".join(spec.name for spec in BENCHMARKS)
        raise ValueError(f"unknown benchmark {name!r}; known: {known}") from None


@dataclass(frozen=True)
class BenchmarkItem:
    """One labelled item: the conversation, its gold label field, and the exact model input."""

    prompt: str
    response: str | None
    label: str
    model_input: str


def load_items(benchmarks_dir: str | os.PathLike[str], spec: BenchmarkSpec) -> list[BenchmarkItem]:
    """Read a benchmark file in the GuardReasoner format (a JSON list of instruction/input/output)."""
    path = Path(benchmarks_dir) / f"{spec.file_stem}.json"
    rows = json.loads(path.read_text(encoding="utf-8"))
    items = []
    for row in rows:
        prompt, response = split_conversation(row["input"])
        items.append(BenchmarkItem(prompt, response, row["output"], row["instruction"] + "\n" + row["input"]))
    return items
