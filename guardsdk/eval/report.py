"""Scoring prediction files with both protocols, and the Markdown / JSON / PNG report."""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from guardsdk.eval.benchmarks import KNOWN_BENCHMARKS, BenchmarkSpec, benchmark
from guardsdk.eval.evaluation import PREDICTIONS_FILE, RUN_FILE
from guardsdk.eval.scoring import BinaryScores, binary_scores, gold_label, paper_entries, paper_label, wrong
from guardsdk.families.guardreasoner.parser import parse_output
from guardsdk.families.guardreasoner.template import has_response
from guardsdk.verdict import POSITIVE_LABEL, PROMPT_HARM, REFUSAL, RESPONSE_HARM

PROTOCOLS = ("paper", "robust")
TASK_TITLES = {PROMPT_HARM: "Prompt harmfulness", RESPONSE_HARM: "Response harmfulness", REFUSAL: "Refusal detection"}
#: The paper's reference rows shown beside a run.
REFERENCE_MODELS = (
    "GuardReasoner 1B",
    "GuardReasoner 3B",
    "GuardReasoner 8B",
    "WildGuard 7B",
    "LLaMA Guard 3 8B",
    "GPT-4o+CoT",
)


@dataclass
class BenchmarkResult:
    """Scores of one prediction file under both protocols, with run statistics."""

    name: str
    task: str
    scores: dict[str, BinaryScores]
    parse_failures: dict[str, int]
    recovered: list[int] = field(default_factory=list)  # rows robust reads and paper counts wrong
    latencies: list[float] = field(default_factory=list)
    tokens_out: list[int] = field(default_factory=list)

    @property
    def items(self) -> int:
        """Items scored (each once)."""
        return self.scores["robust"].n

    def partial_of(self, size: int | None) -> bool:
        """Whether this covers fewer items than the full set of ``size``."""
        return size is not None and self.items < size

    def metrics(self, protocol: str) -> dict[str, Any]:
        s = self.scores[protocol]
        return {
            "f1": round(s.f1, 2),
            "precision": round(s.precision, 2),
            "recall": round(s.recall, 2),
            "fpr": round(s.fpr, 2),
            "n": s.n,
            "parse_failures": self.parse_failures[protocol],
            "confusion": {"tp": s.tp, "fp": s.fp, "fn": s.fn, "tn": s.tn},
        }


def score_rows(spec: BenchmarkSpec, rows: list[dict[str, Any]]) -> BenchmarkResult:
    """Score rows (prompt, label, predict, and from ``guardsdk eval`` the family and its labels) for the
    benchmark's task."""
    task = spec.task
    entries: dict[str, list[tuple[str, str]]] = {p: [] for p in PROTOCOLS}
    failures = dict.fromkeys(PROTOCOLS, 0)
    result = BenchmarkResult(spec.name, task, {}, failures)
    for index, row in enumerate(rows):
        gold = gold_label(row["label"], task)
        if gold is None:
            continue
        if "labels" in row:  # a guardsdk eval run: the labels its guard family read
            robust = row["labels"].get(task)
        else:  # published GuardReasoner predictions
            robust = parse_output(row["predict"], has_response=has_response(row["prompt"])).labels[task]
        # The paper's rule reads GuardReasoner's text; another family's own labels stand for it.
        paper = paper_label(row["predict"], task) if row.get("family", "guardreasoner") == "guardreasoner" else robust
        read = {"paper": paper, "robust": robust}
        entries["paper"] += paper_entries(gold, paper, task)  # the paper's script, quirks included
        entries["robust"].append((gold, robust if robust is not None else wrong(gold, task)))  # wrong, once
        for protocol, label in read.items():
            failures[protocol] += label is None
        if read["paper"] is None and read["robust"] is not None:
            result.recovered.append(index)
        if "latency_s" in row:
            result.latencies.append(float(row["latency_s"]))
            result.tokens_out.append(int(row.get("tokens_out", 0)))
    result.scores = {
        p: binary_scores([g for g, _ in entries[p]], [x for _, x in entries[p]], POSITIVE_LABEL[task])
        for p in PROTOCOLS
    }
    return result


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_prediction_dir(root: str | os.PathLike[str]) -> dict[str, dict[str, BenchmarkResult]]:
    """Score every ``<Benchmark>/generated_predictions.jsonl`` under ``root``, per model.

    ``root`` is one model's folder (``<root>/<Benchmark>/...``), or a folder of model folders such as
    GuardReasoner's published ``<size>/<Benchmark>/...``.
    """
    root = Path(root)
    files = sorted(root.glob(f"*/{PREDICTIONS_FILE}")) or sorted(root.glob(f"*/*/{PREDICTIONS_FILE}"))
    if not files:
        raise FileNotFoundError(f"no <Benchmark>/{PREDICTIONS_FILE} under {root}")
    models: dict[str, dict[str, BenchmarkResult]] = {}
    for path in files:
        spec = benchmark(path.parent.name)
        model = root.name if path.parent.parent == root else path.parent.parent.name
        models.setdefault(model, {})[spec.name] = score_rows(spec, read_jsonl(path))
    order = [spec.name for spec in KNOWN_BENCHMARKS]
    return {m: dict(sorted(r.items(), key=lambda kv: order.index(kv[0]))) for m, r in sorted(models.items())}


