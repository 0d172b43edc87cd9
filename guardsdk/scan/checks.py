"""Checks a scan makes before it writes anything: the input's columns (JSONL too, from its first rows), the output
folder, and a resumed scan's input."""

from __future__ import annotations

import json
import logging
from itertools import islice
from pathlib import Path
from typing import Any

from guardsdk.eval.evaluation import refuse_other_settings
from guardsdk.scan.columns import BAD_ROW, ColumnMap
from guardsdk.scan.rows import foreign_guard_columns
from guardsdk.scan.sources import Source

logger = logging.getLogger("guardsdk.scan")
#: The rows of a JSONL (or JSON array) input whose keys stand for its columns in the up-front column check.
PEEK_ROWS = 100


def _names(source: Source) -> tuple[list[str], list[str]] | None:
    """The input's column names and those of its first row: declared (CSV, Parquet, datasets), or the keys of the
    first :data:`PEEK_ROWS` rows that are JSON objects (None where none of them is)."""
    names = source.columns()
    if names is not None:
        return names, names
    keys: dict[str, None] = {}
    first: list[str] | None = None
    for _, row in islice(source.rows(), PEEK_ROWS):
        if BAD_ROW not in row:
            own = [k for k in row if isinstance(k, str)]
            first = own if first is None else first
            keys.update(dict.fromkeys(own))
    return None if first is None else (list(keys), first)


def check_columns(source: Source, columns: ColumnMap) -> None:
    """Refuse an input without the columns ``columns`` names (JSONL: none of its first rows has them)."""
    found = _names(source)
    if found is None:  # empty, or no readable row up front: every row is a bad row that says why
        return
    names, first = found
    foreign = foreign_guard_columns(first)  # a later row with scan columns of its own is a bad row
    if foreign:
        raise ValueError(f"the input already has scan columns ({', '.join(foreign)}): rename or drop them")
    missing = [name for name in columns.needed() if name not in names]
    if missing:
        raise ValueError(f"the input has no column {', '.join(map(repr, missing))} (it has {', '.join(names)})")
    if not columns.messages and columns.response and columns.response not in names:
        logger.warning("guardsdk scan: the input has no column %r: every row is checked prompt-only",
                       columns.response)  # fmt: skip


def check_folder(folder: Path) -> None:
    """Refuse an ``out`` that is a file (before any model loads)."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file; the scan's out must be a folder (new, or one this scan wrote)")


def check_out(folder: Path, settings: dict[str, Any]) -> None:
    """Refuse an ``out`` that is a file, a scan folder of this input made before the input changed (in words), or
    one made with other ``settings`` (those known before a model loads: :func:`~guardsdk.scan.runner.input_settings`;
    ``claim_folder`` compares the rest)."""
    check_folder(folder)
    try:
        run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        recorded = run.get("input")
    except (OSError, ValueError, AttributeError):
        return
    current = settings["input"]
    if isinstance(recorded, dict) and recorded != current:
        if recorded.get("path") != current["path"]:
            raise ValueError(f"{folder} holds a scan of another input ({recorded.get('path')}); use another --out")
        raise ValueError(f"the input file changed since this scan began (size/modified time): {folder} holds rows "
                         "of the old input; use another --out")  # fmt: skip
    refuse_other_settings(folder, run, settings)


__all__ = ["PEEK_ROWS", "check_columns", "check_folder", "check_out"]
