"""Training rows: loading, de-duplication, benchmark exclusion and deterministic splits."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from guardsdk.families.guardreasoner.parser import parse_output
from guardsdk.families.guardreasoner.template import INSTRUCTION, build_input, format_conversation, split_conversation
from guardsdk.verdict import NEGATIVE_LABEL, POSITIVE_LABEL, PROMPT_HARM, REFUSAL, RESPONSE_HARM, TASKS

logger = logging.getLogger("guardsdk_trainer")

POOL_LABEL_KEYS = {PROMPT_HARM: "prompt_label", REFUSAL: "refusal_label", RESPONSE_HARM: "response_label"}


@dataclass
class Example:
    """One training item: a conversation, its gold labels (None where unknown), and optional reasoning."""

    prompt: str
    response: str | None
    labels: dict[str, str | None]
    source: str = ""
    reasoning: str | None = None  # a GuardReasoner-style output (trace + answers)
    id: str = field(default="")

    def __post_init__(self) -> None:
        if not self.id:
            self.id = example_id(self.prompt, self.response)

    @property
    def pool_source(self) -> str:
        """The pool source the example came from: the first part of ``source`` (``toxicchat/...`` → ``toxicchat``)."""
        return self.source.split("/")[0]

    @property
    def model_input(self) -> str:
        return build_input(self.prompt, self.response)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Example:
        return cls(**data)


def example_id(prompt: str, response: str | None) -> str:
    """A stable id: the hash of the exact model input."""
    return hashlib.sha256(build_input(prompt, response).encode("utf-8")).hexdigest()[:24]


def _label(task: str, value: Any) -> str | None:
    if isinstance(value, str) and value.lower() in (POSITIVE_LABEL[task], NEGATIVE_LABEL[task]):
        return value.lower()
    return None


def load_pool(path: str | os.PathLike[str]) -> list[Example]:
    """Rows in the schema of shared/data/train/pool.jsonl (prompt, response, *_label, source)."""
    examples = []
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            row = json.loads(line)
            labels = {task: _label(task, row.get(key)) for task, key in POOL_LABEL_KEYS.items()}
            reasoning = (row.get("meta") or {}).get("reasoning_output")
            examples.append(Example(row["prompt"], row.get("response"), labels, row.get("source", ""), reasoning))
    return examples


def load_reasoning(source: str) -> list[Example]:
    """GuardReasonerTrain-style rows (instruction, input, output) from a local JSON/JSONL file, or a
    Hugging Face dataset as ``id`` or ``id:split`` (e.g. ``yueliu1999/GuardReasonerTrain:AegisTrainR``).
    A ``generated_predictions.jsonl`` file is read with :func:`load_predictions`.

    Each row's source is ``reasoning:<file name or split>``.
    """
    from datasets import load_dataset

    if Path(source).name == "generated_predictions.jsonl":
        return load_predictions(source)
    if Path(source).exists():
        dataset, name = load_dataset("json", data_files=str(source), split="train"), Path(source).name
    else:
        dataset_id, _, split_name = source.partition(":")
        dataset, name = load_dataset(dataset_id, split=split_name or "train"), split_name or dataset_id
    examples = []
    for row in dataset:
        prompt, response = split_conversation(row["input"])
        verdict = parse_output(row["output"], has_response=True)
        labels = {task: verdict.labels[task] for task in TASKS}
        examples.append(Example(prompt, response, labels, f"reasoning:{name}", row["output"]))
    return examples


def load_predictions(path: str | os.PathLike[str]) -> list[Example]:
    """Traces from a GuardReasoner ``<Benchmark>/generated_predictions.jsonl`` (prompt, label, predict),
    kept only where the answer to the task that benchmark measures matches its gold label."""
    from guardsdk.eval.benchmarks import benchmark
    from guardsdk.eval.scoring import gold_label

    path = Path(path)
    task = benchmark(path.parent.name).task
    examples = []
    for row in read_jsonl(path):
        prompt, response = split_conversation(row["prompt"][row["prompt"].index("Human user:\n") :])
        verdict = parse_output(row["predict"], has_response=response is not None)
        gold = gold_label(row["label"], task)
        if gold is None or verdict.labels[task] != gold:
            continue
        labels = {t: (verdict.labels[t] if t == task else None) for t in TASKS}
        examples.append(Example(prompt, response, labels, f"predictions:{path.parent.name}", row["predict"]))
    return examples


def compact_trace(trace: str) -> str:
    """A trace cut to each task's heading and first reasoning step, then its answers block (unchanged)."""
    body, separator, answers = trace.rpartition("\n---\n")
    if not separator:
        return trace
    kept = []
    for block in re.split(r"(?m)^(?=# Task )", body.strip()):
        lines = [line for line in block.strip().split("\n") if line.strip()]
        if not lines or not lines[0].startswith("# Task"):
            continue
        step = next((i for i, line in enumerate(lines) if line.startswith("## Reasoning Step")), None)
        if step is None:
            kept.append(lines[0])
            continue
        text = (
            lines[step]
            if lines[step].split(":", 1)[-1].strip() and ":" in lines[step]
            else "\n".join(lines[step : step + 2])
        )
        kept.append(f"{lines[0]}\n\n{text}")
    return "\n\n".join(kept) + "\n\n---\n" + answers


