"""Writing a ``guardsdk eval`` report: its Markdown, JSON and chart (matplotlib, ``guardsdk[eval]``) files."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from guardsdk.eval.benchmarks import KNOWN_BENCHMARKS, benchmark
from guardsdk.eval.report import (
    PROTOCOLS,
    REFERENCE_MODELS,
    TASK_TITLES,
    BenchmarkResult,
    reference_table,
    to_json,
    to_markdown,
)


def write_chart(models: Mapping[str, Mapping[str, BenchmarkResult]], path: str | os.PathLike[str]) -> Path:
    """A PNG: per task, F1 per benchmark for this run (robust and paper; each bar labelled with its item
    count, a run on part of the sets labelled so in the legend) beside the paper's full-set rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reference = reference_table()
    tasks = [t for t in TASK_TITLES if any(r.task == t for res in models.values() for r in res.values())]
    fig, axes = plt.subplots(len(tasks), 1, figsize=(14, 3.6 * len(tasks)), squeeze=False)
    for ax, task in zip(axes[:, 0], tasks, strict=True):
        names = [s.name for s in KNOWN_BENCHMARKS if s.task == task and any(s.name in r for r in models.values())]
        series: list[tuple[str, list[float]]] = [
            (f"{ref} (paper's table, full sets)", [reference["tasks"][task].get(ref, {}).get(n, 0.0) for n in names])
            for ref in REFERENCE_MODELS
        ]
        counts: dict[str, list[str]] = {}
        for model, results in models.items():
            partial = any(results[n].partial_of(benchmark(n).size) for n in names if n in results)
            for protocol in PROTOCOLS:
                label = f"{model} ({protocol}{', part of the sets' if partial else ''})"
                series.append((label, [results[n].scores[protocol].f1 if n in results else 0.0 for n in names]))
                counts[label] = [f"n={results[n].items}" if n in results else "" for n in names]
        width = 0.8 / len(series)
        for i, (label, values) in enumerate(series):
            bars = ax.bar([x + i * width for x in range(len(names))], values, width, label=label)
            if label in counts:  # this run's bars say how many items they cover
                ax.bar_label(bars, labels=counts[label], fontsize=6, rotation=90, padding=2)
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(names))], names)
        ax.set_ylim(0, 115)  # room for the n= labels above 100
        ax.set_ylabel("F1 (%)")
        ax.set_title(TASK_TITLES[task])
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def write_report(
    models: Mapping[str, Mapping[str, BenchmarkResult]],
    out_dir: str | os.PathLike[str],
    settings: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Path]:
    """Write report.md, report.json and report.png into ``out_dir`` (with the runs' ``settings``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(to_markdown(models, settings=settings), encoding="utf-8")
    (out / "report.json").write_text(json.dumps(to_json(models, settings), indent=1), encoding="utf-8")
    return {
        "markdown": out / "report.md",
        "json": out / "report.json",
        "chart": write_chart(models, out / "report.png"),
    }


__all__ = ["write_chart", "write_report"]
