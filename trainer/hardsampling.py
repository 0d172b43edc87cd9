"""Sampling until hard pairs are found: chunks of inputs through every model of the ensemble, mined as they
come, until ``sample.target_pairs`` pairs, ``sample.max_inputs`` inputs or ``sample.time_budget_s`` seconds;
then the mine stage over what was sampled."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardsdk_trainer import data as data_mod
from guardsdk_trainer.config import SampleConfig
from guardsdk_trainer.data import Example
from guardsdk_trainer.errors import StageFailed
from guardsdk_trainer.mining import merge, mine
from guardsdk_trainer.progress import bar
from guardsdk_trainer.sampling import LlamaCppSession, sample

if TYPE_CHECKING:
    from guardsdk_trainer.recipe import Recipe

logger = logging.getLogger("guardsdk_trainer")


def sample_in_chunks(model: Path, inputs: Sequence[Example], cfg: SampleConfig, seed: int,
                     what: str) -> dict[str, list[str]]:  # fmt: skip
    """``sample`` over ``inputs`` ``cfg.chunk_inputs`` at a time, behind a progress bar."""
    out: dict[str, list[str]] = {}
    step = max(1, cfg.chunk_inputs)
    with bar(len(inputs), what, unit="input") as progress:
        for start in range(0, len(inputs), step):
            chunk = inputs[start : start + step]
            out |= sample(model, chunk, cfg, seed=seed * 100_003 + start)
            progress.update(len(chunk))
    LlamaCppSession.close_current()
    return out


def sample_until_pairs(models: Sequence[Path], inputs: Sequence[Example], cfg: SampleConfig,
                       seed: int = 0) -> tuple[dict[str, dict[str, list[str]]], dict[str, Any]]:  # fmt: skip
    """Samples per model (``{model name: {example id: outputs}}``) and a report: inputs sampled, pairs found,
    inputs per pair, and why sampling stopped (target reached, input budget or time budget spent)."""
    started = time.monotonic()
    budget = list(inputs[: cfg.max_inputs] if cfg.max_inputs else inputs)
    samples: dict[str, dict[str, list[str]]] = {model.name: {} for model in models}
    found: set[str] = set()
    tried, stopped = 0, "input budget spent (sample.max_inputs, or every labelled training row)"
    open_ended = cfg.target_pairs is None and cfg.time_budget_s is None  # one pass: vLLM batches it all at once
    step = max(1, len(budget) if open_ended else cfg.chunk_inputs)
    with bar(len(budget), f"sampling {cfg.n} outputs x {len(models)} model(s)", unit="input") as progress:
        for start in range(0, len(budget), step):
            chunk = budget[start : start + step]
            for index, model in enumerate(models):
                got = sample(model, chunk, cfg, seed=seed * 100_003 + index * 7_919 + start)
                samples[model.name] |= got
                found |= {pair.id for pair in mine(chunk, got)}
            tried += len(chunk)
            progress.update(len(chunk))
            progress.set_postfix(pairs=f"{len(found)}/{cfg.target_pairs}")
            if cfg.target_pairs is not None and len(found) >= cfg.target_pairs:
                stopped = "target reached (sample.target_pairs)"
                break
            if cfg.time_budget_s is not None and time.monotonic() - started >= cfg.time_budget_s:
                stopped = "time budget spent (sample.time_budget_s)"
                break
    LlamaCppSession.close_current()
    report = {
        "inputs": tried,
        "available_inputs": len(budget),
        "models": [model.name for model in models],
        "pairs_found": len(found),
        "target_pairs": cfg.target_pairs,
        "inputs_per_pair": round(tried / len(found), 2) if found else None,
        "stopped": stopped,
        "samples": {name: sum(len(v) for v in rows.values()) for name, rows in samples.items()},
    }
    logger.info("sample: %d hard pairs from %d inputs (%s inputs per pair); stopped: %s",
                len(found), tried, report["inputs_per_pair"], stopped)  # fmt: skip
    return samples, report


def mine_samples(recipe: Recipe) -> dict[str, Any]:
    """The mine stage: pairs from every model's samples, merged; ``mine.held_out_fraction`` of them (by hash
    of the input) written apart, for measuring HS-DPO. :class:`StageFailed` when there are none."""
    by_id = {e.id: e for e in recipe.examples("train")}
    mined = []
    per_model = {}
    for path in sorted(recipe.path("samples").glob("*.jsonl")):
        samples = {r["id"]: r["samples"] for r in data_mod.read_jsonl(path)}
        pairs = mine([by_id[i] for i in samples if i in by_id], samples)
        per_model[path.stem] = len(pairs)
        mined.append(pairs)
    merged = merge(mined)
    if not merged:
        inputs = recipe.manifest["stages"].get("sample", {}).get("metrics", {}).get("inputs", 0)
        keys = ["sample.target_pairs", "sample.max_inputs", "sample.time_budget_s", "sample.n", "sample.max_new_tokens"]
        raise StageFailed("mine", f"0 hard pairs in the samples of {inputs} inputs", keys)
    seed, fraction = recipe.config.data.seed, recipe.config.mine.held_out_fraction
    held = [p for p in merged if int(data_mod.seeded_hash(seed, p.id)[:8], 16) / 0xFFFFFFFF < fraction]
    train = [p for p in merged if p not in held] or held  # never hold out the only pairs there are
    held = [p for p in held if p not in train]
    data_mod.write_jsonl(recipe.path("data", "pairs.jsonl"), (p.to_json() for p in train))
    data_mod.write_jsonl(recipe.path("data", "pairs-held-out.jsonl"), (p.to_json() for p in held))
    return {"per_model": per_model, "pairs": len(train), "held_out_pairs": len(held),
            "by_task": {t: sum(p.task == t for p in merged) for t in sorted({p.task for p in merged})}}  # fmt: skip
