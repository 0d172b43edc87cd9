"""What the measuring scripts share: where the repo and the shared data are, reading JSONL, and a busy loop.

Standard library only, so that a script can import it before parsing its arguments and ``--help`` stays fast.
A script reaches it by putting the repo root first on ``sys.path`` (its first lines do), so that it runs as
``.venv/bin/python benchmarks/<topic>/<name>.py`` from the repo root (see benchmarks/README.md).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event

#: The repo's root (the folder holding ``guardsdk/``, ``trainer/`` and ``benchmarks/``).
ROOT = Path(__file__).resolve().parents[1]
#: The data beside the repo (``../shared/data`` from the root; shared/data/README.md describes it).
SHARED_DATA = ROOT.parent / "shared" / "data"
#: The published GuardReasoner outputs: ``<size>/<Benchmark>/generated_predictions.jsonl``.
PREDICTIONS = SHARED_DATA / "predictions"
#: The ten offline benchmark files (``guardsdk eval --benchmarks-dir``).
SHARED_BENCHMARKS = SHARED_DATA / "benchmarks"
#: The training pool, in the schema every recipe reads.
TRAIN_POOL = SHARED_DATA / "train" / "pool.jsonl"
#: The tests' helpers (``servers.py``: live service and llama.cpp server fixtures).
TESTS = ROOT / "tests"


def importable(folder: str | os.PathLike[str]) -> None:
    """Put ``folder`` first on ``sys.path``, once. (The repo root is already there: each script's first lines put it
    there, as they must before they can import this module.)"""
    path = os.fspath(folder)
    if path not in sys.path:
        sys.path.insert(0, path)


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of a JSONL file. Lines end at ``\\n`` only: the published outputs hold U+2028 inside texts,
    where ``str.splitlines`` would cut them."""
    text = Path(path).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.split("\n") if line.strip()]


def prediction_files(root: str | os.PathLike[str] = PREDICTIONS, size: str = "*", name: str = "*") -> list[Path]:
    """The published outputs' files under ``root`` (every size and benchmark unless named), sorted."""
    return sorted(Path(root).glob(f"{size}/{name}/generated_predictions.jsonl"))


def busy_loop(stop: Event) -> None:
    """Keep one core busy until ``stop`` is set (the 'other core busy' load of the speed measurements)."""
    while not stop.is_set():
        sum(range(10_000))