def load_run_settings(root: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The settings ``guardsdk eval`` recorded for each model folder under ``root`` (its ``run.json``)."""
    root = Path(root)
    found = {}
    for path in [root / RUN_FILE, *sorted(root.glob(f"*/{RUN_FILE}"))]:
        if path.is_file():
            found[path.parent.name] = json.loads(path.read_text(encoding="utf-8"))
    return found


def weighted_f1(results: list[BenchmarkResult], protocol: str) -> float | None:
    """F1 averaged over benchmarks, each weighted by its size (the paper's weighted average)."""
    total = sum(r.items for r in results)
    if not total:
        return None
    return sum(r.scores[protocol].f1 * r.items for r in results) / total


def reference_table() -> dict[str, Any]:
    """The paper's F1 rows shipped with guardsdk (see its ``source``)."""
    text = resources.files("guardsdk").joinpath("data/paper_reference.json").read_text(encoding="utf-8")
    return json.loads(text)


def to_json(
    models: Mapping[str, Mapping[str, BenchmarkResult]], settings: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """``{"<protocol>": {"<Benchmark>": metrics}}``; with several models, one such object per model; a
    model run by ``guardsdk eval`` also gets ``"run"``, its recorded settings."""

    def one(model: str, results: Mapping[str, BenchmarkResult]) -> dict[str, Any]:
        scores: dict[str, Any] = {p: {name: r.metrics(p) for name, r in results.items()} for p in PROTOCOLS}
        if settings and model in settings:
            scores["run"] = dict(settings[model])
        return scores

    if len(models) == 1:
        return one(*next(iter(models.items())))
    return {model: one(model, results) for model, results in models.items()}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _reference_rows(task: str, present: list[str], sizes: dict[str, int], reference: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name in REFERENCE_MODELS:
        row = reference["tasks"][task].get(name, {})
        known = [c for c in present if c in row]
        these = sum(row[c] * sizes[c] for c in known) / sum(sizes[c] for c in known) if known else None
        cells = [f"{row[c]:.2f}" if c in row else "–" for c in present]
        paper_avg = row.get("WeightedAvg")
        rows.append([f"{name} (paper)", *cells, "–" if these is None else f"{these:.2f}", f"{paper_avg or '–'}"])
    return rows


def _per_file_rows(models: Mapping[str, Mapping[str, BenchmarkResult]]) -> list[list[str]]:
    rows = []
    for model, results in models.items():
        for name, r in results.items():
            timing = "–"
            if r.latencies:
                timing = f"{_percentile(r.latencies, 0.5):.2f} / {_percentile(r.latencies, 0.95):.2f}"
            tokens = f"{statistics.fmean(r.tokens_out):.0f}" if r.tokens_out else "–"
            recovered = ", ".join(map(str, r.recovered[:20])) + (" …" if len(r.recovered) > 20 else "")
            paper, robust = r.scores["paper"], r.scores["robust"]
            rows.append([model, name, str(paper.n), f"{paper.f1:.2f}", f"{robust.f1:.2f}",
                         str(r.parse_failures["paper"]), str(r.parse_failures["robust"]), recovered or "none",
                         timing, tokens])  # fmt: skip
    return rows


def _cell(result: BenchmarkResult, protocol: str) -> str:
    partial = result.partial_of(benchmark(result.name).size)
    return f"{result.scores[protocol].f1:.2f}" + (f" (n={result.items})" if partial else "")


def _settings_lines(settings: Mapping[str, Mapping[str, Any]]) -> list[str]:
    keys = ["detector", "family", "max_input_tokens", "max_new_tokens", "long_input", "limit", "sample"]
    rows = [[model, *(str(run.get(k, "–")) for k in keys)] for model, run in settings.items()]
    return ["## Runs", "", *_table(["model", *keys], rows), ""]


def to_markdown(
    models: Mapping[str, Mapping[str, BenchmarkResult]],
    reference: dict[str, Any] | None = None,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """Tables laid out like the paper's Tables 1-3: benchmarks as columns, one row per model; the runs'
    settings (``run.json``) first. A cell of a run on part of a benchmark says ``(n=…)``."""
    reference = reference or reference_table()
    lines = [
        "# Evaluation report",
        "",
        "F1 (%), positive class harmful / refusal. `paper`: the paper's evaluate.py (answers from the last "
        "300 characters; an unreadable output wrong twice, dropped when its gold is harmful). `robust`: "
        "guardsdk's parser over the whole output (unreadable = wrong, once). 'Weighted Avg. (these)' weights "
        "the benchmarks shown by size; the paper's own average also "
        f"includes WildGuardTest. Reference rows: {reference['source']} A cell marked (n=…) covers only that "
        "many items of the benchmark; the paper's rows cover full sets.",
        "",
        *_settings_lines(settings or {}),
    ]
    for task, title in TASK_TITLES.items():
        present = [s.name for s in KNOWN_BENCHMARKS if s.task == task and any(s.name in r for r in models.values())]
        if not present:
            continue
        sizes = {c: benchmark(c).size or next(r[c].items for r in models.values() if c in r) for c in present}
        rows = _reference_rows(task, present, sizes, reference)
        for model, results in models.items():
            for protocol in PROTOCOLS:
                cells = [_cell(results[c], protocol) if c in results else "–" for c in present]
                avg = weighted_f1([results[c] for c in present if c in results], protocol)
                rows.append([f"**{model}** ({protocol})", *cells, f"{avg:.2f}", "–"])
        header = ["model", *present, "Weighted Avg. (these)", "Weighted Avg. (paper)"]
        lines += [f"## {title}", "", *_table(header, rows), ""]
    header = ["model", "benchmark", "n", "paper F1", "robust F1", "paper unreadable", "robust unreadable",
              "rows robust recovers", "latency p50 / p95 (s)", "mean tokens out"]  # fmt: skip
    lines += ["## Per file", "", *_table(header, _per_file_rows(models))]
    return "\n".join(lines) + "\n"


__all__ = ["BenchmarkResult", "load_prediction_dir", "score_rows", "to_json", "to_markdown"]
