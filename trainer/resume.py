"""Resumable training: continue from the last checkpoint in the output folder, then drop the checkpoints."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

logger = logging.getLogger("guardsdk_trainer")


def train_resumable(trainer: Any) -> None:
    """``trainer.train()``, resumed from the newest ``checkpoint-*`` in ``args.output_dir`` if there is one
    (checkpoints exist when the stage config sets ``save_steps``); the checkpoints are removed afterwards."""
    from transformers.trainer_utils import get_last_checkpoint

    out = Path(trainer.args.output_dir)
    last = get_last_checkpoint(str(out)) if out.is_dir() else None
    if last:
        logger.info("resuming training from %s", last)
    trainer.train(resume_from_checkpoint=last)
    for checkpoint in out.glob("checkpoint-*"):
        shutil.rmtree(checkpoint, ignore_errors=True)
