"""Reasoning SFT (R-SFT): trl's SFTTrainer on (exact guard input, reasoning trace) pairs."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from guardsdk_trainer.config import SFTStageConfig, trainer_settings
from guardsdk_trainer.data import Example, save_tokenizer
from guardsdk_trainer.resume import train_resumable

logger = logging.getLogger("guardsdk_trainer")


def sft_rows(examples: Sequence[Example], tokenizer: Any = None, max_length: int | None = None) -> list[dict[str, str]]:
    """prompt = the exact inference input (``build_input``), completion = the reasoning trace.

    With a tokenizer and ``max_length``, rows longer than that are left out rather than truncated (a cut
    trace would lose its answers, the part that matters most)."""
    rows = [{"prompt": e.model_input, "completion": e.reasoning} for e in examples if e.reasoning]
    if tokenizer is None or not max_length:
        return rows
    kept = [r for r in rows if len(tokenizer(r["prompt"] + r["completion"]).input_ids) <= max_length]
    if len(kept) < len(rows):
        logger.warning("left out %d of %d SFT rows longer than %d tokens", len(rows) - len(kept), len(rows), max_length)
    return kept


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
               cfg: SFTStageConfig) -> Path:  # fmt: skip
    """Fine-tune ``base_model`` (full, or LoRA merged back) and save a Hugging Face folder with its tokenizer."""
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
    trainer = SFTTrainer(
        model=model,
        args=sft_config(out_dir, cfg),
        train_dataset=Dataset.from_list(sft_rows(examples, tokenizer, cfg.max_length)),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    train_resumable(trainer)
    trained = trainer.model
    if cfg.lora_rank:
        trained = trained.merge_and_unload()
    trained.save_pretrained(str(out_dir))
    save_tokenizer(tokenizer, base_model, out_dir)
    return Path(out_dir)
