"""Running a guard over benchmark files, writing resumable GuardReasoner-style prediction files."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardsdk.backends.base import Fingerprinted
from guardsdk.errors import InvalidInputError
from guardsdk.eval.benchmarks import BENCHMARKS, BenchmarkItem, BenchmarkSpec, load_items
from guardsdk.verdict import Verdict

if TYPE_CHECKING:
    from guardsdk.guard import Guard

PREDICTIONS_FILE = "generated_predictions.jsonl"
#: The settings of a run, kept beside its predictions: a rerun into the folder must use the same ones.
RUN_FILE = "run.json"


def run_settings(guard: Guard, limit: int | None, sample: int | None) -> dict[str, Any]:
    """What makes two runs' rows comparable: the detector (family and model), the budgets, the slice."""
    return {
        "detector": guard.detector.name,
        "model_files": model_files(guard.detector),
        "mode": guard.mode,
        "family": guard.family.name if guard.family else getattr(guard.detector, "family_name", None),
        "max_input_tokens": guard.max_input_tokens,
        "max_new_tokens": getattr(guard.detector, "max_new_tokens", None),
        "long_input": guard.policy.long_input.value,
        "limit": limit,
        "sample": sample,
    }


def model_files(detector: Any) -> list[str]:
    """The fingerprints of the model files under ``detector`` (a composite's: each part's), so a run resumed
    after its model file was replaced or retrained is refused rather than mixed with the old rows."""
    if isinstance(detector, Fingerprinted) and detector.fingerprint:
        return [detector.fingerprint]
    parts = [getattr(detector, name, None) for name in ("fast", "reasoning", "backend")]
    return [f for part in (*parts, *getattr(detector, "detectors", ())) if part is not None for f in model_files(part)]


def claim_folder(out: Path, settings: dict[str, Any]) -> None:
    """Record ``settings`` in ``out``, or refuse a folder whose rows were made with other settings."""
    path = out / RUN_FILE
    if path.exists():
        refuse_other_settings(out, json.loads(path.read_text(encoding="utf-8")), settings)
    elif any(out.glob(f"*/{PREDICTIONS_FILE}")):
        raise ValueError(f"{out} holds predictions of an unknown run (no {RUN_FILE}); use another --out")
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=1), encoding="utf-8")


def refuse_other_settings(out: Path, recorded: dict[str, Any], settings: dict[str, Any]) -> None:
    """A ``ValueError`` naming each of ``settings`` that differs from the run ``recorded`` in ``out``."""
    changed = {k: (recorded.get(k), v) for k, v in settings.items() if recorded.get(k) != v}
    if changed:
        details = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
        raise ValueError(f"{out} holds a run made with other settings ({details}); use another --out")


def completed_rows(path: Path) -> int:
    """How many complete JSON lines ``path`` holds; a torn last line (an interrupted write) is cut off. Streamed:
    a scan's output (``guardsdk scan``) can be far larger than memory."""
    if not path.exists():
        return 0
    keep = count = 0
    with path.open("rb") as handle:
        for line in handle:  # every complete line ends in "\n"; a last one without it is torn
            try:
                if not line.endswith(b"\n"):
                    break
                json.loads(line)
            except ValueError:
                break
            keep += len(line)
            count += 1
    if keep != path.stat().st_size:
        with path.open("r+b") as handle:
            handle.truncate(keep)
    return count


def _row(item: BenchmarkItem, verdict: Verdict | None, error: str | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"prompt": item.model_input, "label": item.label, "predict": verdict.raw if verdict else ""}
    if verdict is not None:
        row |= {
            "latency_s": round(verdict.latency_s, 4),
            "tokens_in": verdict.tokens_in,
            "tokens_out": verdict.tokens_out,
            "parse_status": verdict.parse_status.value,
            "family": verdict.family,
            "labels": {str(task): label for task, label in verdict.labels.items()},
        }
        error = verdict.error
    if error:
        row["error"] = error
    return row


def _check(guard: Guard, batch: Sequence[BenchmarkItem]) -> list[dict[str, Any]]:
    try:
        verdicts = guard.check_batch([(item.prompt, item.response) for item in batch])
        return [_row(item, verdict) for item, verdict in zip(batch, verdicts, strict=True)]
    except InvalidInputError:
        rows = []
        for item in batch:  # find the bad item(s); the rest are still checked
            try:
                rows.append(_row(item, guard.check_batch([(item.prompt, item.response)])[0]))
            except InvalidInputError as exc:
                rows.append(_row(item, None, f"InvalidInputError: {exc}"))
        return rows


def evaluate(
    guard: Guard,
    benchmarks_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    benchmarks: Sequence[BenchmarkSpec] = BENCHMARKS,
    limit: int | None = None,
    sample: int | None = None,
    batch_size: int = 8,
    progress: bool = True,
) -> Path:
    """Run ``guard`` over ``benchmarks`` (all items, the first ``limit``, or a seeded ``sample``), appending
    to ``<out_dir>/<Benchmark>/generated_predictions.jsonl``.

    Each batch is written and flushed as soon as it is done; a rerun with the same settings skips the rows
    already written, so an interrupted run resumes where it stopped; a rerun with other settings (another
    model or family, budget, limit or sample) is refused (``ValueError``), never mixed in.
    """
    from tqdm.auto import tqdm

    out = Path(out_dir)
    claim_folder(out, run_settings(guard, limit, sample))
    for spec in benchmarks:
        items = load_items(benchmarks_dir, spec, limit=limit, sample=sample)
        path = out / spec.name / PREDICTIONS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        done = completed_rows(path)
        bar = tqdm(total=len(items), initial=min(done, len(items)), desc=spec.name, unit="item", disable=not progress)
        with path.open("a", encoding="utf-8") as handle:
            for start in range(done, len(items), batch_size):
                for row in _check(guard, items[start : start + batch_size]):
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
                bar.update(min(batch_size, len(items) - start))
        bar.close()
    return out