def normalize_prompt(text: str) -> str:
    """Case- and whitespace-insensitive form of a prompt, for benchmark exclusion."""
    return re.sub(r"\s+", " ", text).strip().lower()


def benchmark_prompts(files: Iterable[str | os.PathLike[str]]) -> set[str]:
    """Normalized prompts of benchmark files (GuardReasoner benchmark JSON or prediction JSONL)."""
    prompts: set[str] = set()
    for file in files:
        text = Path(file).read_text(encoding="utf-8")
        rows = json.loads(text) if text.lstrip().startswith("[") else [json.loads(x) for x in text.split("\n") if x]
        for row in rows:
            conversation = row["input"] if "input" in row else row["prompt"][row["prompt"].index("Human user:\n") :]
            prompts.add(normalize_prompt(split_conversation(conversation)[0]))
    return prompts


def exclude_benchmarks(examples: Sequence[Example], files: Sequence[str]) -> tuple[list[Example], int]:
    """Drop every example whose prompt appears in ``files``; returns the kept rows and how many were dropped."""
    if not files:
        return list(examples), 0
    banned = benchmark_prompts(files)
    kept = [e for e in examples if normalize_prompt(e.prompt) not in banned]
    dropped = len(examples) - len(kept)
    logger.warning("excluded %d training rows whose prompt is in a benchmark", dropped)
    return kept, dropped


def seeded_hash(seed: int, example_id: str) -> str:
    """A stable pseudo-random key for an example under ``seed``: splits and orders by it survive reordering."""
    return hashlib.sha256(f"{seed}:{example_id}".encode()).hexdigest()


def deduplicate(examples: Iterable[Example]) -> list[Example]:
    """Each distinct (input, trace) once, first one kept; a row without a trace is dropped when the same
    input has one (two teachers' traces of one input are both kept)."""
    examples = list(examples)
    traced = {e.id for e in examples if e.reasoning}
    seen: set[tuple[str, str | None]] = set()
    kept = []
    for example in examples:
        key = (example.id, example.reasoning)
        if key in seen or (example.reasoning is None and example.id in traced):
            continue
        seen.add(key)
        kept.append(example)
    return kept


def interleave_by_labels(examples: Sequence[Example], seed: int = 0) -> list[Example]:
    """A deterministic order that takes turns between label combinations (each shuffled by hash), so the
    first N rows of a pool sorted by source are not all one source or one label."""
    groups: dict[tuple[str | None, ...], list[Example]] = {}
    for example in sorted(examples, key=lambda e: seeded_hash(seed, e.id)):
        groups.setdefault(tuple(example.labels.get(t) for t in TASKS), []).append(example)
    ordered: list[Example] = []
    queues = list(groups.values())
    for index in range(max((len(q) for q in queues), default=0)):
        ordered += [queue[index] for queue in queues if index < len(queue)]
    return ordered


def split(examples: Sequence[Example], eval_fraction: float, seed: int = 0) -> tuple[list[Example], list[Example]]:
    """A deterministic train/eval split by hash of (seed, id): stable under reordering and growth."""
    train, held_out = [], []
    for example in examples:
        bucket = int(seeded_hash(seed, example.id)[:8], 16) / 0xFFFFFFFF
        (held_out if bucket < eval_fraction else train).append(example)
    return train, held_out


def write_benchmark(examples: Iterable[Example], task: str, path: str | os.PathLike[str]) -> int:
    """Write the examples labelled for ``task`` as a GuardReasoner benchmark file (a JSON list of
    instruction / input / output) that ``guardsdk eval`` reads; returns how many were written."""
    rows = [{"instruction": INSTRUCTION, "input": format_conversation(e.prompt, e.response), "output": e.labels[task]}
            for e in examples if e.labels.get(task)]  # fmt: skip
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(rows, ensure_ascii=False, indent=0), encoding="utf-8")
    return len(rows)


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def save_tokenizer(tokenizer: Any, source_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> None:
    """Save ``tokenizer`` and keep the SentencePiece ``tokenizer.model`` of ``source_dir`` beside it
    (transformers does not write it back, and llama.cpp's GGUF converter needs it)."""
    import shutil

    tokenizer.save_pretrained(str(out_dir))
    spm_model = Path(source_dir) / "tokenizer.model"
    if spm_model.is_file():
        shutil.copy(spm_model, Path(out_dir) / "tokenizer.model")
