"""A scan's summary, counted while its rows are written (and re-read from the output on resume), and its report:
``summary.json``, ``report.md`` and ``report.png`` (matplotlib, as ``guardsdk eval`` draws its charts)."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guardsdk.scan.columns import PREFIX
from guardsdk.scan.rows import reason_kind
from guardsdk.verdict import TASKS

#: The output columns the summary reads.
SUMMARY_COLUMNS = [
    "guard_decision",
    "guard_undecided",
    "guard_opt_in",
    "guard_error",
    *(f"{PREFIX}{task}" for task in TASKS),
]
_TOP_REASONS = 12


@dataclass
class ScanSummary:
    """What a scan found: rows in the output (``rows``; this run wrote ``rows_this_run`` of them in ``seconds``),
    decisions, labels per task, undecided rows by reason (numbers taken out), rows allowed by an opt-in path without a
    decided safe verdict (``opt_in``, by path: fail_open, elided, threshold), and rows that could not be checked
    (``errors``: a bad row, a backend failure, a deadline; an undecided answer is counted by reason, not as one)."""

    out: str = ""
    rows: int = 0
    rows_this_run: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    labels: dict[str, Counter[str]] = field(default_factory=lambda: {str(task): Counter() for task in TASKS})
    undecided: Counter[str] = field(default_factory=Counter)
    opt_in: Counter[str] = field(default_factory=Counter)
    opt_in_rows: int = 0
    errors: int = 0
    seconds: float = 0.0
    finished: bool = False

    @property
    def rows_per_s(self) -> float:
        """This run's rows per second."""
        return self.rows_this_run / self.seconds if self.seconds > 0 else 0.0

    def add(self, rows: Iterable[dict[str, Any]], *, this_run: bool = True) -> None:
        """Count output rows (those of this run, or those an earlier run wrote)."""
        for row in rows:
            self.rows += 1
            self.rows_this_run += this_run
            self.decisions[row["guard_decision"]] += 1
            for task in TASKS:
                label = row.get(f"{PREFIX}{task}")
                self.labels[str(task)][label if label is not None else "undecided"] += 1
            if row.get("guard_undecided"):
                self.undecided[reason_kind(row["guard_undecided"])] += 1
            if row.get("guard_opt_in"):
                self.opt_in_rows += 1
                self.opt_in.update(path.strip() for path in str(row["guard_opt_in"]).split(","))
            self.errors += bool(row.get("guard_error"))

    def to_json(self) -> dict[str, Any]:
        return {
            "out": self.out,
            "finished": self.finished,
            "rows": self.rows,
            "rows_this_run": self.rows_this_run,
            "seconds": round(self.seconds, 3),
            "rows_per_s": round(self.rows_per_s, 2),
            "decisions": dict(self.decisions.most_common()),
            "labels": {task: dict(counts.most_common()) for task, counts in self.labels.items()},
            "undecided": dict(self.undecided.most_common()),
            "allowed_by_opt_in": self.opt_in_rows,
            "opt_in": dict(self.opt_in.most_common()),
            "errors": self.errors,
        }

    def text(self) -> str:
        """The summary as the CLI prints it."""
        share = (lambda n: f"{n} ({100 * n / self.rows:.1f}%)") if self.rows else str
        lines = [
            f"scan {'finished' if self.finished else 'stopped'}: {self.rows} rows in {self.out} "
            f"({self.rows_this_run} this run, {self.seconds:.1f} s, {self.rows_per_s:.1f} rows/s)",
            "decisions: " + (", ".join(f"{k} {share(v)}" for k, v in sorted(self.decisions.items())) or "none"),
        ]
        for task, counts in self.labels.items():
            lines.append(f"{task}: " + (", ".join(f"{k} {v}" for k, v in counts.most_common()) or "none"))
        if self.undecided:
            lines.append("undecided by reason:")
            lines += [f"  {n:>7}  {reason}" for reason, n in self.undecided.most_common(_TOP_REASONS)]
        if self.opt_in_rows:
            paths = ", ".join(f"{k} {v}" for k, v in self.opt_in.most_common())
            lines.append(f"allowed without a decided safe verdict (opt-in): {share(self.opt_in_rows)} ({paths})")
        if self.errors:
            lines.append(f"rows that could not be checked (bad rows, backend failures, deadlines): {self.errors}")
        return "\n".join(lines)

    def markdown(self, settings: dict[str, Any] | None = None) -> str:
        lines = [f"# Scan of {settings.get('input', {}).get('path', '?') if settings else '?'}", "",
                 f"{self.rows} rows ({'finished' if self.finished else 'stopped before the end'}); this run "
                 f"{self.rows_this_run} rows in {self.seconds:.1f} s ({self.rows_per_s:.1f} rows/s).", "",
                 "| decision | rows |", "|---|---|"]  # fmt: skip
        lines += [f"| {k} | {v} |" for k, v in self.decisions.most_common()]
        lines += ["", "| task | " + " | ".join(["label", "rows"]) + " |", "|---|---|---|"]
        lines += [f"| {task} | {label} | {n} |" for task, c in self.labels.items() for label, n in c.most_common()]
        if self.undecided:
            lines += ["", "| undecided reason | rows |", "|---|---|"]
            lines += [f"| {reason.replace('|', '/')} | {n} |" for reason, n in self.undecided.most_common()]
        if self.opt_in_rows:
            lines += ["", f"{self.opt_in_rows} rows were allowed without a decided safe verdict, by an opt-in path:",
                      "", "| opt-in path | rows |", "|---|---|"]  # fmt: skip
            lines += [f"| {path} | {n} |" for path, n in self.opt_in.most_common()]
        if self.errors:
            lines += ["", f"{self.errors} rows could not be checked (bad rows, backend failures, deadlines)."]
        if settings:
            lines += ["", "## Settings", "", "```json", json.dumps(settings, indent=1, default=str), "```"]
        lines += ["", "![decisions and undecided reasons](report.png)", ""]
        return "\n".join(lines)


