"""Resumable training: continue from the last checkpoint in the output folder, then drop the checkpoints."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

logger = logging.getLogger("guardsdk_trainer")


#: Written beside a trained model: how long training took and how many tokens it processed.
TRAINING_FILE = "training.json"


def train_resumable(trainer: Any, extra: dict[str, Any] | None = None, threads: int | None = None) -> None:
    """``trainer.train()``, resumed from the newest ``checkpoint-*`` in ``args.output_dir`` if there is one
    (checkpoints exist when the stage config sets ``save_steps``); the checkpoints are removed afterwards and
    the run's figures (and ``extra``) written to :data:`TRAINING_FILE` there (see :func:`processed_tokens`)."""
    from transformers.trainer_utils import get_last_checkpoint

    from guardsdk_trainer.progress import name_training_bar

    out = Path(trainer.args.output_dir)
    name_training_bar(trainer, out.name)
    last = get_last_checkpoint(str(out)) if out.is_dir() else None
    if last:
        logger.info("resuming training from %s", last)
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        result = trainer.train(resume_from_checkpoint=last)
    finally:
        torch.set_num_threads(before)
    for checkpoint in out.glob("checkpoint-*"):
        shutil.rmtree(checkpoint, ignore_errors=True)
    figures = {
        "seconds": round(float(result.metrics.get("train_runtime", 0.0)), 3),
        "tokens": round(processed_tokens(trainer.train_dataset) * float(trainer.state.epoch or 0.0)),
        "parameters": sum(p.numel() for p in trainer.model.parameters()),
        "device": str(trainer.args.device),
        "bf16": bool(trainer.args.bf16),
        "resumed": last is not None,
        **(extra or {}),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / TRAINING_FILE).write_text(json.dumps(figures, indent=1), encoding="utf-8")


def processed_tokens(dataset: Any) -> int:
    """Tokens one epoch runs through the model: each SFT row's ``input_ids``; for a preference pair, the prompt
    twice (with the chosen and with the rejected output) and both outputs."""
    if {"prompt_ids", "chosen_ids", "rejected_ids"} <= set(dataset.column_names):  # trl's DPO columns
        return sum(2 * len(r["prompt_ids"]) + len(r["chosen_ids"]) + len(r["rejected_ids"]) for r in dataset)
    return sum(len(r["input_ids"]) for r in dataset)
