"""Reasoning SFT (R-SFT): trl's SFTTrainer on (exact guard input, reasoning trace) pairs."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from guardsdk_trainer.config import SFTStageConfig, trainer_settings
from guardsdk_trainer.data import Example, save_tokenizer
from guardsdk_trainer.errors import StageFailed
from guardsdk_trainer.resume import train_resumable
from guardsdk_trainer.tokens import FitReport, sft_features

logger = logging.getLogger("guardsdk_trainer")


def sft_rows(examples: Sequence[Example], tokenizer: Any, max_length: int) -> tuple[list[dict[str, Any]], FitReport]:
    """Pre-tokenized rows (:func:`~guardsdk_trainer.tokens.sft_features`): prompt = the exact inference input
    (``build_input``), completion = the reasoning trace; long rows have their user text cut, not their trace."""
    return sft_features([(e.model_input, e.reasoning) for e in examples if e.reasoning], tokenizer, max_length)


def sft_config(output_dir: str | os.PathLike[str], cfg: SFTStageConfig, **overrides: Any) -> Any:
    """trl's SFTConfig: loss on the completion only, the paper's schedule, no chat template."""
    from trl import SFTConfig

    settings = trainer_settings(output_dir, cfg) | {
        "warmup_steps": cfg.warmup_ratio,  # transformers 5: a float below 1 is a ratio of the total steps
        "completion_only_loss": True,
        "train_sampling_strategy": "group_by_length" if cfg.group_by_length else "random",
    }
    settings.update(overrides)
    return SFTConfig(**settings)


def train_rsft(base_model: str | os.PathLike[str], examples: Sequence[Example], out_dir: str | os.PathLike[str],
               cfg: SFTStageConfig, stage: str = "rsft") -> Path:  # fmt: skip
    """Fine-tune ``base_model`` (full, or LoRA merged back) and save a Hugging Face folder with its tokenizer.

    Rows over ``cfg.max_length`` are fitted (:mod:`guardsdk_trainer.tokens`) and counted in the folder's
    ``training.json`` (``fit``); :class:`StageFailed` when no row fits or there is none."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(str(base_model))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(base_model), dtype=torch.bfloat16 if cfg.bf16 else torch.float32)
    peft_config = None
    if cfg.lora_rank:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, target_modules="all-linear", task_type="CAUSAL_LM"
        )
    rows, fit = sft_rows(examples, tokenizer, cfg.max_length)
    fit.log(f"{stage} {Path(out_dir).name}")
    if not rows:
        if fit.rows:
            raise StageFailed(stage, f"none of {fit.rows} traced rows fits rsft.max_length={cfg.max_length}",
                              ["rsft.max_length"])  # fmt: skip
        raise StageFailed(stage, "no traced rows to train on", ["synth.base_url", "data.pool", "data.reasoning"])
    trainer = SFTTrainer(
        model=model,
        args=sft_config(out_dir, cfg),
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    train_resumable(trainer, {"fit": fit.summary()}, cfg.threads)
    trained = trainer.model
    if cfg.lora_rank:
        trained = trained.merge_and_unload()
    trained.save_pretrained(str(out_dir))
    save_tokenizer(tokenizer, base_model, out_dir)
    return Path(out_dir)
