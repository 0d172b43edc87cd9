"""``scan``: a guard over every row of a file, streamed into a resumable output folder, with a summary at the end."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardsdk.eval.evaluation import claim_folder, run_settings
from guardsdk.scan.checks import check_columns, check_folder, check_out
from guardsdk.scan.columns import ColumnMap
from guardsdk.scan.memory import release_free_memory
from guardsdk.scan.rows import Row, verdict_columns, verdict_schema
from guardsdk.scan.sources import Source, open_source, pick, reservoir, take
from guardsdk.scan.summary import SUMMARY_COLUMNS, ScanSummary, write_summary
from guardsdk.scan.writers import OUTPUT_FORMATS, holds_rows, open_writer

if TYPE_CHECKING:
    from guardsdk.guard import Guard

logger = logging.getLogger("guardsdk.scan")
ENGINES = ("local", "ray")
GuardFactory = Callable[[], "Guard"]


def default_guard() -> Guard:
    """``Guard()``'s default model under an annotating policy: a scan records decisions, it never blocks."""
    from guardsdk.guard import Guard
    from guardsdk.policy import OnUnsafe, Policy

    return Guard(policy=Policy(on_unsafe=OnUnsafe.ANNOTATE))


def local_engine(guard: Guard, batches: Iterable[list[Row]], columns: ColumnMap, reasoning: bool
                 ) -> Iterator[list[dict[str, Any]]]:  # fmt: skip
    """Check each batch in this process, in order (the memory a batch freed goes back to the system)."""
    for batch in batches:
        checked = verdict_columns(guard, batch, columns, reasoning=reasoning)
        release_free_memory()
        yield checked


def input_settings(source: Source, columns: ColumnMap, *, output_format: str, reasoning: bool, sample: int | None,
                   seed: int, batch_size: int) -> dict[str, Any]:  # fmt: skip
    """The part of :func:`scan_settings` known before a guard loads (a rerun that changes one is refused at once)."""
    return {
        "input": source.fingerprint(),
        "columns": columns.settings(),
        "sample": sample,
        "reasoning": reasoning,
        "seed": seed if sample else None,
        "output_format": output_format,
        "batch_size": batch_size,
    }


def scan_settings(guard: Guard, source: Source, columns: ColumnMap, *, output_format: str, reasoning: bool,
                  sample: int | None, seed: int, batch_size: int = 16) -> dict[str, Any]:  # fmt: skip
    """What a resumed scan must share with the run it continues (``guardsdk eval``'s run settings, the input, the
    columns, the policy, the output, the batch size: a batch's padding moves the classifier's scores, so rows checked
    in other batches are not the same rows). Not the engine (a local scan may go on on Ray), nor ``limit``: a
    limited run writes the first rows of the full scan, so a later run with a larger limit or none continues it."""
    policy = guard.policy
    settings = run_settings(guard, None, sample) | {
        "gates": sorted(policy.gates),
        "thresholds": dict(sorted(policy.thresholds.items())),
        "on_undecided": policy.on_undecided.value,
        "max_windows": policy.max_windows,
    }
    settings |= input_settings(source, columns, output_format=output_format, reasoning=reasoning, sample=sample,
                               seed=seed, batch_size=batch_size)  # fmt: skip
    settings.pop("limit")
    return settings


