"""Hard-sample DPO: trl's DPOTrainer with per-sample weights (trl has none built in; trl is pinned)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from trl import DPOConfig, DPOTrainer
from trl.trainer.dpo_trainer import DataCollatorForPreference

from guardsdk_trainer.config import DPOStageConfig, trainer_settings
from guardsdk_trainer.data import save_tokenizer
from guardsdk_trainer.errors import StageFailed
from guardsdk_trainer.mining import PreferencePair
from guardsdk_trainer.resume import train_resumable
from guardsdk_trainer.tokens import dpo_features


class WeightedPreferenceCollator(DataCollatorForPreference):
    """trl's preference collator, passing a per-pair ``weight`` through."""

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = super().torch_call(examples)
        if "weight" in examples[0]:
            batch["weight"] = torch.tensor([float(e["weight"]) for e in examples], dtype=torch.float32)
        return batch


class WeightedDPOTrainer(DPOTrainer):
    """DPO with per-sample weights, for ``loss_type`` ``["sigmoid"]`` or ``["sigmoid", "sft"]``.

    The loss is ``mean_i(w_i * -logsigmoid(beta * delta_i))`` plus, with "sft", its loss weight times the
    token-mean NLL of the chosen outputs with each token weighted by its pair's ``w_i``. With every
    ``w_i = 1`` this is exactly trl's loss; a pair of weight 0 contributes no gradient.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        args_config: DPOConfig = kwargs.get("args") or args[1]
        processing_class = kwargs.get("processing_class")
        if kwargs.get("data_collator") is None and processing_class is not None:
            kwargs["data_collator"] = WeightedPreferenceCollator(
                pad_token_id=processing_class.pad_token_id, max_length=args_config.max_length
            )
        super().__init__(*args, **kwargs)
        unsupported = set(self.loss_types) - {"sigmoid", "sft"}
        if unsupported or "sigmoid" not in self.loss_types or self.use_weighting or self.ld_alpha is not None:
            raise ValueError("WeightedDPOTrainer supports loss_type ['sigmoid'] or ['sigmoid', 'sft'], plain DPO")

    def _prepare_dataset(self, dataset: Any, processing_class: Any, args: DPOConfig, dataset_name: str) -> Any:
        """Rows already tokenized by :func:`~guardsdk_trainer.tokens.dpo_features` are used as they are."""
        if "prompt_ids" in dataset.column_names:
            return dataset
        return super()._prepare_dataset(dataset, processing_class, args, dataset_name)

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if "weight" not in self._signature_columns:
            self._signature_columns.append("weight")

    def _compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool) -> Any:
        weights = inputs.pop("weight", None)
        if weights is None:
            return super()._compute_loss(model, inputs, return_outputs)
        mode = "train" if self.model.training else "eval"
        model_kwargs = {
            k: v for k, v in inputs.items() if k not in {"completion_mask", "ref_chosen_logps", "ref_rejected_logps"}
        }
        model_kwargs["use_cache"] = False
        completion_mask = inputs["completion_mask"]
        shift_mask = completion_mask[..., 1:]
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
        outputs = model(**model_kwargs, labels=labels, fused_lm_head=True)
        per_token_logps = outputs.log_probs[:, -shift_mask.size(1) :]
        chosen_logps, rejected_logps = per_token_logps.sum(dim=1).chunk(2, dim=0)
        if self.precompute_ref_logps:
            ref_chosen, ref_rejected = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        else:
            ref_chosen, ref_rejected = self.compute_ref_log_probs(self.ref_model or self.model, inputs)
        weights = weights.to(chosen_logps.device, chosen_logps.dtype)
        delta = (chosen_logps - ref_chosen) - (rejected_logps - ref_rejected)
        loss = (weights * -F.logsigmoid(self.beta * delta)).mean() * self.loss_weights[self.loss_types.index("sigmoid")]
        if "sft" in self.loss_types:
            chosen_mask = shift_mask.chunk(2, dim=0)[0].to(per_token_logps.dtype)
            chosen_token_logps = per_token_logps.chunk(2, dim=0)[0]
            token_weights = chosen_mask * weights.unsqueeze(1)
            sft = -(chosen_token_logps * token_weights).sum() / chosen_mask.sum().clamp(min=1.0)
            loss = loss + sft * self.loss_weights[self.loss_types.index("sft")]
        with torch.no_grad():
            chosen_rewards = self.beta * (chosen_logps - ref_chosen)
            rejected_rewards = self.beta * (rejected_logps - ref_rejected)
            metrics = self._metrics[mode]
            metrics["rewards/chosen"].append(self.accelerator.gather_for_metrics(chosen_rewards).mean().item())
            metrics["rewards/rejected"].append(self.accelerator.gather_for_metrics(rejected_rewards).mean().item())
            accuracy = (chosen_rewards > rejected_rewards).float()
            metrics["rewards/accuracies"].append(self.accelerator.gather_for_metrics(accuracy).mean().item())
            metrics["rewards/margins"].append(
                self.accelerator.gather_for_metrics(chosen_rewards - rejected_rewards).mean().item()
            )
            metrics["sample_weight"].append(self.accelerator.gather_for_metrics(weights).mean().item())
        return (loss, outputs) if return_outputs else loss


def dpo_config(output_dir: str | os.PathLike[str], cfg: DPOStageConfig, **overrides: Any) -> DPOConfig:
    """trl's DPOConfig for the paper's HS-DPO: sigmoid loss, beta 0.01, SFT term weight 2.0 on chosen."""
    settings = trainer_settings(output_dir, cfg) | {
        "beta": cfg.beta,
        "loss_type": ["sigmoid", "sft"] if cfg.sft_weight else ["sigmoid"],
        "loss_weights": [1.0, cfg.sft_weight] if cfg.sft_weight else [1.0],
    }
    settings.update(overrides)
    return DPOConfig(**settings)


def preference_dataset(pairs: Sequence[PreferencePair]) -> Any:
    """A datasets.Dataset of prompt / chosen / rejected / weight."""
    from datasets import Dataset

    return Dataset.from_list(
        [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected, "weight": p.weight} for p in pairs]
    )


def train_hsdpo(model_dir: str | os.PathLike[str], pairs: Sequence[PreferencePair], out_dir: str | os.PathLike[str],
                cfg: DPOStageConfig) -> Path:  # fmt: skip
    """Weighted HS-DPO from an R-SFT model; saves the result as a Hugging Face folder.

    Pairs are tokenized as the guard sees them, long prompts cut to fit ``cfg.max_length``
    (:func:`~guardsdk_trainer.tokens.dpo_features`); :class:`StageFailed` when no pair fits."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    rows, fit = dpo_features(pairs, tokenizer, cfg.max_length)
    fit.log(f"hsdpo {Path(out_dir).name}")
    if not rows:
        raise StageFailed("hsdpo", f"none of {fit.rows} mined pairs fits hsdpo.max_length={cfg.max_length}",
                          ["hsdpo.max_length", "sample.max_new_tokens"])  # fmt: skip
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16 if cfg.bf16 else torch.float32)
    trainer = WeightedDPOTrainer(
        model=model, args=dpo_config(out_dir, cfg), train_dataset=Dataset.from_list(rows), processing_class=tokenizer
    )
    train_resumable(trainer, {"fit": fit.summary()}, cfg.threads)
    trainer.save_model(str(out_dir))
    save_tokenizer(tokenizer, model_dir, out_dir)
    return Path(out_dir)
