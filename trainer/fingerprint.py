"""What a stage's result depends on: the config keys it reads and the runs of the stages before it.

Each recorded stage keeps the values of its keys, the run ids of the stages before it (for ``data``, the
SHA-256 of its input files) and a fingerprint of both. A rerun of the recipe compares them with the current
config: a difference reruns that stage and every stage after it, and the log says which keys changed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from guardsdk_trainer.config import RecipeConfig, to_dict
from guardsdk_trainer.manifest import file_sha256

#: The config sections (or single keys) each stage reads.
SECTIONS: dict[str, tuple[str, ...]] = {
    "data": ("data",),
    "synth": ("synth",),
    "rsft": ("rsft", "sample.leave_one_out_sources"),
    "bootstrap": ("bootstrap", "sample.engine"),
    "sample": ("sample",),
    "mine": ("mine",),
    "hsdpo": ("hsdpo",),
    "evaluate": ("evaluate", "hsdpo.max_length"),
    "export": ("export",),
    "classifier": ("classifier",),
}
#: The stages whose output each stage reads, directly or through another (so a change upstream reruns it).
UPSTREAM: dict[str, tuple[str, ...]] = {
    "data": (),
    "synth": ("data",),
    "rsft": ("data", "synth"),
    "bootstrap": ("data", "synth", "rsft"),
    "sample": ("data", "synth", "rsft", "bootstrap"),
    "mine": ("data", "synth", "rsft", "bootstrap", "sample"),
    "hsdpo": ("data", "synth", "rsft", "bootstrap", "sample", "mine"),
    "evaluate": ("data", "synth", "rsft", "bootstrap", "sample", "mine", "hsdpo"),
    "export": ("data", "synth", "rsft", "bootstrap", "sample", "mine", "hsdpo"),
    "classifier": ("data",),
}


def config_values(config: RecipeConfig, stage: str) -> dict[str, Any]:
    """``{"section.key": value}`` for every key ``stage`` reads."""
    tree = to_dict(config)
    values: dict[str, Any] = {}
    for name in SECTIONS[stage]:
        section, _, key = name.partition(".")
        if key:
            values[name] = tree[section][key]
        else:
            values |= {f"{section}.{k}": v for k, v in tree[section].items()}
    return values


def input_ids(config: RecipeConfig, stage: str, recorded: dict[str, Any]) -> dict[str, str]:
    """The runs ``stage`` reads: each recorded upstream stage's run id; for ``data``, its files' SHA-256."""
    if stage == "data":
        files = [*config.data.pool, *config.data.reasoning, *config.data.exclude]
        return {p: file_sha256(p) if Path(p).is_file() else "not a local file" for p in files}
    return {name: recorded[name]["run"] for name in UPSTREAM[stage] if name in recorded and "run" in recorded[name]}


def fingerprint(values: dict[str, Any], inputs: dict[str, str]) -> str:
    """A hash of a stage's config values and inputs."""
    text = json.dumps([values, inputs], sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def what_changed(record: dict[str, Any], values: dict[str, Any], inputs: dict[str, str]) -> str:
    """Why a recorded stage is out of date, in words: the keys whose values changed, the inputs that reran."""
    if "fingerprint" not in record:
        return "it was recorded without a fingerprint (an older run)"
    old_values, old_inputs = record.get("config", {}), record.get("inputs", {})
    keys = sorted(k for k in set(values) | set(old_values) if values.get(k) != old_values.get(k))
    reran = sorted(k for k in set(inputs) | set(old_inputs) if inputs.get(k) != old_inputs.get(k))
    parts = []
    if keys:
        parts.append("config changed: " + ", ".join(keys))
    if reran:
        parts.append("input changed: " + ", ".join(reran))
    return "; ".join(parts) or "its fingerprint differs"