def _batches(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    while batch := list(islice(rows, size)):
        yield batch


def _input_schema(source: Source) -> Any:
    """The input's columns in a Parquet output (all nullable: a bad row has none); None for JSONL (inferred)."""
    import pyarrow as pa

    if source.format == "csv":
        return pa.schema([(name, pa.string()) for name in source.columns() or []])
    schema = source.schema()
    return None if schema is None else pa.schema([f.with_nullable(True) for f in schema])


def _resolve(guard: Guard | GuardFactory | None, engine: str) -> tuple[Guard, GuardFactory | None, bool]:
    """The guard to read settings from (and to check with, locally), its factory, and whether the scan owns it."""
    from guardsdk.guard import Guard

    if isinstance(guard, Guard):
        if engine == "ray":
            raise ValueError("engine='ray' needs a guard factory (a picklable function returning a Guard)")
        return guard, None, False
    factory = guard or default_guard
    made = factory()
    if not isinstance(made, Guard):
        raise TypeError(f"the guard factory returned {type(made).__name__}, not a Guard")
    return made, factory, True


def scan(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    guard: Guard | GuardFactory | None = None,
    *,
    columns: ColumnMap | None = None,
    input_format: str | None = None,
    output_format: str | None = None,
    reasoning: bool = False,
    batch_size: int = 16,
    limit: int | None = None,
    sample: int | None = None,
    seed: int = 0,
    engine: str = "local",
    ray_options: dict[str, Any] | None = None,
    progress: bool = True,
) -> ScanSummary:
    """Check every row of ``source`` (JSONL, CSV, Parquet, a ``save_to_disk`` folder, a ``.json`` array) with
    ``guard`` and write the rows with their verdict columns into the folder ``out``; returns the summary of all its
    rows.

    ``guard``: a Guard, or a zero-argument picklable factory of one (``engine="ray"`` needs a factory); None:
    ``Guard()``'s default model, annotating. ``limit``: the first N rows; ``sample``: a seeded uniform N rows (a
    streamed reservoir), in input order. ``batch_size`` is a setting: a batch's padding moves the classifier's scores.
    An interrupted scan resumes where it stopped, on the same batches (its rows are those of one uninterrupted run);
    a rerun with other settings is refused (``ValueError``). A row the guard cannot check is an undecided row that
    says why. Prompt-only: ``columns=ColumnMap(response=None)``; gates and thresholds: the guard's ``Policy``.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    if batch_size < 1 or (limit is not None and limit < 0):
        raise ValueError("batch_size must be at least 1 and limit at least 0")
    columns = columns or ColumnMap()
    src = open_source(source, input_format)
    fmt = output_format or ("parquet" if src.format in ("parquet", "datasets") else "jsonl")
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"output_format must be one of {OUTPUT_FORMATS}, not {fmt!r}")
    folder = Path(out)
    check_folder(folder)
    check_columns(src, columns)
    options = dict(ray_options or {})
    size = int(options.pop("batch_size", None) or batch_size) if engine == "ray" else batch_size
    if engine == "ray":  # before any model loads
        from guardsdk.scan.ray_engine import import_ray

        import_ray()
    check_out(folder, input_settings(src, columns, output_format=fmt, reasoning=reasoning, sample=sample, seed=seed,
                                     batch_size=size))  # fmt: skip
    checker, factory, owned = _resolve(guard, engine)
    try:
        settings = scan_settings(checker, src, columns, output_format=fmt, reasoning=reasoning, sample=sample,
                                 seed=seed, batch_size=size)  # fmt: skip
        if holds_rows(folder) and not (folder / "run.json").exists():
            raise ValueError(f"{folder} holds scan rows of an unknown run (no run.json); use another --out")
        claim_folder(folder, settings)
        schema = _input_schema(src) if fmt == "parquet" else None
        writer = open_writer(folder, fmt, verdict_schema(reasoning), schema)
        summary = ScanSummary(out=str(folder))
        done = writer.resume()
        summary.add(writer.read(SUMMARY_COLUMNS), this_run=False)
        # Batches on one grid (rows [k * size, (k + 1) * size) of the input, or of the sample): a resume checks the
        # batch it stopped in whole again, and a limit inside a batch checks that batch whole, each writing only
        # its own rows. So every row is checked in the batch one uninterrupted run checks it in, and is the same.
        start = done - done % size
        if sample is not None:
            chosen = reservoir(src.row_ids(), sample, seed)
            if len(chosen) < sample:
                logger.warning("guardsdk scan: a sample of %d asked, but the input has %d rows: all are scanned",
                               sample, len(chosen))  # fmt: skip
            total = len(chosen) if limit is None else min(limit, len(chosen))
            end = -(-total // size) * size
            rows = pick(src.rows(chosen[start]), chosen[start:end]) if done < total else iter(())
        else:
            count = src.count()
            total = limit if count is None else count if limit is None else min(limit, count)
            end = None if total is None else -(-total // size) * size
            rows = take(src.rows(start), None if end is None else end - start) if total is None or done < total \
                else iter(())  # fmt: skip
        if total is not None and 0 < total <= done:
            logger.warning("guardsdk scan: %s already holds %d rows; nothing to do", folder, done)
        if engine == "ray" and owned:
            checker.close()  # the workers build their own guards from the factory
            owned = False
        results = _run(engine, checker, factory, _batches(rows, size), columns, reasoning, options)
        summary.finished = _write(results, writer, summary, total, done, progress, settings, skip=done - start)
        write_summary(summary, folder, settings)
        return summary
    finally:
        if owned:
            checker.close()


def _run(engine: str, guard: Guard, factory: GuardFactory | None, batches: Iterator[list[Row]], columns: ColumnMap,
         reasoning: bool, ray_options: dict[str, Any] | None) -> Iterator[list[dict[str, Any]]]:  # fmt: skip
    if engine == "local":
        return local_engine(guard, batches, columns, reasoning)
    from guardsdk.scan.ray_engine import ray_batches

    return ray_batches(factory, batches, columns, reasoning=reasoning, options=ray_options)


def _write(results: Iterator[list[dict[str, Any]]], writer: Any, summary: ScanSummary, total: int | None,
           done: int, progress: bool, settings: dict[str, Any], skip: int = 0) -> bool:  # fmt: skip
    """Write each batch of results as it comes (but the first ``skip`` rows, already written, and any past
    ``total``); True when the input ran out, False when interrupted."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    bar = tqdm(total=total, initial=done, unit="row", desc="scan", disable=not progress, dynamic_ncols=True)
    finished = False
    try:
        for checked in results:
            batch, skip = checked[skip:], max(skip - len(checked), 0)
            batch = batch if total is None else batch[: max(total - done - summary.rows_this_run, 0)]
            writer.write(batch)
            summary.add(batch)
            bar.update(len(batch))
        finished = True
    finally:
        writer.close()  # a Parquet writer writes the rows it holds: an interrupted scan keeps every checked row
        bar.close()
        summary.seconds = time.perf_counter() - start
        if not finished:
            write_summary(summary, Path(summary.out), settings)
    return finished


__all__ = ["ENGINES", "default_guard", "input_settings", "local_engine", "scan", "scan_settings"]