def write_chart(summary: ScanSummary, path: str | os.PathLike[str]) -> Path | None:
    """A PNG: rows per decision, and undecided rows per reason (the most common); None without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reasons = summary.undecided.most_common(_TOP_REASONS)
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.2), gridspec_kw={"width_ratios": [1, 2.2]})
    names = ["safe", "unsafe", "undecided"]
    bars = axes[0].bar(names, [summary.decisions.get(n, 0) for n in names], color=["#4c9a2a", "#c0392b", "#7f8c8d"])
    axes[0].bar_label(bars, fontsize=8, padding=2)
    axes[0].set_ylabel("rows")
    axes[0].set_title(f"Decisions ({summary.rows} rows)")
    labels = [r if len(r) <= 60 else r[:57] + "..." for r, _ in reasons][::-1]
    bars = axes[1].barh(labels or ["(none)"], [n for _, n in reasons][::-1] or [0], color="#7f8c8d")
    axes[1].bar_label(bars, fontsize=8, padding=2)
    axes[1].tick_params(axis="y", labelsize=7)
    axes[1].set_title("Undecided rows by reason")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def write_summary(summary: ScanSummary, out: Path, settings: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write ``summary.json``, ``report.md`` and (with matplotlib) ``report.png`` into ``out``."""
    paths = {"json": out / "summary.json", "markdown": out / "report.md"}
    paths["json"].write_text(json.dumps(summary.to_json(), indent=1), encoding="utf-8")
    paths["markdown"].write_text(summary.markdown(settings), encoding="utf-8")
    chart = write_chart(summary, out / "report.png")
    if chart is not None:
        paths["chart"] = chart
    return paths


__all__ = ["SUMMARY_COLUMNS", "ScanSummary", "write_chart", "write_summary"]
