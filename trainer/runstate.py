"""A run's record of its stages (``manifest.json``): written atomically, and always before any output is removed,
so that a failed or killed run never leaves a stage marked done whose output is gone."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from guardsdk_trainer import fingerprint as fp
from guardsdk_trainer.config import RecipeConfig, to_dict
from guardsdk_trainer.errors import TrainerError
from guardsdk_trainer.manifest import file_sha256, library_versions

STAGES = ("data", "synth", "rsft", "bootstrap", "sample", "mine", "hsdpo", "evaluate", "export", "classifier")
#: What each stage writes under the output folder (removed before the stage reruns; a stage whose recorded
#: outputs are missing is not done).
OUTPUTS = {"data": ("data/train.jsonl", "data/eval.jsonl"), "synth": ("data/sft.jsonl",),
           "rsft": ("models/base", "models/rsft", "models/rsft-minus-*"),
           "bootstrap": ("bootstrap", "models/bootstrap-*"), "sample": ("samples",),
           "mine": ("data/pairs.jsonl", "data/pairs-held-out.jsonl"), "hsdpo": ("models/hsdpo",),
           "export": ("gguf",), "classifier": ("classifier",)}  # fmt: skip
#: The output each stage always writes: checked for a record made before records listed their outputs.
MAIN_OUTPUT = {
    "data": "data/train.jsonl",
    "synth": "data/sft.jsonl",
    "rsft": "models/rsft/config.json",
    "sample": "samples",
    "mine": "data/pairs.jsonl",
    "hsdpo": "models/hsdpo/config.json",
    "export": "gguf",
    "classifier": "classifier",
}


def check_inputs(config: RecipeConfig) -> None:
    """:class:`TrainerError` naming the key and the path when a local data file the config names is missing
    (a ``data.reasoning`` entry that is not a ``.json``/``.jsonl`` path is a Hugging Face dataset id)."""
    for key in ("pool", "reasoning", "exclude"):
        for i, entry in enumerate(getattr(config.data, key)):
            local = key != "reasoning" or entry.endswith((".json", ".jsonl"))
            if local and not Path(entry).is_file():
                raise TrainerError(
                    f"data.{key}[{i}]: no such file {entry} (relative paths resolve against the config's folder)"
                )


class RunState:
    """The manifest bookkeeping of :class:`~guardsdk_trainer.recipe.Recipe`."""

    config: RecipeConfig
    root: Path
    manifest: dict[str, Any]
    manifest_path: Path

    def done(self, stage: str) -> bool:
        """Recorded as done, and every output it recorded is still there."""
        return stage in self.manifest["stages"] and not self.missing_outputs(stage)

    def missing_outputs(self, stage: str) -> list[str]:
        """The outputs ``stage``'s record lists that are gone (for a record from before outputs were recorded:
        its :data:`MAIN_OUTPUT`)."""
        record = self.manifest["stages"].get(stage, {})
        main = [MAIN_OUTPUT[stage]] if stage in MAIN_OUTPUT else []
        return [p for p in record.get("outputs", main) if not _present(self.root / p)]

    def _record(self, stage: str, metrics: dict[str, Any], started: float, key: dict[str, Any]) -> None:
        found = [p for pattern in OUTPUTS.get(stage, ()) for p in self.root.glob(pattern)]
        self.manifest["stages"][stage] = {
            "metrics": metrics,
            "seconds": round(time.time() - started, 1),
            **key,
            "outputs": sorted(str(p.relative_to(self.root)) for p in found),
            "run": f"{key['fingerprint']}-{time.time_ns()}",
        }
        if self.manifest.get("failed", {}).get("stage") == stage:
            del self.manifest["failed"]
        self._write()

    def _write(self) -> None:
        """Write the manifest atomically (a temporary file renamed over it)."""
        self.manifest["config"] = to_dict(self.config)
        self.manifest["libraries"] = library_versions()
        inputs = [*self.config.data.pool, *self.config.data.reasoning, *self.config.data.exclude]
        self.manifest["inputs"] = {p: file_sha256(p) for p in inputs if Path(p).is_file()}
        temporary = self.manifest_path.with_name(self.manifest_path.name + ".tmp")
        temporary.write_text(json.dumps(self.manifest, indent=1), encoding="utf-8")
        os.replace(temporary, self.manifest_path)

    def clear(self, stage: str) -> None:
        """Remove what ``stage`` wrote, so its rerun starts afresh (not from a stale checkpoint or round log)."""
        for pattern in OUTPUTS.get(stage, ()):
            for path in self.root.glob(pattern):
                shutil.rmtree(path) if path.is_dir() else path.unlink()

    def forget(self, stages: list[str]) -> None:
        """Drop ``stages``' records and write the manifest, then remove their outputs (in that order: a run
        killed in between leaves stages that are not done, never a done stage without its output)."""
        for name in stages:
            self.manifest["stages"].pop(name, None)
        self._write()
        for name in stages:
            self.clear(name)

    def invalidate_from(self, stage: str) -> None:
        """Forget ``stage`` and every later stage of the pipeline, and remove their outputs."""
        self.forget([s for s in STAGES if s == stage or stage in fp.UPSTREAM[s]])

    def record_failure(self, stage: str, error: BaseException, keys: list[str]) -> None:
        """The stage is not done; the manifest says why it stopped."""
        self.manifest["stages"].pop(stage, None)
        what = str(error) or error.__class__.__name__
        self.manifest["failed"] = {"stage": stage, "error": what, "keys": keys, "at": time.time()}
        self._write()


def _present(path: Path) -> bool:
    """A file, or a folder with something in it (a folder a killed stage had just made is not an output)."""
    return path.is_file() or (path.is_dir() and any(path.iterdir()))
